"""Projected quantum kernels in a job: per-sample features stored, the kernel equal to one built
from Statevector reduced density matrices, and gamma sweeps with no new quantum work."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from qiskit.quantum_info import DensityMatrix, Statevector, partial_trace

from qdist.api import open_store, run_job
from qdist.config import config_from_dict
from qdist.pipeline import prepare

from .conftest import small_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def _rdm_oracle(circuit, x):
    """Per sample, the one-qubit reduced density matrices by partial trace of a Statevector."""
    out = []
    for row in x:
        sv = Statevector(circuit.assign_parameters(row))
        q = circuit.num_qubits
        out.append([DensityMatrix(partial_trace(sv, [j for j in range(q) if j != k])).data
                    for k in range(q)])
    return np.asarray(out)


def test_projected_kernel_matches_statevector_rdms_and_sweeps_gamma_without_quantum_work(tmp_path):
    job = small_job(tmp_path, feature_map={"kind": "zz", "qubits": 3, "reps": 2, "bandwidth": 0.8},
                    backend={"kind": "batched", "kernel": "projected", "projected_gamma": 0.5,
                             "projected_gamma_sweep": [0.1, 2.0]},
                    training={"c_grid": [1.0, 10.0], "cv_folds": 3, "cv_repeats": 1})
    result = run_job(job)
    view = open_store(result.store)
    rho_train = _rdm_oracle(view.feature_map, view.x_train)
    rho_test = _rdm_oracle(view.feature_map, view.x_test)

    def kernel(a, b, gamma):
        d = (np.abs(a[:, None] - b[None, :]) ** 2).sum(axis=(2, 3, 4))  # sum_k ||.||_F^2
        return np.exp(-gamma * d)

    np.testing.assert_allclose(np.asarray(view.k_train), kernel(rho_train, rho_train, 0.5),
                               atol=1e-10)
    np.testing.assert_allclose(np.asarray(view.k_test), kernel(rho_test, rho_train, 0.5), atol=1e-10)
    from qdist.kernel.projected import projected_features
    from qdist.storage import GramStore

    feats = GramStore.open(result.store).read("proj_train")  # every sample's, stored once
    np.testing.assert_allclose(feats, projected_features(rho_train), atol=1e-12)

    m = result.metrics
    assert m["projected_gamma_best"] in (0.5, 0.1, 2.0)
    mlflow.set_tracking_uri(result.tracking_uri)
    model = mlflow.pyfunc.load_model(result.model_uri).unwrap_python_model()
    assert model.backend.projected_gamma == m["projected_gamma_best"]
    prep = prepare(config_from_dict(job))
    raw = pd.DataFrame(prep.cohort.features[prep.idx_test], columns=prep.cohort.feature_names)
    accuracy = np.mean(model.predict(None, raw)["prediction"].astype(int).to_numpy() == prep.y_test)
    assert accuracy == pytest.approx(m["test_accuracy"])

    other = {**job, "backend": {**job["backend"], "projected_gamma_sweep": [0.05, 1.0, 4.0]}}
    again = run_job(other)  # another sweep reuses the stored features and tiles: no quantum work
    assert again.tiles_computed == 0 and again.store == result.store
    assert again.metrics["projected_gamma_best"] in (0.5, 0.05, 1.0, 4.0)


def test_projected_kernel_on_mps_matches_the_batched_engine(tmp_path):
    base = small_job(tmp_path / "a", feature_map={"kind": "zz", "qubits": 4, "reps": 2,
                                                  "bandwidth": 0.8},
                     backend={"kind": "mps", "kernel": "projected", "projected_gamma": 1.0},
                     training={"c_grid": [1.0], "cv_folds": 3, "cv_repeats": 1})
    mps = run_job(base)
    ref = run_job({**base, "backend": {"kind": "batched", "kernel": "projected"},
                   "output": {"dir": str(tmp_path / "b")}})
    np.testing.assert_allclose(np.asarray(open_store(mps.store).k_train),
                               np.asarray(open_store(ref.store).k_train), atol=1e-10)
