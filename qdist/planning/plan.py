"""The tile plan.

``K(train, train)`` is cut into ``t x t`` tiles of which only the upper triangle (block row
``i <= j``) is computed; readers mirror. ``K(test, train)`` is computed whole. Every entry
``(i, j), i <= j`` of the train Gram is covered by exactly one tile, every test entry by one.
Each tile carries a seed spawned from the run seed and its own coordinates, so a retried or
resumed tile is computed with the same randomness wherever it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from qdist.errors import PlanError

__all__ = ["Tile", "Plan", "make_plan", "block_bounds", "landmark_plan"]

Matrix = Literal["k_train", "k_test"]
_MATRIX_IDS = {"k_train": 0, "k_test": 1}


def block_bounds(n: int, size: int, block: int) -> tuple[int, int]:
    """``[start, stop)`` of block ``block`` when ``n`` samples are cut into blocks of ``size``."""
    start = block * size
    return start, min(start + size, n)


@dataclass(frozen=True, slots=True)
class Tile:
    """One unit of work, storage, retry and resume: one chunk of one Gram matrix."""

    matrix: Matrix
    """``k_train`` (rows and columns are training samples) or ``k_test`` (test rows, train columns)."""
    row_block: int
    """Block index along the rows (the chunk's row coordinate)."""
    col_block: int
    """Block index along the columns."""
    rows: tuple[int, int]
    """``[start, stop)`` sample range of the rows (in ``x_train`` or ``x_test``)."""
    cols: tuple[int, int]
    """``[start, stop)`` sample range of the columns (always in ``x_train``)."""
    seed: int
    """Seed for anything random in this tile (shot sampling), spawned from the run seed."""

    @property
    def key(self) -> str:
        """Stable name, e.g. ``k_train/0.3``."""
        return f"{self.matrix}/{self.row_block}.{self.col_block}"

    @property
    def diagonal(self) -> bool:
        """True for a ``k_train`` tile on the block diagonal (rows and columns are the same samples)."""
        return self.matrix == "k_train" and self.row_block == self.col_block

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows[1] - self.rows[0], self.cols[1] - self.cols[0]

    def to_dict(self) -> dict[str, Any]:
        return {"matrix": self.matrix, "row_block": self.row_block, "col_block": self.col_block,
                "rows": list(self.rows), "cols": list(self.cols), "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tile:
        return cls(d["matrix"], int(d["row_block"]), int(d["col_block"]),
                   (int(d["rows"][0]), int(d["rows"][1])), (int(d["cols"][0]), int(d["cols"][1])),
                   int(d["seed"]))


def _tile_seed(run_seed: int, matrix: Matrix, i: int, j: int) -> int:
    seq = np.random.SeedSequence([run_seed, _MATRIX_IDS[matrix], i, j])
    return int(seq.generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True, slots=True)
class Plan:
    """All tiles of one run, in a schedule order that groups tiles by row block."""

    n_train: int
    """Training samples (rows and columns of ``k_train``)."""
    n_test: int
    """Test samples (rows of ``k_test``)."""
    tile_size: int
    """Tile edge in samples (= chunk edge in the store)."""
    tiles: tuple[Tile, ...]
    """Every tile to compute, ``k_train`` first."""

    @property
    def train_blocks(self) -> int:
        return -(-self.n_train // self.tile_size)

    @property
    def test_blocks(self) -> int:
        return -(-self.n_test // self.tile_size)

    def summary(self) -> dict[str, Any]:
        """Small, JSON-ready description stored in the Zarr attributes and logged to MLflow."""
        n_train_tiles = sum(t.matrix == "k_train" for t in self.tiles)
        entries = sum(t.shape[0] * t.shape[1] for t in self.tiles)
        return {
            "n_train": self.n_train,
            "n_test": self.n_test,
            "tile_size": self.tile_size,
            "tiles_total": len(self.tiles),
            "tiles_k_train": n_train_tiles,
            "tiles_k_test": len(self.tiles) - n_train_tiles,
            "entries_computed": entries,
        }


def make_plan(n_train: int, n_test: int, tile_size: int, seed: int) -> Plan:
    """Upper-triangle tiles of ``K(train, train)`` and all tiles of ``K(test, train)``."""
    if n_train < 2:
        raise PlanError(f"A plan needs at least 2 training samples; got n_train={n_train}.")
    if n_test < 0:
        raise PlanError(f"n_test must be >= 0; got {n_test}.")
    if tile_size < 1:
        raise PlanError(f"tile_size must be >= 1; got {tile_size}. Use e.g. 64.")
    nb_train = -(-n_train // tile_size)
    nb_test = -(-n_test // tile_size)
    tiles: list[Tile] = []
    for i in range(nb_train):
        for j in range(i, nb_train):
            tiles.append(Tile("k_train", i, j, block_bounds(n_train, tile_size, i),
                              block_bounds(n_train, tile_size, j), _tile_seed(seed, "k_train", i, j)))
    for i in range(nb_test):
        for j in range(nb_train):
            tiles.append(Tile("k_test", i, j, block_bounds(n_test, tile_size, i),
                              block_bounds(n_train, tile_size, j), _tile_seed(seed, "k_test", i, j)))
    return Plan(n_train=n_train, n_test=n_test, tile_size=tile_size, tiles=tuple(tiles))


def landmark_plan(plan: Plan, landmarks: int) -> Plan:
    """The tiles the Nystrom path needs when the first ``landmarks`` training samples are the
    landmarks (a whole number of tiles): the upper-triangle ``k_train`` tiles of the landmark
    row blocks (which, mirrored, give every training row against the landmarks) and the
    ``k_test`` tiles of the landmark column blocks."""
    blocks = -(-landmarks // plan.tile_size)
    keep = tuple(t for t in plan.tiles
                 if (t.matrix == "k_train" and t.row_block < blocks)
                 or (t.matrix == "k_test" and t.col_block < blocks))
    return Plan(plan.n_train, plan.n_test, plan.tile_size, keep)
