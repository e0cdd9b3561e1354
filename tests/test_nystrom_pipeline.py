"""The Nystrom path of a job: only the landmark tiles are computed, m = n reproduces the exact
kernel, the planner picks Nystrom when the exact Gram does not fit, and the logged model scores
new patients against the landmarks only."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from qdist.api import open_store, run_job
from qdist.config import config_from_dict
from qdist.errors import PlanError
from qdist.pipeline import prepare
from qdist.planning import make_plan
from qdist.planning.plan import landmark_plan

from .conftest import small_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def _job(tmp_path, **training):
    return small_job(tmp_path, data={"source": "synthetic",
                                     "synthetic": {"n_samples": 80, "blocks": {"rna": 12, "prot": 5},
                                                   "n_latent": 2}},
                     training={"c_grid": [0.1, 1.0, 10.0], "cv_folds": 3, "cv_repeats": 1,
                               **training})


def test_only_landmark_tiles_are_computed_and_the_model_uses_only_landmarks(tmp_path):
    job = _job(tmp_path, method="nystrom", nystrom={"landmarks": 20})  # rounded up to 32
    result = run_job(job)
    prep = prepare(config_from_dict(job))
    assert prep.method == "nystrom" and prep.landmarks == 32
    full = make_plan(result.n_train, result.n_test, 16, 0)
    expected = landmark_plan(full, 32)
    assert result.tiles_computed == len(expected.tiles) < len(full.tiles)
    assert {t.row_block for t in expected.tiles if t.matrix == "k_train"} == {0, 1}
    m = result.metrics
    assert m["nystrom_landmarks"] == 32 and 1 <= m["nystrom_rank"] <= 32
    assert {"test_roc_auc", "rbf_test_roc_auc", "logreg_test_roc_auc", "cv_mean"} <= set(m)
    assert m["diagnostics_on_landmarks_only"] == 1.0

    view = open_store(result.store)
    assert np.isnan(np.asarray(view.k_train)[32:, 32:]).all()  # never computed
    mlflow.set_tracking_uri(result.tracking_uri)
    model = mlflow.pyfunc.load_model(result.model_uri).unwrap_python_model()
    raw = pd.DataFrame(prep.cohort.features[prep.idx_test], columns=prep.cohort.feature_names)
    out = model.predict(None, raw)
    assert model.kernel_evaluations == len(raw) * 32  # against the landmarks only
    phi = np.asarray(view.k_test)[:, :32] @ model.projection
    np.testing.assert_allclose(out["decision"], model.estimator.decision_function(phi), atol=1e-9)
    accuracy = np.mean(out["prediction"].astype(int).to_numpy() == prep.y_test)
    assert accuracy == pytest.approx(m["test_accuracy"])


def test_all_samples_as_landmarks_reproduce_the_exact_kernel(tmp_path):
    job = _job(tmp_path, method="nystrom", nystrom={"landmarks": 1000, "full_gram": True})
    result = run_job(job)
    assert result.metrics["nystrom_landmarks"] == result.n_train
    exact = run_job(_job(tmp_path / "exact", method="exact"))
    k_nys, k_exact = np.asarray(open_store(result.store).k_train), np.asarray(
        open_store(exact.store).k_train)
    prep = prepare(config_from_dict(job))
    perm = np.searchsorted(np.sort(prep.idx_train), prep.idx_train)  # the exact run keeps id order
    assert sorted(perm) == list(range(result.n_train))
    np.testing.assert_allclose(k_nys, k_exact[np.ix_(perm, perm)], atol=1e-12)
    mlflow.set_tracking_uri(result.tracking_uri)
    model = mlflow.pyfunc.load_model(result.model_uri).unwrap_python_model()
    phi = k_nys @ model.projection
    np.testing.assert_allclose(phi @ phi.T, k_nys, atol=1e-8)  # Phi Phi^T = K when m = n
    m = result.metrics
    assert m["diagnostics_on_landmarks_only"] == 0.0
    assert m["kernel_offdiag_mean"] == pytest.approx(exact.metrics["kernel_offdiag_mean"], abs=1e-9)
    assert abs(m["nystrom_accuracy_gap"]) <= 0.1


def test_planner_chooses_nystrom_when_the_exact_gram_does_not_fit(tmp_path):
    tiny = 5e-5  # GiB (~54 kB): 60 training and 20 test samples need ~ 96 kB
    prep = prepare(config_from_dict(_job(tmp_path, exact_max_gb=tiny, nystrom={"landmarks": 16})))
    assert prep.method == "nystrom" and prep.landmarks == 16
    with pytest.raises(PlanError, match=r"training.exact_max_gb=5e-05.*training.method: nystrom"):
        prepare(config_from_dict(_job(tmp_path, method="exact", exact_max_gb=tiny)))
    assert prepare(config_from_dict(_job(tmp_path))).method == "exact"
