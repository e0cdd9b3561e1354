"""Fault injection on a fixed schedule: failing tiles, killed workers, a killed driver, and a
second driver on the same store. Each ends with a store equal to an uninterrupted run, bit for
bit, or with a clear error, never with a corrupt or silently partial matrix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from qdist.config import config_from_dict
from qdist.errors import TileError
from qdist.orchestration import run_tiles
from qdist.pipeline import _store_arrays, prepare
from qdist.storage import GramStore

from .conftest import REPO, small_job

pytestmark = pytest.mark.usefixtures("ray_session")


def _bits(store: GramStore) -> tuple[np.ndarray, np.ndarray]:
    return store.array("k_train")[...].view(np.uint64), store.array("k_test")[...].view(np.uint64)


@pytest.fixture(scope="module")
def job_and_reference(tmp_path_factory):
    """A small job and the bits of an uninterrupted run of it."""
    tmp = tmp_path_factory.mktemp("faults")
    job = small_job(tmp, tiles={"size": 8, "workers": 2})
    cfg = config_from_dict(job)
    prep = prepare(cfg)
    location = str(tmp / "reference.zarr")
    store = GramStore.create(location, _store_arrays(prep), prep.plan.tile_size,
                             {"fingerprint": prep.fingerprint})
    run_tiles(prep.plan.tiles, location, cfg.backend, workers=2)
    return job, prep, _bits(store)


def _fresh(tmp_path, prep) -> GramStore:
    return GramStore.create(str(tmp_path / "s.zarr"), _store_arrays(prep), prep.plan.tile_size,
                            {"fingerprint": prep.fingerprint})


@pytest.fixture
def faults(tmp_path, monkeypatch):
    def set_schedule(schedule: dict[str, list[object]]) -> None:
        monkeypatch.setenv("QDIST_FAULTS", json.dumps(schedule))
        monkeypatch.setenv("QDIST_FAULTS_DIR", str(tmp_path))
    return set_schedule


def test_tile_failing_twice_then_succeeding(tmp_path, job_and_reference, faults):
    _, prep, (ref_train, ref_test) = job_and_reference
    victim = prep.plan.tiles[3].key
    faults({victim: ["fail", 2]})
    store = _fresh(tmp_path, prep)
    stats = run_tiles(prep.plan.tiles, store.location, prep.config.backend, workers=2)
    assert stats.retries == 2 and stats.tiles_computed == len(prep.plan.tiles)
    train, test = _bits(store)
    np.testing.assert_array_equal(train, ref_train)
    np.testing.assert_array_equal(test, ref_test)


def test_tile_that_always_fails_stops_with_its_name(tmp_path, job_and_reference, faults,
                                                    monkeypatch):
    _, prep, (ref_train, ref_test) = job_and_reference
    victim = prep.plan.tiles[5]
    faults({victim.key: ["fail", -1]})
    store = _fresh(tmp_path, prep)
    with pytest.raises(TileError, match=rf"Tile {victim.key.replace('.', '[.]')} .*failed 3 times"):
        run_tiles(prep.plan.tiles, store.location, prep.config.backend, workers=2, max_retries=2)
    assert victim in store.missing(prep.plan)  # never passes for data
    monkeypatch.delenv("QDIST_FAULTS")
    run_tiles(store.missing(prep.plan), store.location, prep.config.backend, workers=2)
    assert store.missing(prep.plan) == []
    train, test = _bits(store)
    np.testing.assert_array_equal(train, ref_train)
    np.testing.assert_array_equal(test, ref_test)


def test_worker_killed_mid_tile_is_replaced(tmp_path, job_and_reference, faults):
    _, prep, (ref_train, ref_test) = job_and_reference
    faults({prep.plan.tiles[4].key: ["kill", 1], prep.plan.tiles[-2].key: ["kill", 1]})
    store = _fresh(tmp_path, prep)
    stats = run_tiles(prep.plan.tiles, store.location, prep.config.backend, workers=2)
    assert stats.retries >= 2  # the killed tiles (and any queued behind them) were retried
    assert len(list(tmp_path.glob("*.fired.*"))) == 2
    train, test = _bits(store)
    np.testing.assert_array_equal(train, ref_train)
    np.testing.assert_array_equal(test, ref_test)


def _start_cli(tmp_path, job, extra_env):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           **extra_env}
    return subprocess.Popen([sys.executable, "-m", "qdist.cli", "run", str(path), "--json"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _chunks(out, matrix="k_train") -> int:
    folder = out / "store.zarr" / matrix / "c"
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def _wait_for(predicate, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.2)


@pytest.mark.integration
def test_driver_killed_then_rerun_finishes_identically(tmp_path, job_and_reference):
    job, _, (ref_train, ref_test) = job_and_reference
    job = {**job, "output": {"dir": str(tmp_path / "out")}}
    slow = {"QDIST_FAULTS": json.dumps({"*": ["sleep", 0.4]}), "QDIST_FAULTS_DIR": str(tmp_path)}
    proc = _start_cli(tmp_path, job, slow)
    try:
        _wait_for(lambda: _chunks(tmp_path / "out") >= 4)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = _chunks(tmp_path / "out")
    assert done_before > 0
    assert (tmp_path / "out" / "store.zarr.lease").exists()  # left behind by the dead driver
    again = _start_cli(tmp_path, job, {})
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert 0 < summary["tiles_computed"] < summary["tiles_total"]
    store = GramStore.open(tmp_path / "out" / "store.zarr")
    train, test = _bits(store)
    np.testing.assert_array_equal(train, ref_train)
    np.testing.assert_array_equal(test, ref_test)


@pytest.mark.integration
def test_second_driver_on_the_same_store_is_refused(tmp_path, job_and_reference):
    job, _, _ = job_and_reference
    job = {**job, "output": {"dir": str(tmp_path / "out")}}
    slow = {"QDIST_FAULTS": json.dumps({"*": ["sleep", 0.2]}), "QDIST_FAULTS_DIR": str(tmp_path)}
    first = _start_cli(tmp_path, job, slow)
    try:
        _wait_for(lambda: _chunks(tmp_path / "out") >= 1)
        second = _start_cli(tmp_path, job, {})
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2
        assert "Another driver" in err and f"pid {first.pid}" in err
        out, err1 = first.communicate(timeout=300)
        assert first.returncode == 0, err1[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["tiles_computed"] == summary["tiles_total"] == 21 + 12
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert not (tmp_path / "out" / "store.zarr.lease").exists()  # released at the end
