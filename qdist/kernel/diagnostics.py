"""Kernel diagnostics: is the kernel informative, or has it concentrated, and does it differ
from a classical kernel on this data?

- Off-diagonal mean and variance: for expressive maps both shrink exponentially with the qubit
  count (Thanasilp et al.); a variance near zero means a flat kernel.
- Kernel-target alignment ``A = <K, T>_F / (||K||_F ||T||_F)`` (Cristianini et al.) with the
  target ``T`` of :func:`target_factors`: ``T_ij = 1`` for equal classes and ``-1/(C-1)``
  otherwise (``y y^T`` with labels +-1 for two classes), or ``T = y_c y_c^T`` with centred
  targets for regression. The centred alignment (Cortes, Mohri & Rostamizadeh 2012) uses
  ``H K H`` and ``H T H``, ``H = I - 11^T / n``. Both need only ``K F`` for the n x r factor
  ``F`` of ``T``, ``K 1`` and ``||K||_F`` (:func:`alignment_from_products`), so out-of-core
  callers can stream them.
- Eigen-spectrum (``eigh``, the matrix is symmetric) and the effective dimension
  ``(sum l)^2 / sum l^2`` (participation ratio of the eigenvalues).
- Geometric difference (Huang et al., Nat. Commun. 12, 2631 (2021), Eq. 5 and its regularised
  form in Methods), with both kernels scaled to trace n:

      g(K_C || K_Q) = sqrt(|| sqrt(K_Q) sqrt(K_C) (K_C + lambda I)^-2 sqrt(K_C) sqrt(K_Q) ||_inf),

  ``lambda = 0`` giving ``sqrt(|| sqrt(K_Q) K_C^-1 sqrt(K_Q) ||_inf)``. A small g (near 1)
  means the classical kernel can learn whatever the quantum kernel can from this much data; a
  large g (on the order of sqrt(n)) leaves room for a quantum advantage on some labels.
"""

from __future__ import annotations

import numpy as np

from qdist.errors import DataError

__all__ = ["kernel_diagnostics", "CONCENTRATION_VARIANCE", "GEOMETRIC_RIDGE", "target_factors",
           "alignment_from_products", "kernel_target_alignment", "rbf_gram",
           "geometric_difference"]

CONCENTRATION_VARIANCE = 1e-4
"""Off-diagonal variance below which the kernel is reported as concentrated."""

GEOMETRIC_RIDGE = 1e-3
"""Default ``lambda`` of the regularised geometric difference (kernels scaled to trace n)."""


def target_factors(y: np.ndarray, task: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """``(F, w)`` with the target ``T = F diag(w) F^T`` (module docstring).

    ``task`` is ``classification``, ``regression`` or ``auto`` (classification when every
    label is an integer or a string, regression otherwise).
    """
    y = np.asarray(y)
    if task == "auto":
        task = ("classification" if y.dtype.kind in "biuUSO"
                or bool(np.all(np.mod(y.astype(np.float64), 1.0) == 0)) else "regression")
    if task == "regression":
        yc = y.astype(np.float64) - y.astype(np.float64).mean()
        return yc[:, None], np.ones(1)
    if task != "classification":
        raise DataError(f"The task must be 'classification', 'regression' or 'auto'. Got "
                        f"{task!r} instead.")
    classes, codes = np.unique(y, return_inverse=True)
    c = len(classes)
    if c < 2:
        raise DataError(f"Kernel-target alignment needs at least two classes; got {c}.")
    onehot = np.eye(c)[codes]
    f = np.column_stack([onehot, np.ones(len(y))])
    return f, np.concatenate([np.full(c, c / (c - 1)), [-1.0 / (c - 1)]])


def alignment_from_products(kf: np.ndarray, k1: np.ndarray, k_fro_sq: float, f: np.ndarray,
                            w: np.ndarray, centered: bool = False) -> float:
    """Alignment of a symmetric K with ``T = F diag(w) F^T`` from ``kf = K F``, ``k1 = K 1`` and
    ``k_fro_sq = ||K||_F^2``: ``<K, T> = sum_k w_k f_k^T K f_k``. Centred: ``F -> H F`` and
    ``||HKH||_F^2 = ||K||_F^2 - 2 |K1|^2 / n + (1^T K 1)^2 / n^2``."""
    n = f.shape[0]
    if centered:
        mean = f.mean(axis=0)
        kf = kf - np.outer(k1, mean)  # K (F - 1 mean^T)
        f = f - mean
        k_fro_sq = k_fro_sq - 2.0 * float(k1 @ k1) / n + float(k1.sum()) ** 2 / n**2
    inner = float(np.einsum("ik,ik,k->", f, kf, w))
    g = f.T @ f
    t_fro = float(np.sqrt(max(np.einsum("k,l,kl->", w, w, g * g), 0.0)))
    denom = np.sqrt(max(k_fro_sq, 0.0)) * t_fro
    return inner / denom if denom > 0 else 0.0


def kernel_target_alignment(k: np.ndarray, y: np.ndarray, task: str = "auto",
                            centered: bool = False) -> float:
    """Kernel-target alignment of ``k`` with labels or targets ``y`` (module docstring)."""
    f, w = target_factors(y, task)
    return alignment_from_products(k @ f, k.sum(axis=1), float(np.sum(k * k)), f, w, centered)


def rbf_gram(features: np.ndarray, gamma: float | None = None) -> np.ndarray:
    """Classical RBF Gram ``exp(-gamma |f_i - f_j|^2)``; ``gamma=None``: ``1 / (d var(f))``
    (scikit-learn's ``'scale'``)."""
    f = np.asarray(features, dtype=np.float64)
    if gamma is None:
        gamma = 1.0 / (f.shape[1] * max(float(f.var()), 1e-12))
    sq = (f * f).sum(axis=1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (f @ f.T), 0.0)
    out = np.exp(-gamma * 0.5 * (d + d.T))
    np.fill_diagonal(out, 1.0)
    return out


def _psd_eigh(k: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    k = 0.5 * (k + k.T)
    tr = float(np.trace(k))
    if not tr > 0:
        raise DataError(f"{name} has trace {tr}; the geometric difference needs a kernel with a "
                        "positive diagonal.")
    lam, u = np.linalg.eigh(k * (k.shape[0] / tr))
    return np.clip(lam, 0.0, None), u


def geometric_difference(k_classical: np.ndarray, k_quantum: np.ndarray,
                         ridge: float = GEOMETRIC_RIDGE) -> float:
    """``g(K_C || K_Q)`` of Huang et al. (module docstring); ``ridge`` is lambda (>= 0).

    Negative eigenvalues (rounding, shot noise) are clipped to 0. With ``ridge = 0`` a singular
    ``K_C`` gives ``inf``.
    """
    if k_classical.shape != k_quantum.shape or k_quantum.shape[0] != k_quantum.shape[1]:
        raise DataError(f"Both kernels must be square and of one shape; got {k_classical.shape} "
                        f"and {k_quantum.shape}.")
    if not ridge >= 0:
        raise DataError(f"The ridge must be a float in [0, inf). Got {ridge} instead.")
    lc, uc = _psd_eigh(k_classical, "K_C")
    lq, uq = _psd_eigh(k_quantum, "K_Q")
    sqrt_q = (uq * np.sqrt(lq)) @ uq.T
    if ridge == 0:
        if lc.min() <= 1e-14 * lc.max():
            return float("inf")
        mid = 1.0 / lc
    else:
        mid = lc / (lc + ridge) ** 2
    b = (sqrt_q @ uc) * np.sqrt(mid)  # M = B B^T
    top = float(np.linalg.eigvalsh(b.T @ b)[-1])
    return float(np.sqrt(max(top, 0.0)))


def kernel_diagnostics(k: np.ndarray, y: np.ndarray, *, task: str = "auto",
                       k_classical: np.ndarray | None = None,
                       ridge: float = GEOMETRIC_RIDGE) -> tuple[dict[str, float], np.ndarray]:
    """Scalar diagnostics of a symmetric Gram ``k`` with labels (or regression targets) ``y``,
    and its eigenvalues in descending order. With ``k_classical`` (e.g. :func:`rbf_gram` of the
    classical features) the geometric difference ``g(K_C || K)`` is added."""
    n = k.shape[0]
    off = k[~np.eye(n, dtype=bool)]
    f, w = target_factors(y, task)
    kf, k1, fro = k @ f, k.sum(axis=1), float(np.sum(k * k))
    eig = np.linalg.eigvalsh(k)[::-1]
    pos = np.clip(eig, 0.0, None)
    eff_dim = float(pos.sum() ** 2 / np.sum(pos**2)) if pos.any() else 0.0
    out = {
        "kernel_offdiag_mean": float(off.mean()),
        "kernel_offdiag_var": float(off.var()),
        "kernel_target_alignment": alignment_from_products(kf, k1, fro, f, w),
        "kernel_target_alignment_centered": alignment_from_products(kf, k1, fro, f, w, True),
        "kernel_min_eigenvalue": float(eig[-1]),
        "kernel_effective_dimension": eff_dim,
        "kernel_concentrated": float(off.var() < CONCENTRATION_VARIANCE),
    }
    if k_classical is not None:
        out["geometric_difference"] = geometric_difference(k_classical, k, ridge)
    return out, eig
