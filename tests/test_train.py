"""Training on a precomputed kernel, and the classical baselines on the same split and folds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.svm import SVC

from qdist.assembly.train import comparison_rows, train_task
from qdist.config import TrainingSpec


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + 0.3 * rng.normal(size=120) > 0.4).astype(int)
    return x[:90], y[:90], x[90:], y[90:]


def test_precomputed_path_equals_sklearn_with_the_same_kernel(data):
    f_train, y_train, f_test, y_test = data
    spec = TrainingSpec(c_grid=(1.0,), cv_folds=3)
    k_train, k_test = rbf_kernel(f_train, gamma=0.3), rbf_kernel(f_test, f_train, gamma=0.3)
    result = train_task("classification", k_train, y_train, k_test, y_test, f_train, f_test, spec,
                        0)
    direct = SVC(kernel="rbf", gamma=0.3, C=1.0).fit(f_train, y_train)
    np.testing.assert_allclose(result.model.decision_function(k_test),
                               direct.decision_function(f_test), atol=1e-8)
    assert result.metrics["test_accuracy"] == pytest.approx(direct.score(f_test, y_test))


def test_every_baseline_reports_on_the_same_split(data):
    f_train, y_train, f_test, y_test = data
    k_train, k_test = rbf_kernel(f_train), rbf_kernel(f_test, f_train)
    m = train_task("classification", k_train, y_train, k_test, y_test, f_train, f_test,
                           TrainingSpec(c_grid=(0.1, 1.0, 10.0), cv_folds=3), 0).metrics
    for prefix in ("", "rbf_", "logreg_", "forest_"):
        for name in ("test_accuracy", "test_balanced_accuracy", "test_roc_auc"):
            assert 0.0 <= m[prefix + name] <= 1.0, prefix + name
    for prefix in ("", "rbf_", "logreg_", "forest_"):
        assert 0.5 < m[prefix + "cv_mean"] <= 1.0  # the signal is learnable
        assert 0.0 < m[prefix + "cv_std"] < 0.5  # 3 folds x 3 repeats: a spread, not one number


def test_repeated_cv_uses_the_same_folds_for_every_model(data):
    """Repeats reshuffle the folds: another repeat count changes the CV mean of every model."""
    f_train, y_train, f_test, y_test = data
    k_train, k_test = rbf_kernel(f_train), rbf_kernel(f_test, f_train)
    one = train_task("classification", k_train, y_train, k_test, y_test, f_train, f_test,
                     TrainingSpec(c_grid=(1.0,), cv_folds=3, cv_repeats=1), 0).metrics
    four = train_task("classification", k_train, y_train, k_test, y_test, f_train, f_test,
                      TrainingSpec(c_grid=(1.0,), cv_folds=3, cv_repeats=4), 0).metrics
    assert one["cv_mean"] != four["cv_mean"] and one["logreg_cv_mean"] != four["logreg_cv_mean"]
    assert one["test_accuracy"] == four["test_accuracy"]  # the final model does not depend on it


def test_multiclass_with_calibrated_probabilities():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 3))
    y = np.digitize(x[:, 0] + 0.3 * rng.normal(size=150), [-0.5, 0.5])  # 3 classes
    f_train, f_test, y_train, y_test = x[:110], x[110:], y[:110], y[110:]
    k_train, k_test = rbf_kernel(f_train), rbf_kernel(f_test, f_train)
    res = train_task("classification", k_train, y_train, k_test, y_test, f_train, f_test,
                     TrainingSpec(c_grid=(1.0, 10.0), cv_folds=3, cv_repeats=1), 0, ("a", "b", "c"))
    assert res.cv_scoring == "balanced_accuracy"
    proba = res.calibrator.predict_proba(k_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert res.metrics["test_accuracy"] > 0.6 and 0.5 < res.metrics["test_roc_auc"] <= 1.0
    for prefix in ("rbf_", "logreg_", "forest_"):
        assert res.metrics[prefix + "test_balanced_accuracy"] > 0.4


@pytest.mark.parametrize("regressor", ["svr", "kernel_ridge"])
def test_regression_on_the_precomputed_kernel_equals_sklearn(regressor):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.svm import SVR

    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 3))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.normal(size=120)
    f_train, f_test, y_train, y_test = x[:90], x[90:], y[:90], y[90:]
    k_train, k_test = rbf_kernel(f_train, gamma=0.5), rbf_kernel(f_test, f_train, gamma=0.5)
    spec = TrainingSpec(c_grid=(1.0,), cv_folds=3, cv_repeats=1, regressor=regressor)
    res = train_task("regression", k_train, y_train, k_test, y_test, f_train, f_test, spec, 0)
    params = res.model.get_params()
    direct = (SVR(kernel="rbf", gamma=0.5, C=1.0, epsilon=params["epsilon"]) if regressor == "svr"
              else KernelRidge(kernel="rbf", gamma=0.5, alpha=1.0)).fit(f_train, y_train)
    np.testing.assert_allclose(res.model.predict(k_test), direct.predict(f_test), atol=1e-8)
    assert res.metrics["test_r2"] > 0.7
    _, rows = comparison_rows(res.metrics, "regression")
    assert [r[0] for r in rows] == ["quantum kernel", "baseline: RBF SVR", "baseline: ridge regression",
                                    "baseline: random forest"]
    assert all(np.isfinite(v) for _, vals in rows for v in vals)


def test_clustering_finds_the_strata_of_a_block_kernel():
    rng = np.random.default_rng(3)
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = np.repeat(np.arange(3), 40)
    x = centers[y] + 0.5 * rng.normal(size=(120, 2))
    order = rng.permutation(120)
    x, y = x[order], y[order]
    k = rbf_kernel(x, gamma=0.5)
    res = train_task("clustering", k[:90, :90], y[:90], k[90:, :90], y[90:], x[:90], x[90:],
                     TrainingSpec(n_clusters=3), 0)
    assert res.model is None and res.assignments.shape == (90,)
    assert res.metrics["train_ari"] > 0.9 and res.metrics["test_ari"] > 0.9
    assert res.metrics["kmeans_train_ari"] > 0.9 and "rbf_silhouette" in res.metrics
    shuffled = train_task("clustering", k[:90, :90], rng.permutation(y[:90]), k[90:, :90], y[90:],
                          x[:90], x[90:], TrainingSpec(n_clusters=3), 0)
    assert shuffled.metrics["train_ari"] < 0.2  # scored against the labels, not assumed
