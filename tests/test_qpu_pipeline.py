"""The QPU path end to end: jobs on Aer with shots and on a fake IBM backend, stored, assembled,
trained and logged with their job ids; a driver killed with jobs in flight re-attaches on rerun;
budget refusal, missing credentials and a permanently failing job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from qdist.api import compute_gram, open_store, run_job
from qdist.errors import BackendError, TileError

from .conftest import REPO, small_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def qpu_job(tmp, **qpu):
    """32 samples (24 train, 8 test), 2 qubits, 8-sample tiles: 6 train tiles, 3 test tiles."""
    return small_job(
        tmp,
        data={"source": "synthetic", "synthetic": {"n_samples": 32, "blocks": {"a": 6, "b": 4},
                                                   "n_latent": 2}},
        feature_map={"kind": "zz", "qubits": 2, "reps": 1},
        backend={"kind": "qpu"},
        qpu={"shots": 2000, **qpu},
        tiles={"size": 8, "max_retries": 1},
        training={"test_fraction": 0.25, "c_grid": [1.0, 10.0], "cv_folds": 3},
    )


def _exact(view):
    k = compute_gram(view.x_train, feature_map=view.feature_map)
    ks = compute_gram(view.x_test, view.x_train, feature_map=view.feature_map)
    return k, ks


def _sigma(k, shots):
    # binomial standard error of a frequency estimate of K from `shots` shots
    return np.sqrt(np.clip(k * (1 - k), 0, None) / np.maximum(shots, 1))


def test_aer_shots_within_binomial_noise_of_exact(tmp_path):
    result = run_job(qpu_job(tmp_path, provider="aer"))
    view = open_store(result.store)
    k, ks = _exact(view)
    g = zarr.open_group(result.store, mode="r")
    shots = g["shots_k_train"][...]
    got = view.k_train.compute()
    off = ~np.eye(len(k), dtype=bool)
    # five standard errors per entry: a false alarm has probability < 1e-6 per entry
    assert (np.abs(got - k)[off] <= 5 * _sigma(k, 2000)[off] + 1e-9).all()
    assert (np.abs(view.k_test.compute() - ks) <= 5 * _sigma(ks, 2000) + 1e-9).all()
    upper = np.triu(np.ones_like(shots, dtype=bool), 1)
    assert (shots[upper] == 2000).all() and (np.diag(shots) == 0).all()
    assert result.metrics["qpu_jobs_submitted"] == 6 + 3  # one job per tile
    assert "qpu_psd_clipped_eigenvalues" in result.metrics


def test_fake_backend_end_to_end_with_job_ids(tmp_path):
    from mlflow.tracking import MlflowClient

    result = run_job(qpu_job(tmp_path, provider="fake", backend="fake_manila",
                             readout_mitigation=True))
    view = open_store(result.store)
    k, _ = _exact(view)
    got = view.k_train.compute()
    # a noisy device: shot noise plus a device-noise bias (measured mean ~0.02 after readout
    # mitigation on fake_manila); the exact kernel must still be close on average
    assert np.abs(got - k).mean() < 0.06
    assert (np.abs(got - k) <= 5 * _sigma(k, 2000) + 0.15).all()
    ledger = view.attrs["provenance"]["qpu_jobs"]
    assert len(ledger) == 9 and all(r["job_id"] and r["shots"] == 2000 for r in ledger.values())
    client = MlflowClient(result.tracking_uri)
    local = client.download_artifacts(result.mlflow_run_id, "qpu_jobs.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == ledger
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0


def _serve(spool, backend="aer", delay=0.0):
    return subprocess.Popen([sys.executable, "-m", "qdist.backends.spool", "serve", str(spool),
                             "--backend", backend, "--delay", str(delay)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cli(tmp_path, job, name="job.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(job))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen([sys.executable, "-m", "qdist.cli", "run", str(path), "--json"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _ledger_ids(out) -> int:
    try:
        g = zarr.open_group(str(out / "store.zarr" / "qpu_jobs"), mode="r")
    except Exception:  # not created yet
        return 0
    return sum(1 for r in g.attrs.values() if r.get("job_id"))


def test_killed_driver_reattaches_to_jobs_in_flight(tmp_path):
    spool = tmp_path / "spool"
    service = _serve(spool, delay=1.5)
    try:
        job = qpu_job(tmp_path, provider="spool", spool_dir=str(spool), max_jobs_in_flight=2)
        driver = _cli(tmp_path, job)
        deadline = time.monotonic() + 120
        while _ledger_ids(tmp_path / "out") < 2:
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.1)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        submitted_before = len(list((spool / "jobs").iterdir()))
        again = _cli(tmp_path, job)
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, err[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["metrics"]["qpu_jobs_reattached"] >= 1
        # every tile was submitted exactly once over both drivers
        assert len(list((spool / "jobs").iterdir())) == 9
        assert summary["metrics"]["qpu_jobs_submitted"] == 9 - submitted_before
    finally:
        service.terminate()
        service.wait(timeout=30)


def test_permanently_failing_job_stops_with_tiles_missing(tmp_path):
    spool = tmp_path / "spool"
    service = _serve(spool, backend="fake_manila")  # the jobs ask for noiseless aer: refused
    try:
        with pytest.raises(TileError, match=r"QPU job .* ended ERROR 2 times"):
            run_job(qpu_job(tmp_path, provider="spool", spool_dir=str(spool)))
    finally:
        service.terminate()
        service.wait(timeout=30)
    view = open_store(tmp_path / "out" / "store.zarr")
    raw = zarr.open_group(view.location, mode="r")["k_train"][...]
    assert np.isnan(raw).any()  # nothing passes for data
    assert not ((raw < 0) | (raw > 1)).any()


@pytest.mark.parametrize(
    ("qpu", "env", "needle"),
    [
        ({"provider": "aer", "max_shots_total": 1000}, {}, "qpu.max_shots_total=1,000"),
        ({"provider": "ibm", "backend": "ibm_torino"}, {"QISKIT_IBM_TOKEN": ""},
         "QISKIT_IBM_TOKEN"),
    ],
)
def test_refused_before_anything_is_written(tmp_path, qpu, env, needle):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(qpu_job(tmp_path, **qpu)))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("QISKIT_IBM")}
    full_env.update({k: v for k, v in env.items() if v})
    proc = subprocess.run([sys.executable, "-m", "qdist.cli", "run", str(path)], cwd=REPO,
                          env={**full_env, "RAY_AUTH_MODE": "disabled"}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr
    assert not (tmp_path / "out").exists()


def test_token_never_reaches_errors_or_params(tmp_path, monkeypatch):
    secret = "tok-" + "9f3a" * 8
    monkeypatch.setenv("QISKIT_IBM_TOKEN", secret)
    with pytest.raises(Exception) as info:
        run_job(qpu_job(tmp_path, provider="ibm", backend="ibm_torino"))
    assert secret not in str(info.value) and secret not in repr(info.value)
    store = tmp_path / "out" / "store.zarr"
    if store.exists():
        assert secret not in json.dumps(dict(zarr.open_group(str(store), mode="r").attrs))


def test_depolarizing_mitigation_uses_the_measured_diagonal(tmp_path):
    """On a noisy fake device, mitigation from the measured diagonal brings the kernel closer
    to the exact one on average (fixed seeds: the comparison is deterministic)."""
    noisy = run_job(qpu_job(tmp_path / "a", provider="fake", backend="fake_manila",
                            psd_repair="none"))
    mitigated = run_job(qpu_job(tmp_path / "b", provider="fake", backend="fake_manila",
                                psd_repair="none", depolarizing_mitigation=True))
    view = open_store(mitigated.store)
    kdiag = zarr.open_group(mitigated.store, mode="r")["kdiag_train"][...]
    assert kdiag.shape == (24,) and (kdiag < 1.0).any() and (kdiag > 0.5).all()
    assert 0.5 < mitigated.metrics["qpu_mean_survival"] < 1.0
    assert "diagonal" in view.attrs["provenance"]["qpu_jobs"]
    # the stored tiles are raw; mitigating them with the measured diagonal moves the kernel
    # towards the exact one (the model trained on the mitigated kernel)
    from qdist.kernel.mitigation import depolarizing_mitigation, survival_from_diagonal

    k, _ = _exact(view)
    raw = view.k_train.compute()
    lam = survival_from_diagonal(kdiag, 2)
    fixed = depolarizing_mitigation(raw, lam, lam, 2)
    off = ~np.eye(len(k), dtype=bool)
    assert np.abs(fixed - k)[off].mean() < np.abs(raw - k)[off].mean()
    assert mitigated.metrics["kernel_offdiag_mean"] != noisy.metrics["kernel_offdiag_mean"]


@pytest.mark.parametrize("fusion", [{"mode": "subregister", "cross_layers": 1},
                                    {"mode": "multiple_kernel", "combine": "sum"}])
def test_fusion_encodings_run_on_the_qpu_path(tmp_path, fusion):
    """Fusion is an ordinary job option on every backend: here shots on Aer, one QPU store (and
    job ledger) per block kernel under multiple_kernel, within shot noise of the exact kernel."""
    job = qpu_job(tmp_path, provider="aer")
    job["feature_map"] = {"kind": "zz", "qubits": 2, "reps": 1}
    job["fusion"] = fusion
    job["training"] = {**job["training"], "cv_repeats": 1}
    result = run_job(job)
    assert result.metrics["qpu_jobs_submitted"] >= 1
    for store in result.stores:
        view = open_store(store)
        k, _ = _exact(view)
        shots = zarr.open_group(store, mode="r")["shots_k_train"][...]
        upper = np.triu(np.ones_like(k, dtype=bool), 1)
        got = np.asarray(view.k_train)
        z = np.abs(got - k)[upper] / np.maximum(_sigma(k, shots)[upper], 1e-3)
        assert z.max() < 6  # every entry within six binomial standard errors
    assert len(result.stores) == (2 if fusion["mode"] == "multiple_kernel" else 1)


def test_a_local_simulator_queue_reserves_the_cpus_its_threads_use(tmp_path):
    """Ray gives an actor as many OpenMP threads as CPUs it reserved, so an Aer queue that asked
    for one CPU simulated on one thread; local simulators now reserve the node's free CPUs (the
    session cluster has 2) or ``qpu.simulator_threads``, and the actor sees that many threads."""
    import ray

    from qdist.config import QpuSpec
    from qdist.orchestration.qpu_queue import _queue_actor

    assert _queue_actor(QpuSpec(provider="aer"))._default_options["num_cpus"] == 2
    assert _queue_actor(QpuSpec(provider="fake", backend="fake_manila",
                                simulator_threads=1))._default_options["num_cpus"] == 1
    # a queue that only talks to a remote service simulates nothing
    spool = QpuSpec(provider="spool", spool_dir=str(tmp_path))
    assert _queue_actor(spool)._default_options["num_cpus"] == 1
    with pytest.raises(BackendError, match=r"qpu.simulator_threads=3.*has 2 CPUs.*at most 2"):
        _queue_actor(QpuSpec(provider="aer", simulator_threads=3))  # would wait forever

    @ray.remote(num_cpus=_queue_actor(QpuSpec(provider="aer"))._default_options["num_cpus"])
    def threads() -> str | None:
        return os.environ.get("OMP_NUM_THREADS")

    assert ray.get(threads.remote()) == "2"
