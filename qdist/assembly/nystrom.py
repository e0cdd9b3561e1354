"""Nystrom approximation: a kernel model from m landmark columns instead of the n x n Gram.

With landmarks L (m of the n training samples), ``C = K[:, L]`` (n x m) and ``W = K[L, L]``
(m x m, rows L of C), the Nystrom approximation is ``K ~ C W^+ C^T = Phi Phi^T`` with features

    Phi = C U_r diag(lambda_r)^(-1/2),    W = U diag(lambda) U^T (eigh),

keeping the r eigenvalues above ``eig_floor * lambda_max`` (the pseudo-inverse square root; the
floor keeps rounding noise in near-null directions from being amplified). A new sample's
features need only its kernel row against the landmarks. With L = all samples and no eigenvalue
under the floor, ``Phi Phi^T = K W^+ K = K`` exactly.

Only the tiles of C are computed: order the training samples so the landmarks are a block
(:func:`landmark_order`), or compute C as a cross kernel ``K(x_train, x_train[L])`` on the
existing ``k_test`` machinery; W is its rows L, no extra quantum work.

Landmark selection:

- uniform: m distinct samples drawn uniformly (seeded).
- approximate ridge leverage scores (Alaoui & Mahoney 2015; Musco & Musco 2017):
  ``l_i(lambda) = (K (K + lambda I)^-1)_ii``, estimated from a uniform pilot set S as
  ``(K_ii - K_iS (K_SS + lambda I)^-1 K_Si) / lambda`` (an overestimate of ``l_i``), then m
  samples drawn without replacement with probability proportional to the estimates. Costs the
  n x |S| pilot columns.

Out of core: :func:`nystrom_features_dask` maps a Dask ``C`` (read from the Zarr store) to
features chunk by chunk, so only ``m x r`` and one row block are ever in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC, LinearSVC

from qdist.errors import DataError
from qdist.kernel.diagnostics import alignment_from_products, target_factors

__all__ = ["uniform_landmarks", "ridge_leverage_scores", "leverage_landmarks", "landmark_order",
           "NystromMap", "fit_nystrom", "linear_model", "fit_linear", "nystrom_gap",
           "nystrom_features_dask", "gram_moments_dask"]


def uniform_landmarks(n: int, m: int, seed: int) -> np.ndarray:
    """``m`` distinct indices of ``range(n)``, drawn uniformly, sorted."""
    if not 1 <= m <= n:
        raise DataError(f"The landmark count m must be an int in [1, n={n}]. Got {m} instead.")
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


def ridge_leverage_scores(k_pilot: np.ndarray, pilot: np.ndarray, ridge: float,
                          diag: np.ndarray | None = None) -> np.ndarray:
    """Approximate ridge leverage scores ``(n,)`` from the pilot columns ``k_pilot = K[:, pilot]``.

    ``diag`` is ``K_ii`` (all ones for fidelity and projected kernels when None).
    """
    if not ridge > 0:
        raise DataError(f"The ridge must be a float in (0, inf). Got {ridge} instead.")
    n = k_pilot.shape[0]
    k_ss = k_pilot[pilot]
    sol = np.linalg.solve(0.5 * (k_ss + k_ss.T) + ridge * np.eye(len(pilot)), k_pilot.T)
    kii = np.ones(n) if diag is None else np.asarray(diag, dtype=np.float64)
    scores = (kii - np.einsum("ij,ji->i", k_pilot, sol)) / ridge
    return np.clip(scores, 1e-12, None)


def leverage_landmarks(k_pilot: np.ndarray, pilot: np.ndarray, m: int, ridge: float,
                       seed: int, diag: np.ndarray | None = None) -> np.ndarray:
    """``m`` distinct landmarks drawn with probability proportional to the approximate ridge
    leverage scores (:func:`ridge_leverage_scores`), sorted."""
    n = k_pilot.shape[0]
    if not 1 <= m <= n:
        raise DataError(f"The landmark count m must be an int in [1, n={n}]. Got {m} instead.")
    scores = ridge_leverage_scores(k_pilot, pilot, ridge, diag)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=m, replace=False, p=scores / scores.sum()))


def landmark_order(n: int, landmarks: np.ndarray) -> np.ndarray:
    """A permutation of ``range(n)`` with the landmarks first (in the given order): reorder the
    training samples by it and ``C`` is the first m columns, whole tiles when m is a multiple
    of the tile size."""
    rest = np.setdiff1d(np.arange(n), landmarks, assume_unique=False)
    return np.concatenate([np.asarray(landmarks, dtype=np.int64), rest])


@dataclass(frozen=True, eq=False)
class NystromMap:
    """The fitted map ``k(x, L) -> Phi(x) = k(x, L) @ projection``."""

    landmarks: np.ndarray
    """``(m,)`` training indices of the landmarks (the column order of ``k(x, L)``)."""
    projection: np.ndarray
    """``(m, r)``: ``U_r diag(lambda_r)^(-1/2)``."""
    eigenvalues: np.ndarray
    """``(r,)`` eigenvalues of W kept (descending)."""

    def transform(self, k_xl: np.ndarray) -> np.ndarray:
        """Features ``(n_x, r)`` of samples from their kernel rows against the landmarks."""
        if k_xl.shape[-1] != self.projection.shape[0]:
            raise DataError(f"Kernel rows need {self.projection.shape[0]} landmark columns; got "
                            f"shape {k_xl.shape}.")
        return np.asarray(k_xl, dtype=np.float64) @ self.projection


def fit_nystrom(k_ll: np.ndarray, landmarks: np.ndarray, eig_floor: float = 1e-10) -> NystromMap:
    """Fit the map from the landmark block ``W = K[L, L]`` (module docstring)."""
    w = 0.5 * (k_ll + k_ll.T)
    lam, u = np.linalg.eigh(w)
    lam, u = lam[::-1], u[:, ::-1]
    if lam[0] <= 0:
        raise DataError("The landmark block has no positive eigenvalue; the kernel is zero there.")
    keep = lam > eig_floor * lam[0]
    return NystromMap(np.asarray(landmarks), u[:, keep] / np.sqrt(lam[keep]), lam[keep])


def linear_model(kind: str, c: float, seed: int) -> LinearSVC | LogisticRegression | RidgeClassifier:
    """The linear model trained on Nystrom features: ``linear_svc`` (hinge loss, as the exact
    SVC), ``logreg`` or ``ridge`` (alpha = 1 / (2 C))."""
    if kind == "linear_svc":
        return LinearSVC(C=c, loss="hinge", dual=True, max_iter=20000, random_state=seed)
    if kind == "logreg":
        return LogisticRegression(C=c, max_iter=5000)
    if kind == "ridge":
        return RidgeClassifier(alpha=1.0 / (2.0 * c))
    raise DataError(f"The Nystrom model must be one of 'linear_svc', 'logreg', 'ridge'. Got "
                    f"{kind!r} instead.")


def fit_linear(phi: np.ndarray, y: np.ndarray, c_grid: list[float], kind: str = "linear_svc",
               folds: int = 5, seed: int = 0) -> GridSearchCV:
    """Fit ``linear_model(kind)`` on Nystrom features with C chosen by stratified CV (accuracy)."""
    smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
    cv = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)
    search = GridSearchCV(linear_model(kind, 1.0, seed), {"C": list(c_grid)} if kind != "ridge"
                          else {"alpha": [1.0 / (2.0 * c) for c in c_grid]}, cv=cv)
    return search.fit(phi, y)


def nystrom_gap(k_train: np.ndarray, y_train: np.ndarray, k_test: np.ndarray, y_test: np.ndarray,
                landmarks: np.ndarray, c: float, kind: str = "linear_svc", seed: int = 0,
                eig_floor: float = 1e-10) -> dict[str, float]:
    """Test accuracy of the exact ``SVC(kernel="precomputed", C=c)`` and of the Nystrom model
    with the same C and landmarks, and their gap (exact - Nystrom), where both fit in memory."""
    nmap = fit_nystrom(k_train[np.ix_(landmarks, landmarks)], landmarks, eig_floor)
    exact = SVC(kernel="precomputed", C=c).fit(k_train, y_train)
    approx = linear_model(kind, c, seed).fit(nmap.transform(k_train[:, landmarks]), y_train)
    acc_exact = float(accuracy_score(y_test, exact.predict(k_test)))
    acc_nys = float(accuracy_score(y_test, approx.predict(nmap.transform(k_test[:, landmarks]))))
    return {"exact_test_accuracy": acc_exact, "nystrom_test_accuracy": acc_nys,
            "nystrom_accuracy_gap": acc_exact - acc_nys, "nystrom_rank": float(nmap.eigenvalues.size),
            "nystrom_landmarks": float(len(landmarks))}


def nystrom_features_dask(k_xl: Any, nmap: NystromMap) -> Any:
    """Lazy features ``k_xl @ projection`` of a Dask array ``k_xl`` (n x m, e.g. landmark
    columns read from the Zarr store), computed one row chunk at a time."""
    import dask.array as da

    k_xl = k_xl.rechunk({1: -1})
    r = nmap.projection.shape[1]
    return da.map_blocks(nmap.transform, k_xl, chunks=(k_xl.chunks[0], (r,)), dtype=np.float64)


def gram_moments_dask(k: Any, y: np.ndarray | None = None, task: str = "auto") -> dict[str, float]:
    """Off-diagonal mean and variance, Frobenius norm and, with labels or targets ``y``, the
    kernel-target alignment (plain and centred, as :func:`qdist.kernel.diagnostics.
    kernel_diagnostics` computes them) of a lazy symmetric Gram ``k`` (Dask array), from one
    ``da.compute``: only ``K F`` (n x r), ``K 1`` and a few sums are ever in memory."""
    import dask.array as da

    n = k.shape[0]
    diag = da.diag(k)
    parts = [k.sum(axis=1), (k * k).sum(), diag.sum(), (diag**2).sum()]
    if y is not None:
        f, w = target_factors(y, task)
        parts.append(k @ f)
    vals = da.compute(*parts)
    k1, sq, tr, trsq = np.asarray(vals[0]), float(vals[1]), float(vals[2]), float(vals[3])
    count = n * (n - 1)
    mean = (float(k1.sum()) - tr) / count
    out = {"kernel_offdiag_mean": mean, "kernel_offdiag_var": (sq - trsq) / count - mean**2,
           "kernel_frobenius_norm": float(np.sqrt(sq))}
    if y is not None:
        kf = np.asarray(vals[4])
        out["kernel_target_alignment"] = alignment_from_products(kf, k1, sq, f, w)
        out["kernel_target_alignment_centered"] = alignment_from_products(kf, k1, sq, f, w, True)
    return out
