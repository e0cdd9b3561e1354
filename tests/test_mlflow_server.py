"""A job tracked on a real `mlflow server` (SQLite backend, proxied artifacts) on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from qdist.api import run_job

from .conftest import small_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mlflow_server_at(tmp: Path, artifacts: str, env: Mapping[str, str] | None = None
                     ) -> Iterator[str]:
    """A real `mlflow server` on loopback (SQLite in ``tmp``, artifacts proxied to
    ``artifacts``: a folder or an s3:// URL, with ``env`` for its credentials); yields its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
         "--artifacts-destination", artifacts, "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w"),  # noqa: SIM115
        env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start: "
                                   + (tmp / "server.log").read_text()[-2000:])
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("mlflow")
    with mlflow_server_at(tmp, str(tmp / "artifacts")) as url:
        yield url


def test_run_tracked_on_server(tmp_path, mlflow_server):
    import mlflow
    from mlflow.tracking import MlflowClient

    result = run_job(small_job(tmp_path, tracking={"experiment": "server"}),
                     tracking_uri=mlflow_server)
    assert result.tracking_uri == mlflow_server
    client = MlflowClient(mlflow_server)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    assert run.data.params["feature_map.qubits"] == "3"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
    arts = {a.path for a in client.list_artifacts(result.mlflow_run_id, "plots")}
    assert "plots/kernel_spectrum.png" in arts
    assert not (tmp_path / "out" / "mlartifacts").exists()  # nothing written beside the store
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = np.random.default_rng(0).normal(size=(3, 17))
    import pandas as pd

    names = [f"rna_{i}" for i in range(12)] + [f"prot_{i}" for i in range(5)]
    out = model.predict(pd.DataFrame(rows, columns=names))
    assert list(out.columns) == ["prediction", "decision", "probability_0", "probability_1"]
    assert len(out) == 3
