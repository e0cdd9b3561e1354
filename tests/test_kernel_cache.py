"""Incremental cohorts: tiles keyed by content are computed once and shared across cohorts.

Block arithmetic used below (tile size 16): ``n`` samples fill ``ceil(n / 16)`` blocks, the last
one short unless 16 divides ``n``, and a Gram over ``b`` blocks has ``b (b + 1) / 2``
upper-triangle tiles. 100 samples: blocks 0..6, block 6 short (rows 96..99), 28 tiles.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import zarr
from qiskit.quantum_info import Statevector

from qdist.api import cached_cross, cached_gram
from qdist.config import BackendSpec, FeatureMapSpec
from qdist.errors import ConfigError, DataError, IncompleteStoreError, StoreError, StoreMismatchError
from qdist.kernel.feature_maps import build_feature_map
from qdist.orchestration.worker import TileWorker
from qdist.storage import KernelCache
from qdist.storage.kernel_cache import cache_location

FM = FeatureMapSpec(kind="zz", qubits=3, reps=2)
T = 16


def _cohort(n: int, seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, np.pi, size=(n, 3))


def _states(x, fm=FM):
    circuit = build_feature_map(fm)
    return np.array([Statevector(circuit.assign_parameters(row)).data for row in x])


def _oracle(x, y=None, fm=FM):
    sx = _states(x, fm)
    sy = sx if y is None else _states(y, fm)
    return np.abs(sx.conj() @ sy.T) ** 2


def _chunks(location: str) -> dict[tuple[int, int], tuple[int, int]]:
    """Every written k_train chunk and its (inode, mtime): a rewritten chunk gets new ones."""
    root = Path(location) / "k_train" / "c"
    return {(int(f.parent.name), int(f.name)): (f.stat().st_ino, f.stat().st_mtime_ns)
            for f in root.glob("*/*")}


def _tree(location: str) -> dict[str, str]:
    return {str(f.relative_to(location)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(Path(location).rglob("*")) if f.is_file()}


def test_growing_a_cohort_by_ten_percent_computes_only_the_new_tiles_on_ray(tmp_path, ray_session):
    cohort = _cohort(110)
    k0, s0 = cached_gram(cohort[:100], FM, tmp_path / "cache", tile_size=T, workers=2)
    assert (s0.samples_new, s0.tiles_needed, s0.tiles_computed, s0.tiles_reused) == (100, 28, 28, 0)
    before = _chunks(s0.cache)
    assert len(before) == 28

    # The grown cohort in another order: the 10 new patients sit among the old ones.
    order = np.random.default_rng(5).permutation(110)
    k1, s1 = cached_gram(cohort[order], FM, tmp_path / "cache", workers=2)
    # The new samples take registry rows 100..109, all in block 6, which held 4 rows and now
    # holds 14: the 7 tiles with a block-6 side are recomputed, the other 21 are read.
    assert (s1.samples_new, s1.samples_total) == (10, 110)
    assert (s1.tiles_needed, s1.tiles_computed, s1.tiles_reused) == (28, 7, 21)
    after = _chunks(s1.cache)
    assert {c for c in after if before.get(c) != after[c]} == {(i, 6) for i in range(7)}

    np.testing.assert_allclose(k0, _oracle(cohort[:100]), rtol=0, atol=1e-10)
    np.testing.assert_allclose(k1, _oracle(cohort[order]), rtol=0, atol=1e-10)
    scratch, s2 = cached_gram(cohort[order], FM, tmp_path / "scratch", tile_size=T, workers=0)
    assert (s2.samples_new, s2.tiles_computed) == (110, 28)
    np.testing.assert_allclose(k1, scratch, rtol=0, atol=1e-12)


def test_growth_across_a_block_boundary_recomputes_the_short_block_and_adds_the_new_one(tmp_path):
    cohort = _cohort(121)
    _, s0 = cached_gram(cohort[:110], FM, tmp_path, tile_size=T, workers=0)
    assert s0.tiles_computed == 28  # blocks 0..6, block 6 short (rows 96..109)
    before = _chunks(s0.cache)
    k, s1 = cached_gram(cohort, FM, tmp_path, workers=0)
    # Rows 110..111 complete block 6 (7 tiles recomputed), rows 112..120 open block 7 (8 new
    # tiles): 15 of 36 computed.
    assert (s1.samples_new, s1.tiles_needed, s1.tiles_computed, s1.tiles_reused) == (11, 36, 15, 21)
    after = _chunks(s1.cache)
    assert {c for c in after if before.get(c) != after[c]} == \
        {(i, 6) for i in range(7)} | {(i, 7) for i in range(8)}
    np.testing.assert_allclose(k, _oracle(cohort), rtol=0, atol=1e-10)
    # Block 6 is full now: asking again, or for the old cohort alone, computes nothing.
    assert cached_gram(cohort, FM, tmp_path, workers=0)[1].tiles_computed == 0
    k_old, s_old = cached_gram(cohort[:100], FM, tmp_path, workers=0)
    assert (s_old.tiles_needed, s_old.tiles_computed) == (28, 0)
    np.testing.assert_allclose(k_old, k[:100, :100], rtol=0, atol=0)


def test_a_second_job_sharing_samples_reuses_their_tiles(tmp_path):
    a = _cohort(100)
    cached_gram(a, FM, tmp_path, tile_size=T, workers=0)
    shared = a[np.random.default_rng(2).permutation(40)]  # rows 0..39: blocks 0, 1, 2
    k, s = cached_gram(shared, FM, tmp_path, workers=0)
    assert (s.samples_new, s.tiles_needed, s.tiles_computed, s.tiles_reused) == (0, 6, 0, 6)
    np.testing.assert_allclose(k, _oracle(shared), rtol=0, atol=1e-10)

    # The second job's own 8 patients take rows 100..107 (block 6): of the 10 tiles over blocks
    # {0, 1, 2, 6}, only the 4 with a block-6 side are computed.
    b = np.vstack([shared, _cohort(8, seed=99)])
    k, s = cached_gram(b, FM, tmp_path, workers=0)
    assert (s.samples_new, s.tiles_needed, s.tiles_computed, s.tiles_reused) == (8, 10, 4, 6)
    np.testing.assert_allclose(k, _oracle(b), rtol=0, atol=1e-10)

    # Test patients against the shared training samples share the same cache: 5 new rows
    # (108..111 in block 6, 112 in block 7) against blocks 0..2 read 6 tiles, all computed.
    test = _cohort(5, seed=123)
    c, s = cached_cross(test, shared, FM, tmp_path, workers=0)
    assert (s.samples_new, s.tiles_needed, s.tiles_computed) == (5, 6, 6)
    np.testing.assert_allclose(c, _oracle(test, shared), rtol=0, atol=1e-10)


def test_other_feature_maps_and_precisions_get_their_own_cache(tmp_path):
    x = _cohort(20)
    _, zz = cached_gram(x, FM, tmp_path, tile_size=8, workers=0)
    _, again = cached_gram(x, FeatureMapSpec(kind="zz", qubits=3, reps=2), tmp_path, workers=0)
    assert again.cache == zz.cache and again.tiles_computed == 0  # same map built anew
    z_map = FeatureMapSpec(kind="z", qubits=3, reps=2)
    kz, z = cached_gram(x, z_map, tmp_path, tile_size=8, workers=0)
    single = BackendSpec(precision="single")
    _, sp = cached_gram(x, FM, tmp_path, backend=single, tile_size=8, workers=0)
    assert len({zz.cache, z.cache, sp.cache}) == 3
    assert z.tiles_computed == sp.tiles_computed == z.tiles_needed == 6  # 3 blocks: 6 tiles
    np.testing.assert_allclose(kz, _oracle(x, fm=z_map), rtol=0, atol=1e-10)
    assert sorted(p.name for p in tmp_path.glob("*.zarr")) == \
        sorted(Path(s.cache).name for s in (zz, z, sp))
    with pytest.raises(ConfigError, match=r"has tile size 8; got tile_size=16"):
        cached_gram(x, FM, tmp_path, tile_size=16, workers=0)


def test_foreign_damaged_or_other_caches_are_refused_untouched(tmp_path):
    x = _cohort(20)
    _, s = cached_gram(x, FM, tmp_path / "cache", tile_size=8, workers=0)
    circuit = build_feature_map(FM)

    run_store = tmp_path / "run.zarr"
    zarr.open_group(str(run_store), mode="w").create_array("k_train", shape=(2, 2), dtype="f8")
    with pytest.raises(StoreError, match=r"is itself a Zarr group"):
        cached_gram(x, FM, run_store, workers=0)

    foreign = cache_location(tmp_path / "foreign", circuit, "double")
    zarr.open_group(foreign, mode="w").create_array("x", shape=(3,), dtype="f8")
    tree = _tree(foreign)
    with pytest.raises(StoreError, match=r"not a qdist kernel cache"):
        cached_gram(x, FM, tmp_path / "foreign", workers=0)
    assert _tree(foreign) == tree

    group = zarr.open_group(s.cache, mode="r+")
    group["x_train"][5] = group["x_train"][5] + 0.25  # a sample's parameters altered
    tree = _tree(s.cache)
    with pytest.raises(StoreError, match=r"damaged: 1 samples' parameters no longer match their "
                                         r"keys \(first: registry row 5\)"):
        cached_gram(x, FM, tmp_path / "cache", workers=0)
    assert _tree(s.cache) == tree

    meta = dict(group.attrs["qdist"])
    group.attrs["qdist"] = {**meta, "fingerprint": "0" * 64}
    with pytest.raises(StoreMismatchError, match=r"belongs to another feature map"):
        cached_gram(x, FM, tmp_path / "cache", workers=0)
    group.attrs["qdist"] = {**meta, "kind": None}
    with pytest.raises(StoreMismatchError, match=r"not a kernel cache"):
        cached_gram(x, FM, tmp_path / "cache", workers=0)
    assert len(_chunks(s.cache)) == 6  # every tile is still there


def test_bad_parameters_stop_before_anything_is_written(tmp_path):
    x = _cohort(20)
    _, s = cached_gram(x, FM, tmp_path, tile_size=8, workers=0)
    tree = _tree(s.cache)
    bad = np.vstack([_cohort(3, seed=4), x])
    bad[7, 1] = np.nan
    with pytest.raises(DataError, match=r"1 rows of circuit parameters are not finite \(first: row 7\)"):
        cached_gram(bad, FM, tmp_path, workers=0)
    with pytest.raises(DataError, match=r"one column per circuit parameter \(3\); got shape \(20, 2\)"):
        cached_gram(x[:, :2], FM, tmp_path, workers=0)
    with pytest.raises(DataError, match=r"not finite"):
        cached_cross(_cohort(4, seed=8), bad, FM, tmp_path, workers=0)
    assert _tree(s.cache) == tree


def test_a_driver_killed_after_invalidating_leaves_no_stale_tile(tmp_path):
    x = _cohort(22)
    cached_gram(x[:20], FM, tmp_path, tile_size=8, workers=0)  # blocks 0..2, block 2 short
    circuit = build_feature_map(FM)
    cache = KernelCache.open_or_create(tmp_path, circuit)
    reg = cache.register(x)  # block 2 grows from 4 to 6 rows
    todo = cache.missing(cache.tiles(reg.index))
    assert [(t.row_block, t.col_block) for t in todo] == [(0, 2), (1, 2), (2, 2)]
    cache.invalidate(todo)
    TileWorker(cache.location, BackendSpec()).compute(todo[0].to_dict())
    # ... and the driver dies here: one tile written for 22 samples, two stale ones deleted.
    reopened = KernelCache.open_or_create(tmp_path, circuit)
    assert reopened.missing(reopened.tiles(reg.index)) == todo[1:]
    with pytest.raises(IncompleteStoreError, match=r"not computed yet"):
        reopened.gather(reg.index)
    k, s = cached_gram(x, FM, tmp_path, workers=0)
    assert (s.samples_new, s.tiles_computed, s.tiles_reused) == (0, 2, 4)
    np.testing.assert_allclose(k, _oracle(x), rtol=0, atol=1e-10)
