"""A whole job on object storage: the Zarr store on an S3-protocol server on loopback (moto),
tracked on a real MLflow server whose artifacts go to the same server, configured the way the
Helm chart configures MLflow. The job runs through the real CLI in a fresh process that gets
the S3 endpoint and credentials from its environment only; the results are read back and
checked against the statevector oracle, and the credentials are searched for everywhere they
must not be."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from qiskit_machine_learning.kernels import FidelityStatevectorKernel

from qdist.api import open_store, run_job
from qdist.errors import ConfigError, StoreLockedError

from .conftest import REPO, small_job
from .s3_server import SECRET, clean_aws_env, moto_server, new_bucket
from .test_cli import qdist
from .test_mlflow_server import mlflow_server_at

pytestmark = pytest.mark.integration

PREFIX = "qdist/runs/small"


def _chart_allowed_hosts() -> str:
    """MLFLOW_SERVER_ALLOWED_HOSTS as the chart sets it (release qdist, namespace science)."""
    helm = pytest.importorskip("helm_python", reason="helm-python-sdk renders the chart")
    values = yaml.safe_load((REPO / "helm" / "qdist" / "ci" / "s3-values.yaml").read_text())
    with helm.Chart.load(REPO / "helm" / "qdist") as chart:
        text = chart.render(values, name="qdist", namespace="science")["qdist/templates/mlflow.yaml"]
    (deployment,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    return env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """moto, a bucket, and an MLflow server with artifacts in that bucket."""
    tmp = tmp_path_factory.mktemp("s3job")
    with moto_server(tmp) as endpoint:
        bucket = new_bucket(endpoint)
        env = {**bucket.env, "MLFLOW_S3_ENDPOINT_URL": endpoint,
               "MLFLOW_SERVER_ALLOWED_HOSTS": _chart_allowed_hosts()}
        with mlflow_server_at(tmp, f"s3://{bucket.name}/mlflow-artifacts", env) as url:
            yield bucket, url, tmp


@pytest.fixture(scope="module")
def finished(stack):
    bucket, url, tmp = stack
    job = tmp / "job.yaml"
    job.write_text(yaml.safe_dump(small_job(tmp, tracking={"experiment": "on-s3"})))
    started = time.perf_counter()
    proc = qdist("run", str(job), "--out", bucket.url(PREFIX), "--tracking-uri", url, "--json",
                 env=bucket.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary, proc, job, time.perf_counter() - started


def _kernel_matches_oracle(store_url: str) -> np.ndarray:
    view = open_store(store_url)
    oracle = FidelityStatevectorKernel(feature_map=view.feature_map)
    k_train = view.k_train.compute()
    np.testing.assert_allclose(k_train, oracle.evaluate(view.x_train), atol=1e-10, rtol=0)
    np.testing.assert_allclose(view.k_test.compute(), oracle.evaluate(view.x_test, view.x_train),
                               atol=1e-10, rtol=0)
    return k_train


def test_job_writes_its_store_and_artifacts_to_s3(stack, finished, monkeypatch):
    from mlflow.tracking import MlflowClient

    bucket, url, tmp = stack
    summary, proc, _, _ = finished
    clean_aws_env(monkeypatch, bucket)
    store = bucket.url(f"{PREFIX}/store.zarr")
    assert summary["store"] == store and summary["out_dir"] == bucket.url(PREFIX)
    assert summary["tiles_computed"] == summary["tiles_total"] == 9
    keys = bucket.keys(f"{PREFIX}/")
    chunks = {k for k in keys if "/k_train/c/" in k or "/k_test/c/" in k}
    assert len(chunks) == 9  # one object per tile: 6 upper-triangle train tiles, 3 test tiles
    assert not any(k.endswith(".lease") for k in keys)  # released
    assert not (REPO / "s3:").exists() and not (tmp / "s3:").exists()  # no local "s3:" folder
    _kernel_matches_oracle(store)
    attrs = open_store(store).attrs
    assert attrs["completion"]["complete"] is True
    # MLflow: the run on the server, its artifacts (plots, model) in the bucket
    client = MlflowClient(url)
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert run.data.tags["qdist.store"] == store
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"store_uri.txt", "plots", "job.yaml"} <= names
    local = client.download_artifacts(run.info.run_id, "store_uri.txt", str(tmp))
    assert Path(local).read_text().strip() == store
    artifacts = bucket.keys("mlflow-artifacts/")
    assert any(k.endswith("plots/kernel_spectrum.png") for k in artifacts)
    assert any(k.endswith("/MLmodel") for k in artifacts)  # the logged model
    # the credentials: in none of the logs, parameters, tags, attributes or stored objects
    assert SECRET not in proc.stdout + proc.stderr
    assert SECRET not in json.dumps(attrs)
    assert SECRET not in json.dumps({**run.data.params, **run.data.tags})
    s3 = bucket.client()
    for key in bucket.keys(""):
        assert SECRET.encode() not in s3.get_object(Bucket=bucket.name, Key=key)["Body"].read(), key


def test_mlflow_accepts_the_service_names_the_chart_allows(stack):
    _, url, _ = stack

    def status(host: str) -> int:
        req = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search?max_results=1",
                                     headers={"Host": host})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status("qdist-mlflow:5000") == 200  # how Ray pods reach it in the cluster
    assert status("qdist-mlflow.science.svc:5000") == 200
    assert status("qdist-mlflow.science.svc.cluster.local:5000") == 200
    assert status("attacker.example:5000") == 403  # DNS-rebinding protection stays on


def test_rerun_on_s3_computes_only_the_missing_tile(stack, finished, monkeypatch):
    bucket, url, _ = stack
    summary, _, job, _ = finished
    clean_aws_env(monkeypatch, bucket)
    store = summary["store"]
    before = _kernel_matches_oracle(store)
    (key,) = [k for k in bucket.keys(f"{PREFIX}/store.zarr/k_train/c/") if k.endswith("/1/2")]
    bucket.client().delete_object(Bucket=bucket.name, Key=key)
    proc = qdist("run", str(job), "--out", bucket.url(PREFIX), "--tracking-uri", url, "--json",
                 env=bucket.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout.strip().splitlines()[-1])
    assert again["tiles_computed"] == 1 and again["store"] == store
    np.testing.assert_array_equal(_kernel_matches_oracle(store), before)


def test_a_second_driver_is_refused_by_the_s3_lease(stack, finished, monkeypatch):
    bucket, url, _ = stack
    job = finished[2]
    clean_aws_env(monkeypatch, bucket)
    record = {"holder": "other", "host": "ray-head-7f9c", "pid": 41, "expires_at": time.time() + 60}
    lease_key = f"{PREFIX}/store.zarr.lease"
    bucket.client().put_object(Bucket=bucket.name, Key=lease_key, Body=json.dumps(record).encode())
    before = bucket.keys(f"{PREFIX}/store.zarr/")
    try:
        with pytest.raises(StoreLockedError, match="ray-head-7f9c.*live for"):
            run_job(job, out=bucket.url(PREFIX), tracking_uri=url)
    finally:
        bucket.client().delete_object(Bucket=bucket.name, Key=lease_key)
    assert bucket.keys(f"{PREFIX}/store.zarr/") == before  # nothing written


def test_an_s3_output_needs_a_tracking_server(stack, tmp_path, monkeypatch):
    bucket, _, _ = stack
    clean_aws_env(monkeypatch, bucket)
    monkeypatch.delenv("QDIST_TRACKING__URI", raising=False)
    with pytest.raises(ConfigError, match="'tracking.uri' must name an MLflow server"):
        run_job(small_job(tmp_path), out=bucket.url("elsewhere"))
    assert bucket.keys("elsewhere") == []
