"""Training on Nystrom features: the landmark columns of the quantum kernel, and classical
baselines that get the same budget (an RBF Nystrom map with as many landmarks, a logistic
regression, a random forest), on the same split and repeated CV folds.

The quantum features are ``Phi = K(x, L) U_r diag(lambda_r)^-1/2`` from
:func:`qdist.assembly.nystrom.fit_nystrom`; the model is linear in them (``training.nystrom.model``
for classification, ridge for regression). Metric names are those of the exact path, plus
``nystrom_landmarks`` and ``nystrom_rank``.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from qdist.assembly.nystrom import fit_nystrom, linear_model
from qdist.assembly.train import TrainingResult, _class_scores, _cv, _cv_stats, _reg_scores
from qdist.config import TrainingSpec

__all__ = ["train_nystrom"]


def _score(est: object, f: np.ndarray, binary: bool) -> np.ndarray | None:
    if binary:
        return (est.decision_function(f) if hasattr(est, "decision_function")  # type: ignore[attr-defined]
                else est.predict_proba(f)[:, 1])  # type: ignore[attr-defined]
    return est.predict_proba(f) if hasattr(est, "predict_proba") else None


def train_nystrom(task: str, c_train: np.ndarray, y_train: np.ndarray, c_test: np.ndarray,
                  y_test: np.ndarray, f_train: np.ndarray, f_test: np.ndarray, spec: TrainingSpec,
                  seed: int, class_names: tuple[str, ...] = ()) -> TrainingResult:
    """Fit the linear model on the quantum Nystrom features of ``c_train = K(train, L)`` (the
    landmarks are the first ``m = c_train.shape[1]`` training samples) and the baselines."""
    m = c_train.shape[1]
    nmap = fit_nystrom(c_train[:m], np.arange(m))
    phi_train, phi_test = nmap.transform(c_train), nmap.transform(c_test)
    cv = _cv(task, y_train if task == "classification" else None, spec, seed)
    grid = list(spec.c_grid)
    d = f_train.shape[1]
    gamma = 1.0 / (d * max(float(f_train.var()), 1e-12))
    rbf_map = Nystroem(kernel="rbf", gamma=gamma, n_components=min(m, len(f_train)),
                       random_state=seed)
    if task == "regression":
        alphas = {"alpha": [1.0 / (2.0 * c) for c in grid]}
        search = GridSearchCV(Ridge(), alphas, cv=cv, scoring="r2").fit(phi_train, y_train)
        model = search.best_estimator_
        metrics = _reg_scores("", y_test, model.predict(phi_test))
        metrics.update(_cv_stats(search))
        baselines = {
            "rbf_": GridSearchCV(make_pipeline(rbf_map, Ridge()),
                                 {"ridge__alpha": alphas["alpha"]}, cv=cv, scoring="r2"),
            "ridge_": GridSearchCV(Ridge(), alphas, cv=cv, scoring="r2"),
            "forest_": GridSearchCV(RandomForestRegressor(n_estimators=100, random_state=seed,
                                                          n_jobs=-1), {"max_depth": [8]},
                                    cv=cv, scoring="r2"),
        }
        for prefix, base in baselines.items():
            base.fit(f_train, y_train)
            metrics.update(_reg_scores(prefix, y_test, base.best_estimator_.predict(f_test)))
            metrics.update({prefix + k: v for k, v in _cv_stats(base).items()})
        scoring = "r2"
    else:
        n_classes = int(max(y_train.max(), y_test.max())) + 1
        binary = n_classes == 2
        scoring = "roc_auc" if binary else "balanced_accuracy"
        kind = spec.nystrom.model
        params = {"alpha": [1.0 / (2.0 * c) for c in grid]} if kind == "ridge" else {"C": grid}
        search = GridSearchCV(linear_model(kind, 1.0, seed), params, cv=cv,
                              scoring=scoring).fit(phi_train, y_train)
        model = search.best_estimator_
        metrics = _class_scores("", y_test, model.predict(phi_test), _score(model, phi_test, binary),
                                n_classes)
        metrics.update(_cv_stats(search))
        rbf_params = {f"{type(linear_model(kind, 1.0, seed)).__name__.lower()}__{k}": v
                      for k, v in params.items()}
        baselines = {
            "rbf_": GridSearchCV(make_pipeline(rbf_map, linear_model(kind, 1.0, seed)), rbf_params,
                                 cv=cv, scoring=scoring),
            "logreg_": GridSearchCV(LogisticRegression(max_iter=2000), {"C": grid}, cv=cv,
                                    scoring=scoring),
            "forest_": GridSearchCV(RandomForestClassifier(n_estimators=100, random_state=seed,
                                                           n_jobs=-1), {"max_depth": [8]},
                                    cv=cv, scoring=scoring),
        }
        for prefix, base in baselines.items():
            base.fit(f_train, y_train)
            est = base.best_estimator_
            metrics.update(_class_scores(prefix, y_test, est.predict(f_test),
                                         _score(est, f_test, binary), n_classes))
            metrics.update({prefix + k: v for k, v in _cv_stats(base).items()})
    metrics["nystrom_landmarks"] = float(m)
    metrics["nystrom_rank"] = float(nmap.eigenvalues.size)
    metrics["n_support"] = float(m)
    return TrainingResult(task, model, metrics, class_names=class_names, cv_scoring=scoring,
                          projection=nmap.projection)
