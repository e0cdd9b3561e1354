"""An elastic tile pool on a real cluster: a job asks for more workers than the cluster can place,
starts with what there is, and grows onto a node that joins mid-run (what the KubeRay autoscaler
does when pending actors ask for resources). Workers that can never start are in
tests/test_runner.py.

The cluster is `cluster/local.sh` (`ray start` on loopback ports, one CPU per node), stopped by
the PIDs of its own processes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from qdist.api import compute_gram, open_store

from .conftest import REPO, small_job
from .test_submit import BIN, _env, _free_ports

pytestmark = pytest.mark.integration

SCRIPT = str(REPO / "cluster" / "local.sh")


@pytest.fixture()
def head_only() -> Iterator[tuple[str, dict[str, str]]]:
    """A head node with one CPU and no worker nodes; yields its GCS address and the script env."""
    root = tempfile.mkdtemp(prefix="qdel", dir="/tmp")
    gcs, dash, client, agent = _free_ports(4)
    env = _env(QDIST_RAY_PORT=str(gcs), QDIST_DASHBOARD_PORT=str(dash),
               QDIST_RAY_CLIENT_PORT=str(client), QDIST_AGENT_PORT_BASE=str(agent),
               QDIST_RAY_DIR=root, QDIST_OBJECT_STORE_MB="100", RAY=str(BIN / "ray"),
               PYTHON=sys.executable)
    try:
        started = subprocess.run([SCRIPT, "start", "0"], env=env, capture_output=True, text=True,
                                 timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"127.0.0.1:{gcs}", env
    finally:
        subprocess.run([SCRIPT, "stop"], env=env, capture_output=True, text=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _run(job: dict, tmp: Path, address: str, **extra_env: str) -> subprocess.Popen[str]:
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return subprocess.Popen(
        [sys.executable, "-m", "qdist.cli", "run", str(path), "--address", address, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp,
        env=_env(**extra_env))


def test_a_running_pool_grows_onto_a_node_that_joins(head_only, tmp_path):
    address, env = head_only
    faults = tmp_path / "faults"
    faults.mkdir()
    job = small_job(tmp_path, tiles={"size": 8, "workers": 2})
    # 1 s per tile: 33 s on one worker, ample time for a node to join and a worker to start on it
    # even on a loaded 2-core machine
    proc = _run(job, tmp_path, address, QDIST_FAULTS=json.dumps({"*": ["sleep", 1.0]}),
                QDIST_FAULTS_DIR=str(faults))
    store = tmp_path / "out" / "store.zarr"
    deadline = time.monotonic() + 120
    while not list(store.glob("k_train/c/*/*")) and proc.poll() is None:  # a first tile written
        assert time.monotonic() < deadline, "no tile was written within 120 s"
        time.sleep(0.2)
    added = subprocess.run([SCRIPT, "add"], env=env, capture_output=True, text=True, timeout=180)
    assert added.returncode == 0, added.stdout + added.stderr
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["tiles_computed"] == summary["tiles_total"] == 33
    # the head ran tiles alone at first; the second worker started on the new node and took some
    assert len(summary["nodes"]) == 2, summary["nodes"]
    assert min(summary["nodes"].values()) >= 1
    view = open_store(summary["store"])
    np.testing.assert_allclose(view.k_train.compute(),
                               compute_gram(view.x_train, feature_map=view.feature_map),
                               atol=1e-10, rtol=0)
