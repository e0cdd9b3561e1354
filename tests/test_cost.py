"""The memory model and tile-size choice: bounded per-worker memory, refusal with a fix."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdist.config import config_from_dict
from qdist.errors import PlanError
from qdist.pipeline import prepare
from qdist.planning.cost import (
    WorkerMemory,
    cached_blocks,
    check_tile_fits,
    choose_tile_size,
    resolve_tile_size,
    worker_bytes,
)

from .conftest import small_job

GIB = 1024**3


@pytest.mark.parametrize(
    ("tile", "q", "itemsize", "expected"),
    [
        (1, 1, 16, 2 * 1 * 2 * 16 + 1 * 24),
        (64, 10, 16, 2 * 64 * 1024 * 16 + 64 * 64 * 24),
        (64, 10, 8, 2 * 64 * 1024 * 8 + 64 * 64 * 16),
    ],
)
def test_worker_bytes_table(tile, q, itemsize, expected):
    assert worker_bytes(tile, q, itemsize) == expected


@settings(max_examples=200, deadline=None)
@given(n=st.integers(2, 100_000), q=st.integers(1, 26), workers=st.integers(1, 256),
       gib=st.floats(0.5, 64))
def test_chosen_tile_fits_memory(n, q, workers, gib):
    memory = WorkerMemory(int(gib * GIB))
    try:
        t = choose_tile_size(n, q, workers, memory)
    except PlanError:
        assert worker_bytes(1, q, 16) > memory.bytes
        return
    assert 1 <= t <= n
    assert worker_bytes(t, q, 16) <= memory.bytes
    blocks = cached_blocks(t, q, memory, n_blocks=-(-n // t))
    assert blocks >= 2
    assert blocks == 2 or worker_bytes(t, q, 16, blocks) <= memory.bytes


def test_small_problem_gets_one_tile_and_big_memory_caches_everything():
    assert choose_tile_size(100, 6, 2, WorkerMemory(4 * GIB)) == 64  # >= 4 tiles per worker
    assert cached_blocks(512, 12, WorkerMemory(4 * GIB), n_blocks=8) == 8


def test_refusal_says_what_would_fit():
    with pytest.raises(PlanError, match=r"Use tiles\.size <= 128"):  # 4 GiB / (2 x 16 MiB)
        check_tile_fits(4096, 20, WorkerMemory(4 * GIB))
    with pytest.raises(PlanError, match="Even one pair of states"):
        check_tile_fits(1, 30, WorkerMemory(4 * GIB))


def test_explicit_tile_is_checked_and_automatic_is_deterministic():
    assert resolve_tile_size(None, None, 4.0, 10_000, 12, 16) == resolve_tile_size(
        None, None, 4.0, 10_000, 12, 16)
    with pytest.raises(PlanError, match="tiles.worker_memory_gb"):
        resolve_tile_size(2048, None, 1.0, 10_000, 16, 16)


def test_plan_refused_before_compute(tmp_path):
    job = small_job(tmp_path, feature_map={"kind": "z", "qubits": 3},
                    tiles={"size": 40, "worker_memory_gb": 1e-6})
    with pytest.raises(PlanError, match="tiles.size"):
        prepare(config_from_dict(job))
    assert not (tmp_path / "out").exists()
