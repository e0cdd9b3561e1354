"""Job submission for real: a Ray head plus one worker node started with `cluster/local.sh`
(`ray start`, one CPU per node, a temp dir of their own), `qdist submit` through the real CLI,
tiles on both nodes, the store checked against a single-process computation, and `qdist stop`.

The cluster lives under its own temp dir and is stopped by the PIDs of its processes, never by
`ray stop`, so the embedded Ray of the other tests (and anything else on the machine) survives.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
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

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports; the agent needs its port and the next one free too."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        if port + 1 < 65536 and all(abs(port - p) > 1 for p in ports):
            with socket.socket() as s2:
                try:
                    s2.bind(("", port + 1))
                except OSError:
                    continue
            ports.append(port)
    return ports


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "QDIST_RAY_ADDRESS")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def qdist(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qdist.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=_env(), timeout=timeout)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and one worker node on loopback ports; yields the job API address."""
    root = tempfile.mkdtemp(prefix="qdray", dir="/tmp")  # short: Ray's unix sockets live here
    gcs, dash, client, agent = _free_ports(4)
    env = _env(QDIST_RAY_PORT=str(gcs), QDIST_DASHBOARD_PORT=str(dash),
               QDIST_RAY_CLIENT_PORT=str(client), QDIST_AGENT_PORT_BASE=str(agent),
               QDIST_RAY_DIR=root, QDIST_OBJECT_STORE_MB="100", RAY=str(BIN / "ray"),
               PYTHON=sys.executable)
    script = [str(REPO / "cluster" / "local.sh")]

    def stop() -> None:
        subprocess.run([*script, "stop"], env=env, capture_output=True, text=True, timeout=120)

    try:
        started = subprocess.run([*script, "start", "1"], env=env, capture_output=True,
                                 text=True, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
        address = f"http://127.0.0.1:{dash}"
        assert address in started.stdout
        status = subprocess.run([*script, "status"], env=env, capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0 and status.stdout.count("ALIVE") == 2, status.stdout
        yield address
    finally:
        stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder as a user would submit it: the qdist source and a job file."""
    proj = tmp_path_factory.mktemp("project")
    shutil.copytree(REPO / "qdist", proj / "qdist",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return proj


@pytest.fixture(scope="module")
def finished(cluster, project, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("submit")
    job = small_job(tmp, tiles={"size": 8, "workers": 2})
    (project / "job.yaml").write_text(yaml.safe_dump(job))
    out = tmp / "out"
    proc = qdist("submit", "job.yaml", "--address", cluster, "--out", str(out), "--wait",
                 cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sid, status, last = proc.stdout.strip().splitlines()[-3:]
    assert status == "SUCCEEDED"
    return sid, json.loads(last), out


def test_tiles_ran_on_both_nodes(finished):
    _, summary, out = finished
    assert summary["tiles_computed"] == summary["tiles_total"] > 10
    assert sum(summary["nodes"].values()) == summary["tiles_total"]
    assert len(summary["nodes"]) >= 2, summary["nodes"]
    assert summary["store"] == str((out / "store.zarr").resolve())


def test_store_equals_single_process_result(finished):
    _, summary, _ = finished
    view = open_store(summary["store"])
    k_train = compute_gram(view.x_train, feature_map=view.feature_map)
    k_test = compute_gram(view.x_test, view.x_train, feature_map=view.feature_map)
    np.testing.assert_allclose(view.k_train.compute(), k_train, atol=1e-12, rtol=0)
    np.testing.assert_allclose(view.k_test.compute(), k_test, atol=1e-12, rtol=0)


def test_status_and_logs(finished, cluster, project):
    sid, summary, _ = finished
    status = qdist("status", sid, "--address", cluster, cwd=project)
    assert status.returncode == 0 and status.stdout.strip() == "SUCCEEDED"
    logs = qdist("logs", sid, "--address", cluster, cwd=project)
    assert logs.returncode == 0
    assert json.loads(logs.stdout.strip().splitlines()[-1]) == summary
    # the address may come from the environment instead of the flag
    env = _env(QDIST_RAY_ADDRESS=cluster)
    by_env = subprocess.run([sys.executable, "-m", "qdist.cli", "status", sid],
                            capture_output=True, text=True, cwd=project, env=env, timeout=120)
    assert by_env.stdout.strip() == "SUCCEEDED", by_env.stderr


def test_stop_a_running_job(finished, cluster, project, tmp_path):
    big = small_job(tmp_path, tiles={"size": 8, "workers": 2},
                    data={"source": "synthetic",
                          "synthetic": {"n_samples": 4000, "blocks": {"a": 6}}})
    (project / "big.yaml").write_text(yaml.safe_dump(big))
    out = tmp_path / "out"
    proc = qdist("submit", "big.yaml", "--address", cluster, "--out", str(out), cwd=project)
    assert proc.returncode == 0, proc.stderr
    sid = proc.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 120
    while not (out / "store.zarr" / "k_train").exists():  # the driver is at the tiles
        assert time.monotonic() < deadline, qdist("logs", sid, "--address", cluster,
                                                  cwd=project).stdout[-3000:]
        time.sleep(0.5)
    follow = subprocess.Popen([sys.executable, "-m", "qdist.cli", "logs", sid, "--follow",
                               "--address", cluster], cwd=project, env=_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stop = qdist("stop", sid, "--address", cluster, cwd=project)
        assert stop.returncode == 0 and "stop requested" in stop.stdout, stop.stderr
        status = ""
        while status not in ("STOPPED", "SUCCEEDED", "FAILED"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
            status = qdist("status", sid, "--address", cluster, cwd=project).stdout.strip()
        assert status == "STOPPED"
        _, err = follow.communicate(timeout=60)  # --follow ends with the job
        assert follow.returncode == 0, err
    finally:
        follow.kill()
        follow.wait()


def test_failed_job_exits_non_zero(cluster, project, tmp_path):
    (project / "fails.yaml").write_text(yaml.safe_dump(small_job(tmp_path)))
    (tmp_path / "taken").write_text("a file where the output folder should go")
    proc = qdist("submit", "fails.yaml", "--address", cluster, "--out", str(tmp_path / "taken"),
                 "--wait", cwd=project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[1] == "FAILED"
    assert "FAILED" in proc.stderr and "qdist logs" in proc.stderr


def test_unknown_job_is_a_clear_error(cluster, project):
    proc = qdist("status", "qdist-no-such-job", "--address", cluster, cwd=project)
    assert proc.returncode == 2
    assert "has no job 'qdist-no-such-job'" in proc.stderr and "Traceback" not in proc.stderr


def test_unreachable_address_is_a_clear_error(tmp_path):
    (port,) = _free_ports(1)  # nothing listens there
    proc = qdist("status", "x", "--address", f"http://127.0.0.1:{port}", cwd=tmp_path)
    assert proc.returncode == 2
    assert f"cannot reach the Ray job API at http://127.0.0.1:{port}" in proc.stderr
    assert "cluster/local.sh start" in proc.stderr and "Traceback" not in proc.stderr


def test_job_outside_the_working_dir_is_refused_before_upload(tmp_path):
    job = tmp_path / "elsewhere" / "job.yaml"
    job.parent.mkdir()
    job.write_text(yaml.safe_dump(small_job(tmp_path)))
    (tmp_path / "wd").mkdir()
    (port,) = _free_ports(1)
    proc = qdist("submit", str(job), "--address", f"http://127.0.0.1:{port}",
                 "--working-dir", str(tmp_path / "wd"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "outside the working directory" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        ("http://a:1", {"QDIST_RAY_ADDRESS": "http://b:2", "RAY_ADDRESS": "http://c:3"},
         "http://a:1"),
        (None, {"QDIST_RAY_ADDRESS": "http://b:2", "RAY_ADDRESS": "http://c:3"}, "http://b:2"),
        (None, {"RAY_ADDRESS": "http://c:3"}, "http://c:3"),
    ],
)
def test_address_from_flag_then_environment(flag, environ, expected):
    from qdist.orchestration.submit import resolve_address

    assert resolve_address(flag, environ) == expected


def test_no_address_is_a_config_error():
    from qdist.errors import ConfigError
    from qdist.orchestration.submit import resolve_address

    with pytest.raises(ConfigError, match="QDIST_RAY_ADDRESS"):
        resolve_address(None, {})
