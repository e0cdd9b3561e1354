"""The MPS backend in a job: the same kernel as the state-vector engine where both run, and a
100-qubit job with its bond dimension and truncation error recorded."""

from __future__ import annotations

import numpy as np
import pytest

from qdist.api import open_store, run_job
from qdist.config import config_from_dict
from qdist.errors import ConfigError

from .conftest import small_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def test_mps_job_equals_the_batched_engine(tmp_path):
    job = small_job(tmp_path / "mps", feature_map={"kind": "zz", "qubits": 5, "reps": 2,
                                                   "entanglement": "linear", "bandwidth": 0.8},
                    backend={"kind": "mps", "max_bond": 32},
                    training={"c_grid": [1.0], "cv_folds": 3, "cv_repeats": 1})
    mps = run_job(job)
    ref = run_job({**job, "backend": {"kind": "batched"}, "output": {"dir": str(tmp_path / "ref")}})
    a, b = open_store(mps.store), open_store(ref.store)
    np.testing.assert_allclose(np.asarray(a.k_train), np.asarray(b.k_train), atol=1e-10)
    np.testing.assert_allclose(np.asarray(a.k_test), np.asarray(b.k_test), atol=1e-10)
    assert mps.metrics["mps_max_bond"] <= 4 and mps.metrics["mps_max_truncation_error"] < 1e-12


def test_hundred_qubits_with_bond_and_truncation_recorded(tmp_path):
    job = small_job(tmp_path, data={"source": "synthetic",
                                    "synthetic": {"n_samples": 40, "blocks": {"omics": 100},
                                                  "n_latent": 3}},
                    preprocess={"reduction": "none"},
                    feature_map={"kind": "zz", "qubits": 100, "reps": 2, "bandwidth": 0.05},
                    backend={"kind": "mps", "max_bond": 16},
                    tiles={"size": 16, "workers": 2},
                    training={"c_grid": [1.0], "cv_folds": 3, "cv_repeats": 1})
    result = run_job(job)
    m = result.metrics
    assert 2 <= m["mps_max_bond"] <= 16 and m["mps_max_truncation_error"] >= 0.0
    k = np.asarray(open_store(result.store).k_train)
    np.testing.assert_allclose(np.diag(k), 1.0, atol=1e-9)
    assert 0.0 < m["kernel_offdiag_mean"] < 1.0


def test_state_vector_backends_refuse_too_many_qubits():
    with pytest.raises(ConfigError, match=r"feature_map.qubits.*at most 30.*backend.kind: mps"):
        config_from_dict({"feature_map": {"qubits": 40}})
    assert config_from_dict({"feature_map": {"qubits": 40},
                             "backend": {"kind": "mps"}}).feature_map.qubits == 40
