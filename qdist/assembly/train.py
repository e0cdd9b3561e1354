"""Training and evaluation with scikit-learn on the precomputed kernel, and the classical
baseline on the same split.

The quantum model is ``SVC(kernel="precomputed")`` with C chosen by stratified CV (ROC AUC);
the baselines (an RBF-kernel SVC, a logistic regression and a random forest) use the same
preprocessed features and are tuned on the same folds, so all are compared on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

from qdist.config import TrainingSpec

__all__ = ["TrainingResult", "train_and_evaluate"]


@dataclass
class TrainingResult:
    """The fitted quantum-kernel SVC and every metric, quantum and baseline."""

    model: SVC
    best_c: float
    metrics: dict[str, float] = field(default_factory=dict)


def _cv(y: np.ndarray, folds: int, seed: int) -> StratifiedKFold:
    smallest = int(np.bincount(y).min())
    return StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)


def _scores(prefix: str, y: np.ndarray, pred: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {
        f"{prefix}test_accuracy": float(accuracy_score(y, pred)),
        f"{prefix}test_balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        f"{prefix}test_roc_auc": float(roc_auc_score(y, score)) if len(np.unique(y)) > 1
        else float("nan"),
    }


def train_and_evaluate(
    k_train: np.ndarray,
    y_train: np.ndarray,
    k_test: np.ndarray,
    y_test: np.ndarray,
    f_train: np.ndarray,
    f_test: np.ndarray,
    spec: TrainingSpec,
    seed: int,
) -> TrainingResult:
    """Fit the quantum-kernel SVC and the RBF baseline; return the model and all metrics."""
    cv = _cv(y_train, spec.cv_folds, seed)
    search = GridSearchCV(SVC(kernel="precomputed"), {"C": list(spec.c_grid)}, cv=cv,
                          scoring="roc_auc", refit=True)
    search.fit(k_train, y_train)
    model: SVC = search.best_estimator_
    metrics = _scores("", y_test, model.predict(k_test), model.decision_function(k_test))
    best = search.best_index_
    metrics["cv_roc_auc_mean"] = float(search.cv_results_["mean_test_score"][best])
    metrics["cv_roc_auc_std"] = float(search.cv_results_["std_test_score"][best])
    metrics["best_C"] = float(search.best_params_["C"])
    metrics["n_support"] = float(model.support_.size)

    metrics.update(_baselines(f_train, y_train, f_test, y_test, spec, cv, seed))
    return TrainingResult(model=model, best_c=metrics["best_C"], metrics=metrics)


def _baselines(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray,
               spec: TrainingSpec, cv: StratifiedKFold, seed: int) -> dict[str, float]:
    """Classical models on the same features, split and folds: an RBF SVC (C and bandwidth
    tuned), an L2 logistic regression (C tuned) and a random forest."""
    d = f_train.shape[1]
    gammas = [g / (d * max(float(f_train.var()), 1e-12)) for g in (0.1, 0.3, 1.0, 3.0)]
    searches = {
        "rbf_": GridSearchCV(SVC(kernel="rbf"), {"C": list(spec.c_grid), "gamma": gammas},
                             cv=cv, scoring="roc_auc"),
        "logreg_": GridSearchCV(LogisticRegression(max_iter=2000),
                                {"C": list(spec.c_grid)}, cv=cv, scoring="roc_auc"),
        "forest_": GridSearchCV(RandomForestClassifier(n_estimators=200, random_state=seed),
                                {"max_depth": [3, None]}, cv=cv, scoring="roc_auc"),
    }
    metrics: dict[str, float] = {}
    for prefix, search in searches.items():
        search.fit(f_train, y_train)
        est = search.best_estimator_
        score = (est.decision_function(f_test) if hasattr(est, "decision_function")
                 else est.predict_proba(f_test)[:, 1])
        metrics.update(_scores(prefix, y_test, est.predict(f_test), score))
        metrics[f"{prefix}cv_roc_auc_mean"] = float(search.best_score_)
    return metrics
