"""The Zarr Gram store: layout, whole-tile writes, missing-tile listing, refusal of foreign jobs."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from qdist.errors import IncompleteStoreError, StoreError, StoreMismatchError
from qdist.planning import make_plan
from qdist.storage import GramStore


def _arrays(n_train=10, n_test=4, q=3):
    rng = np.random.default_rng(0)
    return {"x_train": rng.random((n_train, q)), "x_test": rng.random((n_test, q)),
            "y_train": np.arange(n_train) % 2, "y_test": np.arange(n_test) % 2,
            "sample_ids_train": np.array([f"s-{i}" for i in range(n_train)]),
            "sample_ids_test": np.array([f"s-t{i}" for i in range(n_test)]),
            "feature_map_qpy": np.frombuffer(b"qpy-bytes", dtype=np.uint8)}


def test_layout_and_fill(tmp_path):
    store = GramStore.create(tmp_path / "s.zarr", _arrays(), 4, {"fingerprint": "abc"})
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert g["k_train"].shape == (10, 10) and g["k_train"].chunks == (4, 4)
    assert g["k_test"].shape == (4, 10) and g["k_test"].chunks == (4, 4)
    assert np.isnan(g["k_train"][...]).all()
    assert list(g["sample_ids_train"][...])[:2] == ["s-0", "s-1"]
    assert g.attrs["qdist"]["fingerprint"] == "abc"
    assert store.tile_size == 4


def test_write_tiles_and_list_missing(tmp_path):
    plan = make_plan(10, 4, 4, 0)
    store = GramStore.create(tmp_path / "s.zarr", _arrays(), 4, {"fingerprint": "abc"})
    assert store.missing(plan) == list(plan.tiles)
    first, last = plan.tiles[0], plan.tiles[-1]
    store.write_tile(first, np.full(first.shape, 0.5))
    store.write_tile(last, np.full(last.shape, 0.25))
    missing = store.missing(plan)
    assert first not in missing and last not in missing and len(missing) == len(plan.tiles) - 2
    with pytest.raises(IncompleteStoreError, match=r"Resume with 'qdist run") as info:
        store.require_complete(plan)
    assert plan.tiles[1].key in str(info.value)
    with pytest.raises(StoreError, match="shape"):
        store.write_tile(first, np.zeros((2, 2)))


def test_reopen_same_fingerprint_keeps_tiles(tmp_path):
    plan = make_plan(10, 4, 4, 0)
    s1 = GramStore.create(tmp_path / "s.zarr", _arrays(), 4, {"fingerprint": "abc"})
    s1.write_tile(plan.tiles[0], np.full(plan.tiles[0].shape, 0.5))
    s2 = GramStore.create(tmp_path / "s.zarr", _arrays(), 4, {"fingerprint": "abc"})
    assert plan.tiles[0] not in s2.missing(plan)


def test_foreign_fingerprint_refused_and_store_untouched(tmp_path):
    plan = make_plan(10, 4, 4, 0)
    s1 = GramStore.create(tmp_path / "s.zarr", _arrays(), 4, {"fingerprint": "abc"})
    s1.write_tile(plan.tiles[0], np.full(plan.tiles[0].shape, 0.5))
    before = s1.read("x_train")
    with pytest.raises(StoreMismatchError, match="another job"):
        GramStore.create(tmp_path / "s.zarr", _arrays(q=4), 4, {"fingerprint": "other"})
    again = GramStore.open(tmp_path / "s.zarr")
    np.testing.assert_array_equal(again.read("x_train"), before)
    assert again.attrs["fingerprint"] == "abc"
    assert plan.tiles[0] not in again.missing(plan)


def test_open_errors(tmp_path):
    with pytest.raises(StoreError, match="No qdist store"):
        GramStore.open(tmp_path / "nothing.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a qdist store"):
        GramStore.open(tmp_path / "plain.zarr")
