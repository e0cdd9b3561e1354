"""The Zarr Gram store: one group per run, one chunk per tile.

Layout (DESIGN.md section 4): ``x_train``, ``x_test``, ``y_train``, ``y_test``,
``sample_ids_train``, ``sample_ids_test``, ``feature_map_qpy``, and the Gram arrays ``k_train``
(``n_train x n_train``) and ``k_test`` (``n_test x n_train``) with chunk shape = tile shape and
``fill_value`` NaN, so an unwritten tile can never pass for data. Only upper-triangle tiles of
``k_train`` are written. The group attribute ``qdist`` holds the resolved config, fingerprints,
package versions, the plan summary, the completion record and backend provenance.

The driver creates the store once; workers only open it and write whole chunks. "Done" means the
chunk exists; Zarr's local store writes a chunk to a temporary file and renames it, and an S3 PUT
is atomic, so a chunk is there whole or not at all. ``location`` is a local path or an
``s3://`` URL (:mod:`qdist.storage.location`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from qdist.errors import IncompleteStoreError, StoreError, StoreMismatchError
from qdist.planning.plan import Plan, Tile
from qdist.storage.location import zarr_store

__all__ = ["GramStore", "DATA_ARRAYS"]

log = logging.getLogger(__name__)

DATA_ARRAYS = ("x_train", "x_test", "y_train", "y_test", "sample_ids_train", "sample_ids_test",
               "feature_map_qpy")
_ATTR = "qdist"


class GramStore:
    """A handle on one run's Zarr group."""

    def __init__(self, group: zarr.Group, location: str) -> None:
        self.group = group
        self.location = location

    # ---------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        location: str | Path,
        arrays: Mapping[str, np.ndarray],
        tile_size: int,
        attrs: Mapping[str, Any],
        shots: bool = False,
        projected: int = 0,
    ) -> GramStore:
        """Create the group, or reopen it for a resume when its fingerprint matches.

        ``attrs`` must hold ``fingerprint``. An existing store with another fingerprint is
        refused (:class:`StoreMismatchError`) and left untouched. With ``shots``, the arrays
        ``shots_k_train`` and ``shots_k_test`` (int32, tile-chunked) hold the shots behind every
        estimated entry, so its binomial variance ``K (1 - K) / shots`` is known. With
        ``projected`` (a width), ``proj_train`` and ``proj_test`` (float64, NaN until written,
        one chunk per tile row block) hold every sample's projected-kernel features, written
        by the workers as they compute them.
        """
        location = str(location)
        existing = cls._try_open(location)
        if existing is not None:
            found = existing.attrs.get("fingerprint")
            if found != attrs["fingerprint"]:
                raise StoreMismatchError(
                    f"The store {location!r} belongs to another job (fingerprint {found!r}, this "
                    f"job {attrs['fingerprint']!r}): the config or the data differ. Nothing was "
                    "changed. Use another output folder (--out), or delete that store to start over."
                )
            log.info("resuming existing store %s", location)
            return existing
        group = zarr.open_group(zarr_store(location, "w-"), mode="w-")
        for name in DATA_ARRAYS:
            data = np.asarray(arrays[name])
            if data.dtype.kind in "UO":
                arr = group.create_array(name, shape=data.shape, dtype=str)
                arr[...] = data.astype(object)
            else:
                group.create_array(name, data=data)
        n_train = int(np.asarray(arrays["x_train"]).shape[0])
        n_test = int(np.asarray(arrays["x_test"]).shape[0])
        for name, shape in (("k_train", (n_train, n_train)), ("k_test", (n_test, n_train))):
            group.create_array(name, shape=shape, chunks=(tile_size, tile_size), dtype="f8",
                               fill_value=np.nan, compressors=None,
                               attributes={"tile_size": tile_size})
            if shots:
                group.create_array(f"shots_{name}", shape=shape, chunks=(tile_size, tile_size),
                                   dtype="i4", fill_value=0)
        if projected:
            for name, n in (("proj_train", n_train), ("proj_test", n_test)):
                group.create_array(name, shape=(n, projected), chunks=(tile_size, projected),
                                   dtype="f8", fill_value=np.nan)
        store = cls(group, location)
        store.attrs = dict(attrs)  # written last: a store with attributes is fully created
        return store

    @classmethod
    def _try_open(cls, location: str) -> GramStore | None:
        try:
            group = zarr.open_group(zarr_store(location, "r+"), mode="r+")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            return None
        if _ATTR not in group.attrs:
            raise StoreError(
                f"{location!r} holds a Zarr group that is not a complete qdist store (its creation "
                "was interrupted, or it belongs to another tool). Delete it or choose another --out."
            )
        return cls(group, location)

    @classmethod
    def open(cls, location: str | Path, mode: str = "r") -> GramStore:
        """Open an existing store (``mode`` ``r`` or ``r+``)."""
        location = str(location)
        try:
            group = zarr.open_group(zarr_store(location, mode), mode=mode)  # type: ignore[arg-type]
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
            raise StoreError(f"No qdist store at {location!r}. Check the path, or run the job "
                             "first with 'qdist run'.") from exc
        if _ATTR not in group.attrs:
            raise StoreError(f"{location!r} is a Zarr group without qdist attributes; it is not "
                             "a qdist store (or its creation was interrupted).")
        return cls(group, location)

    # ---------------------------------------------------------------- attributes
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs[_ATTR])  # type: ignore[arg-type]

    @attrs.setter
    def attrs(self, value: Mapping[str, Any]) -> None:
        self.group.attrs[_ATTR] = dict(value)

    def update_attrs(self, **fields: Any) -> None:
        """Merge ``fields`` into the ``qdist`` attribute (driver only)."""
        current = self.attrs
        current.update(fields)
        self.attrs = current

    # ---------------------------------------------------------------- arrays
    def array(self, name: str) -> zarr.Array:
        node = self.group[name]
        assert isinstance(node, zarr.Array)
        return node

    def read(self, name: str) -> np.ndarray:
        """Read a whole (small) data array, e.g. ``x_train``."""
        return np.asarray(self.array(name)[...])

    @property
    def tile_size(self) -> int:
        return int(self.array("k_train").chunks[0])

    # ---------------------------------------------------------------- tiles
    def write_tile(self, tile: Tile, values: np.ndarray, shots: np.ndarray | None = None) -> None:
        """Write one whole tile (= one chunk). Idempotent: the same tile writes the same bytes.

        Shot counts, when given, are written first: a tile counts as done once its values are
        there, and by then its shots are too.
        """
        arr = self.array(tile.matrix)
        if values.shape != tile.shape:
            raise StoreError(f"Tile {tile.key} has shape {values.shape}, expected {tile.shape}.")
        (r0, r1), (c0, c1) = tile.rows, tile.cols
        if shots is not None:
            self.array(f"shots_{tile.matrix}")[r0:r1, c0:c1] = shots
        arr[r0:r1, c0:c1] = values

    def done_chunks(self, matrix: str) -> set[tuple[int, int]]:
        """Chunk coordinates of ``matrix`` that exist in the store (one listing, no reads)."""
        arr = self.array(matrix)
        store_path = arr.store_path
        prefix = f"{store_path.path}/" if store_path.path else ""

        async def listing() -> list[str]:
            return [k async for k in store_path.store.list_prefix(prefix)]

        done: set[tuple[int, int]] = set()
        encode = arr.metadata.encode_chunk_key  # type: ignore[union-attr]
        keys = {k[len(prefix):] for k in sync(listing())}
        grid = arr._chunk_grid_shape
        for i in range(grid[0]):
            for j in range(grid[1]):
                if encode((i, j)) in keys:
                    done.add((i, j))
        return done

    def missing(self, plan: Plan) -> list[Tile]:
        """Tiles of ``plan`` whose chunk is not in the store, in plan order."""
        done = {m: self.done_chunks(m) for m in ("k_train", "k_test")}
        return [t for t in plan.tiles if (t.row_block, t.col_block) not in done[t.matrix]]

    def require_complete(self, plan: Plan) -> None:
        """Raise :class:`IncompleteStoreError` naming the missing tiles and how to resume."""
        missing = self.missing(plan)
        if missing:
            names = ", ".join(t.key for t in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            raise IncompleteStoreError(
                f"The store {self.location!r} is missing {len(missing)} of {len(plan.tiles)} "
                f"tiles ({names}{more}). Resume with 'qdist run JOB.yaml --out <same folder>': only "
                "the missing tiles are computed."
            )
