"""The real CLI end to end: `qdist run --json` on a small job with a real local Ray and a real
MLflow store, then the store opened with zarr and the run with the MLflow client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
import zarr
from qiskit_machine_learning.kernels import FidelityStatevectorKernel

from qdist.kernel.feature_maps import circuit_from_qpy

from .conftest import REPO, small_job

pytestmark = pytest.mark.integration


def qdist(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
    full_env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "qdist.cli", *args], capture_output=True,
                          text=True, cwd=cwd or REPO, env=full_env, timeout=600)


def _write_job(tmp_path, job) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    job = small_job(tmp, tracking={"experiment": "e2e"})
    path = _write_job(tmp, job)
    proc = qdist("run", str(path), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return tmp, path, job, summary


def test_json_summary(finished_run):
    _, _, _, s = finished_run
    for key in ("run_id", "store", "tracking_uri", "mlflow_run_id", "n_train", "n_test",
                "tiles_total", "tiles_computed", "metrics"):
        assert key in s
    assert s["n_train"] + s["n_test"] == 60 and s["n_test"] == 15
    assert s["tiles_computed"] == s["tiles_total"] == 6 + 3  # 3 train blocks -> 6 upper, 1x3 test
    assert 0.0 <= s["metrics"]["test_accuracy"] <= 1.0
    assert "rbf_test_accuracy" in s["metrics"]


def test_store_contents(finished_run):
    _, _, _, s = finished_run
    g = zarr.open_group(s["store"], mode="r")
    n_train, n_test = s["n_train"], s["n_test"]
    assert g["x_train"].shape == (n_train, 3) and g["x_train"].dtype == np.float64
    assert g["x_test"].shape == (n_test, 3)
    assert g["y_train"].shape == (n_train,) and g["y_test"].shape == (n_test,)
    ids = list(g["sample_ids_train"][...]) + list(g["sample_ids_test"][...])
    assert len(set(ids)) == 60 and all(i.startswith("s-") for i in ids)
    k = g["k_train"]
    assert k.shape == (n_train, n_train) and k.chunks == (16, 16) and np.isnan(k.fill_value)
    raw = k[...]
    assert np.isnan(raw[16:32, 0:16]).all()  # lower tiles are never written
    attrs = g.attrs["qdist"]
    assert attrs["config"]["feature_map"]["qubits"] == 3
    assert attrs["fingerprint"] and attrs["data_fingerprint"]
    assert attrs["versions"]["qiskit"] and attrs["plan"]["tiles_total"] == 9
    assert attrs["completion"]["complete"] is True
    # the oracle, on exactly what the store holds
    circuit = circuit_from_qpy(g["feature_map_qpy"][...])
    oracle = FidelityStatevectorKernel(feature_map=circuit)
    x_train, x_test = g["x_train"][...], g["x_test"][...]
    full = np.triu(raw) + np.triu(raw, 1).T
    np.testing.assert_allclose(full, oracle.evaluate(x_train), atol=1e-10, rtol=0)
    np.testing.assert_allclose(g["k_test"][...], oracle.evaluate(x_test, x_train), atol=1e-10,
                               rtol=0)


def test_mlflow_contents(finished_run):
    import mlflow
    from mlflow.tracking import MlflowClient

    tmp, _, job, s = finished_run
    client = MlflowClient(s["tracking_uri"])
    run = client.get_run(s["mlflow_run_id"])
    params = run.data.params
    assert params["feature_map.kind"] == "zz" and params["tiles.size"] == "16"
    assert params["training.c_grid"] == "[0.1, 1.0, 10.0]"
    metrics = run.data.metrics
    for name in ("test_accuracy", "test_roc_auc", "test_balanced_accuracy", "rbf_test_accuracy",
                 "rbf_test_roc_auc", "logreg_test_roc_auc", "forest_test_roc_auc",
                 "kernel_offdiag_mean", "kernel_target_alignment",
                 "cv_mean", "cv_std", "logreg_cv_mean", "best_C", "tiles_done"):
        assert name in metrics, name
    assert metrics["test_accuracy"] == pytest.approx(s["metrics"]["test_accuracy"])
    assert client.get_metric_history(run.info.run_id, "tiles_done")[-1].value == 9
    # live progress: throughput and ETA beside the tile count, the last ETA zero
    assert client.get_metric_history(run.info.run_id, "tiles_per_second")[-1].value > 0
    assert client.get_metric_history(run.info.run_id, "eta_seconds")[-1].value == 0
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"job.yaml", "store_uri.txt", "comparison.md", "plots"} <= names
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/kernel_heatmap.png", "plots/kernel_spectrum.png"}
    local = client.download_artifacts(run.info.run_id, "plots/kernel_heatmap.png", str(tmp))
    assert Path(local).read_bytes()[:4] == b"\x89PNG"
    # the model: predictions on raw test features reproduce the logged test accuracy
    mlflow.set_tracking_uri(s["tracking_uri"])
    model = mlflow.pyfunc.load_model(s["model_uri"])
    from qdist.config import config_from_dict
    from qdist.pipeline import prepare

    prep = prepare(config_from_dict(job))
    raw = pd.DataFrame(prep.cohort.features[prep.idx_test], columns=prep.cohort.feature_names)
    pred = model.predict(raw)
    acc = float(np.mean(pred["prediction"].astype(int).to_numpy() == prep.y_test))
    assert acc == pytest.approx(metrics["test_accuracy"])


def test_rerun_resumes_without_recomputing(finished_run):
    _, path, _, s = finished_run
    before = zarr.open_group(s["store"], mode="r")["k_train"][...]
    proc = qdist("run", str(path), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout.strip().splitlines()[-1])
    assert again["tiles_computed"] == 0 and again["store"] == s["store"]
    after = zarr.open_group(s["store"], mode="r")["k_train"][...]
    np.testing.assert_array_equal(np.nan_to_num(before, nan=-1), np.nan_to_num(after, nan=-1))


def test_rerun_with_other_feature_map_is_refused(finished_run):
    tmp, _, job, s = finished_run
    (tmp / "other").mkdir()
    other = _write_job(tmp / "other", {**job, "feature_map": {"kind": "z", "qubits": 3}})
    proc = qdist("run", str(other), "--json")
    assert proc.returncode == 2
    assert "belongs to another job" in proc.stderr
    assert zarr.open_group(s["store"], mode="r").attrs["qdist"]["fingerprint"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: x\nfeature_map: {qubits: [3\n", "not valid YAML"),
        ("name: x\nfeature_mapp: {qubits: 3}\n", "feature_mapp"),
        ("feature_map: {qubits: three}\n", "feature_map.qubits"),
    ],
)
def test_bad_job_files_stop_before_compute(tmp_path, text, needle):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    proc = qdist("run", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (lambda df: df.assign(g1=["high", "low"] * 10), "not numeric"),
        (lambda df: df.assign(g2=[np.nan] + [0.5] * 19), "data.missing.values"),
        (lambda df: df.assign(y=[1] * 20), "single class"),
    ],
)
def test_bad_cohorts_stop_before_compute(tmp_path, frame, needle):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"pid": [f"MRN{i}" for i in range(20)], "y": [0, 1] * 10,
                       **{f"g{k}": rng.normal(size=20) for k in range(4)}})
    frame(df).to_csv(tmp_path / "cohort.csv", index=False)
    job = small_job(tmp_path, data={"source": "table", "path": "cohort.csv", "id_column": "pid",
                                    "label_column": "y"})
    proc = qdist("run", str(_write_job(tmp_path, job)))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr
    assert "MRN" not in proc.stderr  # raw identifiers never appear in errors
    assert not (tmp_path / "out").exists()


def test_validate_prints_resolved_config():
    proc = qdist("validate", str(REPO / "jobs" / "demo.yaml"))
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["feature_map"]["kind"] == "zz"


def test_predict_new_patients_from_a_table(finished_run, tmp_path):
    from qdist.config import config_from_dict
    from qdist.pipeline import prepare

    _, _, job, s = finished_run
    prep = prepare(config_from_dict(job))
    frame = pd.DataFrame(prep.cohort.features[prep.idx_test], columns=prep.cohort.feature_names)
    frame.insert(0, "mrn", [f"MRN-{i:04d}" for i in range(len(frame))])
    frame.to_parquet(tmp_path / "patients.parquet")
    out = tmp_path / "pred.csv"
    proc = qdist("predict", s["model_uri"], str(tmp_path / "patients.parquet"), "--out", str(out),
                 "--id-column", "mrn", "--tracking-uri", s["tracking_uri"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["sample_id", "prediction", "decision", "probability_0",
                                  "probability_1"] and len(pred) == 15
    probs = pred[["probability_0", "probability_1"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert ((probs >= 0) & (probs <= 1)).all()
    # Platt scaling is monotone in the decision value (its slope is fitted on out-of-fold
    # decisions, so on a weak model it may even be negative): one ordering for every patient
    order = np.argsort(pred["decision"].to_numpy())
    p1 = pred["probability_1"].to_numpy()[order]
    assert (np.diff(p1) >= -1e-12).all() or (np.diff(p1) <= 1e-12).all()
    assert not pred["sample_id"].str.contains("MRN").any()  # raw ids never leave the input
    accuracy = float(np.mean(pred["prediction"].to_numpy() == prep.y_test))
    assert accuracy == pytest.approx(s["metrics"]["test_accuracy"])
    bad = qdist("predict", s["model_uri"], str(tmp_path / "patients.parquet"),
                "--tracking-uri", "sqlite:///" + str(tmp_path / "empty.db"))
    assert bad.returncode == 2 and "Cannot load the model" in bad.stderr
