"""Models on the precomputed kernel, and classical baselines on the same splits and folds.

One Gram serves every task:

- ``classification`` (binary or multi-class): ``SVC(kernel="precomputed")`` with C chosen by
  repeated stratified CV (ROC AUC for two classes, balanced accuracy for more), and, on request,
  Platt-scaled probabilities (``CalibratedClassifierCV``, one calibrator over cross-validated
  decisions). Baselines: an RBF SVC (C and bandwidth tuned), a logistic regression, a random
  forest.
- ``regression``: ``SVR`` (C and epsilon tuned) or kernel ridge on the precomputed kernel, by
  repeated K-fold CV on R^2. Baselines: an RBF SVR, ridge regression, a random forest.
- ``clustering``: spectral clustering of the kernel (patient strata); a test sample joins the
  stratum it is most similar to on average. Scored by the silhouette in the kernel's own
  geometry and, when the cohort has a label, by the adjusted Rand index against it. Baselines:
  spectral clustering with an RBF affinity and k-means, on the same features.

The baselines see the preprocessed features of exactly the samples the quantum model sees, with
the same CV folds, so the comparison is like for like. Quantum metrics are unprefixed; baseline
metrics carry the baseline's prefix (``rbf_``, ``logreg_``, ``ridge_``, ``forest_``, ``kmeans_``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    adjusted_rand_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    normalized_mutual_info_score,
    r2_score,
    roc_auc_score,
    silhouette_score,
)
from sklearn.model_selection import GridSearchCV, RepeatedKFold, RepeatedStratifiedKFold
from sklearn.svm import SVC, SVR

from qdist.config import TrainingSpec

__all__ = ["TrainingResult", "train_task", "cv_score", "BASELINES", "comparison_rows"]

BASELINES = {
    "classification": (("rbf_", "RBF SVC"), ("logreg_", "logistic regression"),
                       ("forest_", "random forest")),
    "regression": (("rbf_", "RBF SVR"), ("ridge_", "ridge regression"), ("forest_", "random forest")),
    "clustering": (("rbf_", "spectral (RBF)"), ("kmeans_", "k-means")),
}
"""Baseline metric prefixes and display names, by task."""

_SHOWN = {
    "classification": ("test_accuracy", "test_balanced_accuracy", "test_roc_auc", "cv_mean",
                       "cv_std"),
    "regression": ("test_r2", "test_rmse", "test_spearman", "cv_mean", "cv_std"),
    "clustering": ("train_ari", "test_ari", "train_nmi", "silhouette"),
}


@dataclass
class TrainingResult:
    """The fitted quantum-kernel model of one target and every metric, quantum and baseline."""

    task: str
    model: Any
    """The fitted estimator on the precomputed kernel (``None`` for clustering)."""
    metrics: dict[str, float] = field(default_factory=dict)
    calibrator: Any = None
    """``CalibratedClassifierCV`` for probabilities (classification, on request)."""
    class_names: tuple[str, ...] = ()
    assignments: np.ndarray | None = None
    """Clustering: the stratum of each training sample."""
    cv_scoring: str = ""
    """What ``cv_mean`` / ``cv_std`` measure (``roc_auc``, ``balanced_accuracy``, ``r2``)."""
    projection: np.ndarray | None = None
    """Nystrom: ``(m, r)`` map from kernel rows against the landmarks (the first m training
    samples) to the features ``model`` is linear in."""

    @property
    def support(self) -> np.ndarray:
        """Training samples the model's predictions use (support vectors, or landmarks)."""
        if self.projection is not None:
            return np.arange(self.projection.shape[0])
        if hasattr(self.model, "support_"):
            return np.asarray(self.model.support_)
        return np.arange(np.asarray(self.model.dual_coef_).shape[0])


def _cv(task: str, y: np.ndarray | None, spec: TrainingSpec, seed: int) -> Any:
    if task == "classification":
        assert y is not None
        smallest = int(np.bincount(y).min())
        return RepeatedStratifiedKFold(n_splits=max(2, min(spec.cv_folds, smallest)),
                                       n_repeats=spec.cv_repeats, random_state=seed)
    return RepeatedKFold(n_splits=spec.cv_folds, n_repeats=spec.cv_repeats, random_state=seed)


def _cv_stats(search: GridSearchCV) -> dict[str, float]:
    best = search.best_index_
    return {"cv_mean": float(search.cv_results_["mean_test_score"][best]),
            "cv_std": float(search.cv_results_["std_test_score"][best])}


def train_task(task: str, k_train: np.ndarray, y_train: np.ndarray | None, k_test: np.ndarray,
               y_test: np.ndarray | None, f_train: np.ndarray, f_test: np.ndarray,
               spec: TrainingSpec, seed: int, class_names: tuple[str, ...] = ()) -> TrainingResult:
    """Fit the quantum-kernel model of ``task`` and its baselines; return model and metrics."""
    if task == "classification":
        assert y_train is not None and y_test is not None
        return _classify(k_train, y_train, k_test, y_test, f_train, f_test, spec, seed, class_names)
    if task == "regression":
        assert y_train is not None and y_test is not None
        return _regress(k_train, y_train, k_test, y_test, f_train, f_test, spec, seed)
    return _cluster(k_train, y_train, k_test, y_test, f_train, f_test, spec, seed)


def cv_score(task: str, k_train: np.ndarray, y_train: np.ndarray, spec: TrainingSpec,
             seed: int) -> tuple[float, float]:
    """Mean and spread of the quantum model's repeated-CV score on a precomputed kernel (the
    score :func:`train_task` selects with), for comparing kernels on the training folds only."""
    if task == "classification":
        binary = len(np.unique(y_train)) == 2
        est, scoring = SVC(kernel="precomputed"), "roc_auc" if binary else "balanced_accuracy"
    else:
        est, scoring = SVR(kernel="precomputed"), "r2"
    search = GridSearchCV(est, {"C": list(spec.c_grid)}, cv=_cv(task, y_train, spec, seed),
                          scoring=scoring).fit(k_train, y_train)
    stats = _cv_stats(search)
    return stats["cv_mean"], stats["cv_std"]


# ----------------------------------------------------------------------------- classification
def _class_scores(prefix: str, y: np.ndarray, pred: np.ndarray, score: np.ndarray | None,
                  n_classes: int) -> dict[str, float]:
    out = {f"{prefix}test_accuracy": float(accuracy_score(y, pred)),
           f"{prefix}test_balanced_accuracy": float(balanced_accuracy_score(y, pred)),
           f"{prefix}test_f1_macro": float(f1_score(y, pred, average="macro"))}
    auc = float("nan")
    if score is not None and len(np.unique(y)) == n_classes:
        auc = float(roc_auc_score(y, score) if n_classes == 2
                    else roc_auc_score(y, score, multi_class="ovr", labels=np.arange(n_classes)))
    out[f"{prefix}test_roc_auc"] = auc
    return out


def _classify(k_train: np.ndarray, y_train: np.ndarray, k_test: np.ndarray, y_test: np.ndarray,
              f_train: np.ndarray, f_test: np.ndarray, spec: TrainingSpec, seed: int,
              class_names: tuple[str, ...]) -> TrainingResult:
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    binary = n_classes == 2
    scoring = "roc_auc" if binary else "balanced_accuracy"
    cv = _cv("classification", y_train, spec, seed)
    search = GridSearchCV(SVC(kernel="precomputed"), {"C": list(spec.c_grid)}, cv=cv,
                          scoring=scoring, refit=True)
    search.fit(k_train, y_train)
    model, calibrator = search.best_estimator_, None
    if spec.probability:
        folds = max(2, min(spec.cv_folds, int(np.bincount(y_train).min())))
        calibrator = CalibratedClassifierCV(clone(model), method="sigmoid", cv=folds,
                                            ensemble=False).fit(k_train, y_train)
        model = calibrator.calibrated_classifiers_[0].estimator  # the same SVC, fit on all of K
    score = (model.decision_function(k_test) if binary
             else calibrator.predict_proba(k_test) if calibrator is not None else None)
    metrics = _class_scores("", y_test, model.predict(k_test), score, n_classes)
    metrics.update(_cv_stats(search))
    metrics["best_C"] = float(search.best_params_["C"])
    metrics["n_support"] = float(model.support_.size)
    d = f_train.shape[1]
    gammas = [g / (d * max(float(f_train.var()), 1e-12)) for g in (0.1, 0.3, 1.0, 3.0)]
    baselines = {
        "rbf_": GridSearchCV(SVC(kernel="rbf"), {"C": list(spec.c_grid), "gamma": gammas},
                             cv=cv, scoring=scoring),
        "logreg_": GridSearchCV(LogisticRegression(max_iter=2000), {"C": list(spec.c_grid)},
                                cv=cv, scoring=scoring),
        "forest_": GridSearchCV(RandomForestClassifier(n_estimators=200, random_state=seed),
                                {"max_depth": [3, None]}, cv=cv, scoring=scoring),
    }
    for prefix, base in baselines.items():
        base.fit(f_train, y_train)
        est = base.best_estimator_
        if binary:
            s = (est.decision_function(f_test) if hasattr(est, "decision_function")
                 else est.predict_proba(f_test)[:, 1])
        elif hasattr(est, "predict_proba"):
            s = est.predict_proba(f_test)
        else:  # an SVC has no probabilities: calibrate it like the quantum model
            folds = max(2, min(spec.cv_folds, int(np.bincount(y_train).min())))
            s = CalibratedClassifierCV(clone(est), method="sigmoid", cv=folds,
                                       ensemble=False).fit(f_train, y_train).predict_proba(f_test)
        metrics.update(_class_scores(prefix, y_test, est.predict(f_test), s, n_classes))
        metrics.update({prefix + k: v for k, v in _cv_stats(base).items()})
    return TrainingResult("classification", model, metrics, calibrator, class_names,
                          cv_scoring=scoring)


# --------------------------------------------------------------------------------- regression
def _reg_scores(prefix: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    rho = spearmanr(y, pred).statistic if np.ptp(pred) > 0 else float("nan")
    return {f"{prefix}test_r2": float(r2_score(y, pred)),
            f"{prefix}test_rmse": float(np.sqrt(mean_squared_error(y, pred))),
            f"{prefix}test_mae": float(mean_absolute_error(y, pred)),
            f"{prefix}test_spearman": float(rho)}


def _regress(k_train: np.ndarray, y_train: np.ndarray, k_test: np.ndarray, y_test: np.ndarray,
             f_train: np.ndarray, f_test: np.ndarray, spec: TrainingSpec,
             seed: int) -> TrainingResult:
    cv = _cv("regression", None, spec, seed)
    eps = [e * float(np.std(y_train)) for e in (0.05, 0.2)]
    if spec.regressor == "svr":
        search = GridSearchCV(SVR(kernel="precomputed"), {"C": list(spec.c_grid), "epsilon": eps},
                              cv=cv, scoring="r2")
    else:
        search = GridSearchCV(KernelRidge(kernel="precomputed"),
                              {"alpha": [1.0 / c for c in spec.c_grid]}, cv=cv, scoring="r2")
    search.fit(k_train, y_train)
    model = search.best_estimator_
    metrics = _reg_scores("", y_test, model.predict(k_test))
    metrics.update(_cv_stats(search))
    result = TrainingResult("regression", model, metrics, cv_scoring="r2")
    metrics["n_support"] = float(result.support.size)
    d = f_train.shape[1]
    gammas = [g / (d * max(float(f_train.var()), 1e-12)) for g in (0.1, 0.3, 1.0, 3.0)]
    baselines = {
        "rbf_": GridSearchCV(SVR(kernel="rbf"), {"C": list(spec.c_grid), "gamma": gammas,
                                                 "epsilon": eps}, cv=cv, scoring="r2"),
        "ridge_": GridSearchCV(Ridge(), {"alpha": [1.0 / c for c in spec.c_grid]}, cv=cv,
                               scoring="r2"),
        "forest_": GridSearchCV(RandomForestRegressor(n_estimators=200, random_state=seed),
                                {"max_depth": [3, None]}, cv=cv, scoring="r2"),
    }
    for prefix, base in baselines.items():
        base.fit(f_train, y_train)
        metrics.update(_reg_scores(prefix, y_test, base.best_estimator_.predict(f_test)))
        metrics.update({prefix + k: v for k, v in _cv_stats(base).items()})
    return result


# --------------------------------------------------------------------------------- clustering
def kernel_distance(k: np.ndarray) -> np.ndarray:
    """The feature-space distance of a normalised kernel: ``sqrt(max(2 - 2 K, 0))``."""
    d = np.sqrt(np.clip(2.0 - 2.0 * k, 0.0, None))
    np.fill_diagonal(d, 0.0)
    return d


def assign_to_strata(k_cross: np.ndarray, train_labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Each new sample joins the stratum whose training members it is most similar to on average."""
    means = np.stack([k_cross[:, train_labels == c].mean(axis=1) if (train_labels == c).any()
                      else np.full(k_cross.shape[0], -np.inf) for c in range(n_clusters)], axis=1)
    return means.argmax(axis=1)


def _cluster_scores(prefix: str, labels_train: np.ndarray, labels_test: np.ndarray,
                    y_train: np.ndarray | None, y_test: np.ndarray | None, dist: np.ndarray,
                    metric: str) -> dict[str, float]:
    out: dict[str, float] = {}
    out[f"{prefix}silhouette"] = (float(silhouette_score(dist, labels_train, metric=metric))
                                  if 1 < len(np.unique(labels_train)) < len(labels_train)
                                  else float("nan"))
    if y_train is not None and y_test is not None:
        out[f"{prefix}train_ari"] = float(adjusted_rand_score(y_train, labels_train))
        out[f"{prefix}train_nmi"] = float(normalized_mutual_info_score(y_train, labels_train))
        out[f"{prefix}test_ari"] = float(adjusted_rand_score(y_test, labels_test))
    return out


def _cluster(k_train: np.ndarray, y_train: np.ndarray | None, k_test: np.ndarray,
             y_test: np.ndarray | None, f_train: np.ndarray, f_test: np.ndarray,
             spec: TrainingSpec, seed: int) -> TrainingResult:
    k = spec.n_clusters
    affinity = np.clip((k_train + k_train.T) / 2, 0.0, None)  # shot noise can dip below 0
    labels = SpectralClustering(k, affinity="precomputed", random_state=seed).fit_predict(affinity)
    metrics = _cluster_scores("", labels, assign_to_strata(k_test, labels, k), y_train, y_test,
                              kernel_distance(k_train), "precomputed")
    metrics["cluster_sizes_min"] = float(np.bincount(labels, minlength=k).min())
    gamma = 1.0 / (f_train.shape[1] * max(float(f_train.var()), 1e-12))
    rbf = SpectralClustering(k, affinity="rbf", gamma=gamma, random_state=seed).fit(f_train)
    d2 = ((f_test[:, None, :] - f_train[None, :, :]) ** 2).sum(-1)
    rbf_test = assign_to_strata(np.exp(-gamma * d2), rbf.labels_, k)
    metrics.update(_cluster_scores("rbf_", rbf.labels_, rbf_test, y_train, y_test, f_train,
                                   "euclidean"))
    km = KMeans(k, n_init=10, random_state=seed).fit(f_train)
    metrics.update(_cluster_scores("kmeans_", km.labels_, km.predict(f_test), y_train, y_test,
                                   f_train, "euclidean"))
    return TrainingResult("clustering", None, metrics, assignments=labels)


# ------------------------------------------------------------------------------- presentation
def comparison_rows(metrics: dict[str, float], task: str,
                    prefix: str = "") -> tuple[tuple[str, ...], list[tuple[str, list[float]]]]:
    """The side-by-side table of one target: column names, and per model its values."""
    cols = _SHOWN[task]
    models = [("quantum kernel", "")] + [(f"baseline: {name}", p) for p, name in BASELINES[task]]
    rows = [(name, [metrics.get(f"{prefix}{p}{c}", float("nan")) for c in cols])
            for name, p in models]
    return cols, rows
