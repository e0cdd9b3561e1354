"""The store lease: exclusive, renewed, and taken over only when its holder is gone."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from qdist.errors import StoreLockedError
from qdist.storage.lease import StoreLease


def test_exclusive_then_released(tmp_path):
    a = StoreLease(tmp_path / "s.zarr", ttl=30)
    a.acquire()
    with pytest.raises(StoreLockedError, match="Another driver"):
        StoreLease(tmp_path / "s.zarr", ttl=30).acquire()
    a.release()
    assert not (tmp_path / "s.zarr.lease").exists()
    with StoreLease(tmp_path / "s.zarr", ttl=30):
        assert (tmp_path / "s.zarr.lease").exists()


def test_lease_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    import socket

    (tmp_path / "s.zarr.lease").write_text(json.dumps(
        {"holder": "old", "host": socket.gethostname(), "pid": int(dead),
         "expires_at": time.time() + 3600}))
    with StoreLease(tmp_path / "s.zarr") as lease:
        assert json.loads(lease.path.read_text())["holder"] == lease.holder


def test_expired_lease_from_another_host_is_taken_over(tmp_path):
    (tmp_path / "s.zarr.lease").write_text(json.dumps(
        {"holder": "old", "host": "elsewhere", "pid": 1, "expires_at": time.time() - 1}))
    with StoreLease(tmp_path / "s.zarr"):
        pass
    (tmp_path / "s.zarr.lease").write_text(json.dumps(
        {"holder": "old", "host": "elsewhere", "pid": 1, "expires_at": time.time() + 60}))
    with pytest.raises(StoreLockedError, match="elsewhere"):
        StoreLease(tmp_path / "s.zarr").acquire()


def test_lease_is_renewed(tmp_path):
    with StoreLease(tmp_path / "s.zarr", ttl=0.6) as lease:
        first = json.loads(lease.path.read_text())["expires_at"]
        time.sleep(0.5)
        assert json.loads(lease.path.read_text())["expires_at"] > first
