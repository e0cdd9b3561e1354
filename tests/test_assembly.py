"""Assembly refuses a store with a missing tile, a NaN, a bad diagonal or a foreign fingerprint,
and names the tile and how to resume."""

from __future__ import annotations

import numpy as np
import pytest

from qdist.api import compute_gram
from qdist.assembly import assemble
from qdist.errors import IncompleteStoreError, KernelCheckError, StoreMismatchError
from qdist.planning import make_plan
from qdist.storage import GramStore

from .test_store import _arrays


def _filled(tmp_path, n_train=10, n_test=4, size=4):
    arrays = _arrays(n_train, n_test)
    plan = make_plan(n_train, n_test, size, 0)
    store = GramStore.create(tmp_path / "s.zarr", arrays, size, {"fingerprint": "fp"})
    from qdist.config import FeatureMapSpec
    from qdist.kernel.feature_maps import build_feature_map

    circuit = build_feature_map(FeatureMapSpec(qubits=3))
    k = compute_gram(arrays["x_train"], feature_map=circuit)
    ks = compute_gram(arrays["x_test"], arrays["x_train"], feature_map=circuit)
    for t in plan.tiles:
        src = k if t.matrix == "k_train" else ks
        store.write_tile(t, src[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]])
    return store, plan, k, ks


def test_complete_store_assembles_mirrored(tmp_path):
    store, plan, k, ks = _filled(tmp_path)
    out = assemble(store, plan, "fp")
    np.testing.assert_allclose(out.k_train, k, atol=1e-15)
    np.testing.assert_allclose(out.k_test, ks, atol=1e-15)
    # only upper tiles were written: the raw array still has NaN below the block diagonal
    raw = store.array("k_train")[...]
    assert np.isnan(raw[4:8, 0:4]).all()


def test_missing_tile_named(tmp_path):
    store, plan, _, _ = _filled(tmp_path)
    victim = plan.tiles[2]
    chunk = tmp_path / "s.zarr" / victim.matrix / "c" / str(victim.row_block) / str(victim.col_block)
    chunk.unlink()
    with pytest.raises(IncompleteStoreError, match="Resume") as info:
        assemble(store, plan, "fp")
    assert victim.key in str(info.value)


def test_nan_tile_named(tmp_path):
    store, plan, _, _ = _filled(tmp_path)
    victim = plan.tiles[-1]
    values = np.full(victim.shape, 0.5)
    values[0, 0] = np.nan
    store.write_tile(victim, values)
    with pytest.raises(IncompleteStoreError, match="NaN") as info:
        assemble(store, plan, "fp")
    assert victim.key in str(info.value)


def test_bad_diagonal_refused(tmp_path):
    store, plan, _, _ = _filled(tmp_path)
    diag = plan.tiles[0]
    store.write_tile(diag, np.full(diag.shape, 0.5))
    with pytest.raises(KernelCheckError, match="diagonal"):
        assemble(store, plan, "fp")


def test_asymmetric_diagonal_tile_refused(tmp_path):
    store, plan, k, _ = _filled(tmp_path)
    diag = plan.tiles[0]
    values = k[:4, :4].copy()
    values[0, 1] = values[1, 0] + 0.1
    store.write_tile(diag, values)
    with pytest.raises(KernelCheckError, match="k_train/0.0"):
        assemble(store, plan, "fp")


def test_foreign_fingerprint_refused(tmp_path):
    store, plan, _, _ = _filled(tmp_path)
    with pytest.raises(StoreMismatchError, match="another job"):
        assemble(store, plan, "not-fp")

