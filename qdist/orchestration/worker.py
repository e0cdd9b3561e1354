"""The tile worker: built once per actor, it opens the store and streams tiles.

A worker keeps the states of the blocks it used most recently, as many as its memory budget
allows (its current row block stays resident while column blocks stream past), so a block's
states are computed once per worker rather than once per tile when the budget holds them all.
Everything it needs arrives as picklable config; the backend is built inside it.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from qdist.backends import make_backend
from qdist.config import BackendSpec
from qdist.kernel.feature_maps import circuit_from_qpy
from qdist.kernel.tiles import fidelity_tile
from qdist.orchestration.faults import inject
from qdist.planning.plan import Tile
from qdist.storage import GramStore

__all__ = ["TileWorker"]


class TileWorker:
    """Computes tiles of one store with one backend."""

    def __init__(self, store_location: str, backend: BackendSpec, cache_blocks: int = 3) -> None:
        self.store = GramStore.open(store_location, mode="r+")
        circuit = circuit_from_qpy(self.store.read("feature_map_qpy"))
        self.backend = make_backend(backend, circuit)
        # a backend whose states are not vectors (MPS) brings its own tile function
        self.tile = getattr(self.backend, "tile", fidelity_tile)
        self.cache_blocks = max(2, cache_blocks)
        self.x = {"k_train": self.store.read("x_train"), "k_test": self.store.read("x_test")}
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.states_computed = 0

    def ready(self) -> str:
        """Answers once the worker is placed and built (store open, circuit compiled): the
        runner hands tiles only to workers that have answered. Returns the node id."""
        return _node_id()

    def _states(self, side: str, block: int, bounds: tuple[int, int]) -> np.ndarray:
        key = (side, block)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        states = self.backend.states(self.x[side][bounds[0]:bounds[1]])
        self.states_computed += len(states)
        stored = "proj_" + side.removeprefix("k_")
        if stored in self.store.group:  # projected kernels keep every sample's features
            self.store.array(stored)[bounds[0]:bounds[1]] = np.asarray(states)
        self._cache[key] = states
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return states

    def compute(self, tile_dict: dict[str, Any]) -> dict[str, Any]:
        """Compute one tile, write its chunk, return a small result record."""
        tile = Tile.from_dict(tile_dict)
        inject(tile.key, "start")
        start = time.perf_counter()
        rows = self._states(tile.matrix, tile.row_block, tile.rows)
        cols = rows if tile.diagonal else self._states("k_train", tile.col_block, tile.cols)
        values = self.tile(rows) if tile.diagonal else self.tile(rows, cols)
        inject(tile.key, "before_write")
        self.store.write_tile(tile, values)
        out = {"key": tile.key, "entries": int(values.size),
               "seconds": time.perf_counter() - start, "node": _node_id(), "pid": os.getpid()}
        if hasattr(rows, "bond_dims"):  # MPS: what the truncation kept and dropped
            out["mps"] = {"max_bond": int(max(rows.bond_dims.max(), cols.bond_dims.max())),
                          "max_truncation_error": float(max(rows.truncation_error.max(),
                                                            cols.truncation_error.max()))}
        return out


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside Ray (in-process use) there is no node
        pass
    return "local"
