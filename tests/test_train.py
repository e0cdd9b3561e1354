"""Training on a precomputed kernel, and the classical baselines on the same split and folds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.svm import SVC

from qdist.assembly.train import train_and_evaluate
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
    result = train_and_evaluate(k_train, y_train, k_test, y_test, f_train, f_test, spec, 0)
    direct = SVC(kernel="rbf", gamma=0.3, C=1.0).fit(f_train, y_train)
    np.testing.assert_allclose(result.model.decision_function(k_test),
                               direct.decision_function(f_test), atol=1e-8)
    assert result.metrics["test_accuracy"] == pytest.approx(direct.score(f_test, y_test))


def test_every_baseline_reports_on_the_same_split(data):
    f_train, y_train, f_test, y_test = data
    k_train, k_test = rbf_kernel(f_train), rbf_kernel(f_test, f_train)
    m = train_and_evaluate(k_train, y_train, k_test, y_test, f_train, f_test,
                           TrainingSpec(c_grid=(0.1, 1.0, 10.0), cv_folds=3), 0).metrics
    for prefix in ("", "rbf_", "logreg_", "forest_"):
        for name in ("test_accuracy", "test_balanced_accuracy", "test_roc_auc"):
            assert 0.0 <= m[prefix + name] <= 1.0, prefix + name
    for prefix in ("rbf_", "logreg_", "forest_"):
        assert 0.5 < m[prefix + "cv_roc_auc_mean"] <= 1.0  # the signal is learnable
