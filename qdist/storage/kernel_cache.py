"""A content-keyed kernel cache: one Zarr group per feature map, tiles shared across cohorts.

A sample is keyed by its content, ``SHA-256`` of its circuit-parameter row as little-endian
float64 (``-0.0`` counted as ``0.0``): identical rows are the same sample, whatever their id or
position in a cohort. The cache for one circuit (and precision) is an append-only *registry* of
samples and the Gram ``K[a, b] = |<phi(x_a)|phi(x_b)>|^2`` over registry order, cut into
``t x t`` tiles, one Zarr chunk each, upper triangle only, NaN fill. Registering a cohort
appends its unseen samples at the end, so every tile already written keeps its place; a second
cohort that shares samples and feature map reads their tiles instead of computing them.

The registry arrays carry :class:`~qdist.storage.GramStore`'s names, so the tile workers open a
cache like any store: ``x_train`` (the registry's parameters), ``k_train`` (the Gram),
``x_test`` (empty) and ``feature_map_qpy``; ``sample_keys`` holds the 32-byte key per sample.
The ``qdist`` attribute holds ``kind: kernel_cache``, the fingerprints, the tile size and the
committed registry size ``n`` (written last on every registration: rows past ``n`` are an
interrupted registration's and are overwritten by the next one).

Completeness. Block ``b`` covers ``[b t, min((b + 1) t, n))``; only the last block can be
short, and it grows when samples are appended. A tile written while one of its blocks was short
is recorded in ``extents`` with the registry size ``w`` it was computed for; it is complete
only while ``min((b + 1) t, w) == min((b + 1) t, n)`` for both of its blocks. Before a tile is
(re)computed, :meth:`KernelCache.invalidate` deletes its stale chunk and records ``w = n``, so a
driver killed at any point leaves chunks that are either complete or absent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from qiskit.circuit import QuantumCircuit
from zarr.core.sync import sync

from qdist.errors import ConfigError, DataError, IncompleteStoreError, StoreError, StoreMismatchError
from qdist.kernel.feature_maps import circuit_fingerprint, circuit_from_qpy, circuit_to_qpy
from qdist.planning.plan import Tile, block_bounds
from qdist.storage.gram_store import GramStore
from qdist.storage.location import is_remote, parse_s3_url, zarr_store

__all__ = ["KernelCache", "Registration", "check_params", "sample_keys", "cache_fingerprint",
           "cache_location", "DEFAULT_CACHE_TILE_SIZE"]

log = logging.getLogger(__name__)

DEFAULT_CACHE_TILE_SIZE = 128
"""Tile edge of a new cache: small enough that a grown cohort recomputes little, large enough
that a tile is a worthwhile GEMM."""
_KIND = "kernel_cache"
_FORMAT = 1
_KEY_BYTES = 32
_ATTR = "qdist"


def sample_keys(x: np.ndarray) -> np.ndarray:
    """The content key of every row of ``x``: ``(n, 32)`` uint8 SHA-256 digests."""
    rows = np.ascontiguousarray(np.asarray(x, dtype="<f8") + 0.0)  # + 0.0 maps -0.0 to 0.0
    out = np.empty((rows.shape[0], _KEY_BYTES), dtype=np.uint8)
    for i, row in enumerate(rows):
        out[i] = np.frombuffer(hashlib.sha256(row.tobytes()).digest(), dtype=np.uint8)
    return out


def cache_fingerprint(circuit: QuantumCircuit, precision: str) -> str:
    """What a cache is keyed by: the circuit's fingerprint and the amplitude precision."""
    return hashlib.sha256(f"{circuit_fingerprint(circuit)}|{precision}".encode()).hexdigest()


def cache_location(cache_dir: str | Path, circuit: QuantumCircuit, precision: str) -> str:
    """``<cache_dir>/kernel-<fingerprint[:20]>.zarr`` (a local folder or an ``s3://`` prefix)."""
    name = f"kernel-{cache_fingerprint(circuit, precision)[:20]}.zarr"
    cache_dir = str(cache_dir)
    if is_remote(cache_dir):
        return str(parse_s3_url(cache_dir, "cache_dir").child(name))
    return str(Path(cache_dir) / name)


@dataclass(frozen=True, slots=True)
class Registration:
    """Where a cohort's samples sit in the registry."""

    index: np.ndarray
    """Registry index of every input row, in input order (repeated rows share an index)."""
    new: int
    """Samples this registration appended."""
    n: int
    """Registry size after it."""


class KernelCache:
    """A handle on one feature map's cache group (driver side; workers open it as a GramStore)."""

    def __init__(self, store: GramStore) -> None:
        self.store = store
        meta = store.attrs
        self.tile_size = int(meta["tile_size"])
        self.n = int(meta["n"])
        self._extents: dict[str, int] = {k: int(v) for k, v in meta.get("extents", {}).items()}
        self._index = {bytes(k): i for i, k in enumerate(self.store.read("sample_keys")[:self.n])}

    @property
    def location(self) -> str:
        return self.store.location

    # ---------------------------------------------------------------- create / open
    @classmethod
    def open_or_create(cls, cache_dir: str | Path, circuit: QuantumCircuit, precision: str = "double",
                       tile_size: int | None = None) -> KernelCache:
        """The cache of ``circuit`` under ``cache_dir``: opened and checked, or created empty.

        ``tile_size`` None takes the existing cache's (or :data:`DEFAULT_CACHE_TILE_SIZE`); a
        different explicit size is refused, since tiles are the cache's unit. A foreign, other
        or corrupted group at the cache's location is refused and left untouched.
        """
        if tile_size is not None and tile_size < 1:
            raise ConfigError(f"tile_size must be an integer >= 1; got {tile_size}. Use e.g. 128.")
        _refuse_group_as_folder(str(cache_dir))
        location = cache_location(cache_dir, circuit, precision)
        fingerprint = cache_fingerprint(circuit, precision)
        try:
            group = zarr.open_group(zarr_store(location, "r+"), mode="r+")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            if not is_remote(location) and Path(location).exists():
                raise StoreError(f"{location!r} exists but is not a Zarr group, so not a kernel "
                                 "cache. Nothing was changed. Move it away, or choose another "
                                 "cache folder.") from None
            return cls._create(location, circuit, precision, fingerprint,
                               tile_size or DEFAULT_CACHE_TILE_SIZE)
        cache = cls._checked(GramStore(group, location), fingerprint)
        if tile_size is not None and tile_size != cache.tile_size:
            raise ConfigError(
                f"The kernel cache {location!r} has tile size {cache.tile_size}; got "
                f"tile_size={tile_size}. Pass tile_size=None (or {cache.tile_size}) to use it, or "
                "choose another cache folder for another tile size."
            )
        return cache

    @classmethod
    def _create(cls, location: str, circuit: QuantumCircuit, precision: str, fingerprint: str,
                tile_size: int) -> KernelCache:
        group = zarr.open_group(zarr_store(location, "w-"), mode="w-")
        p = circuit.num_parameters
        group.create_array("x_train", shape=(0, p), chunks=(max(1024, tile_size), max(p, 1)),
                           dtype="f8")
        group.create_array("x_test", shape=(0, p), dtype="f8")
        group.create_array("sample_keys", shape=(0, _KEY_BYTES), chunks=(4096, _KEY_BYTES),
                           dtype="u1")
        group.create_array("feature_map_qpy", data=circuit_to_qpy(circuit))
        group.create_array("k_train", shape=(0, 0), chunks=(tile_size, tile_size), dtype="f8",
                           fill_value=np.nan, compressors=None, attributes={"tile_size": tile_size})
        store = GramStore(group, location)
        store.attrs = {"kind": _KIND, "format": _FORMAT, "fingerprint": fingerprint,
                       "circuit_fingerprint": circuit_fingerprint(circuit), "precision": precision,
                       "n_params": p, "tile_size": tile_size, "n": 0, "extents": {}}  # last
        log.info("created kernel cache %s (tile size %d)", location, tile_size)
        return cls(store)

    @classmethod
    def _checked(cls, store: GramStore, fingerprint: str) -> KernelCache:
        where = store.location
        fix = "Nothing was changed. Delete it, or choose another cache folder."
        meta = store.group.attrs.get(_ATTR)
        if not isinstance(meta, dict):
            raise StoreError(f"{where!r} holds a Zarr group that is not a qdist kernel cache (its "
                             f"creation was interrupted, or another tool wrote it). {fix}")
        if meta.get("kind") != _KIND:
            raise StoreMismatchError(f"{where!r} is a qdist store of kind {meta.get('kind', 'run')!r}, "
                                     f"not a kernel cache. {fix}")
        if meta.get("format") != _FORMAT or meta.get("fingerprint") != fingerprint:
            raise StoreMismatchError(
                f"The kernel cache {where!r} belongs to another feature map or format (fingerprint "
                f"{meta.get('fingerprint')!r}, format {meta.get('format')!r}; expected "
                f"{fingerprint!r}, format {_FORMAT}). {fix}")
        try:
            _check_layout(store, meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"The kernel cache {where!r} is damaged: {exc}. {fix}") from exc
        return cls(store)

    # ---------------------------------------------------------------- registry
    def register(self, x: np.ndarray) -> Registration:
        """Append the unseen rows of ``x`` (circuit parameters) to the registry (driver only).

        Rows are checked first (finite, one column per circuit parameter); the registry size is
        committed last, after the parameters, keys and the Gram's new shape are written.
        """
        x = check_params(x, int(self.store.attrs["n_params"]))
        keys = sample_keys(x)
        index = np.empty(len(keys), dtype=np.int64)
        fresh: dict[bytes, int] = {}
        new_rows: list[int] = []
        for r, k in enumerate(keys):
            key = k.tobytes()
            found = self._index.get(key, fresh.get(key))
            if found is None:
                found = fresh[key] = self.n + len(new_rows)
                new_rows.append(r)
            index[r] = found
        n_new = self.n + len(new_rows)
        if n_new != self.n or self.store.array("k_train").shape[0] != self.n:
            self._grow(n_new, x[new_rows], keys[new_rows])
            self._index.update(fresh)
        return Registration(index=index, new=len(new_rows), n=self.n)

    def _grow(self, n_new: int, x_new: np.ndarray, keys_new: np.ndarray) -> None:
        xa, ka = self.store.array("x_train"), self.store.array("sample_keys")
        xa.resize((n_new, xa.shape[1]))
        ka.resize((n_new, _KEY_BYTES))
        if len(x_new):
            xa[self.n:n_new] = x_new
            ka[self.n:n_new] = keys_new
        self.store.array("k_train").resize((n_new, n_new))
        self.store.update_attrs(n=n_new)  # commit
        log.info("kernel cache %s: registry %d -> %d samples", self.location, self.n, n_new)
        self.n = n_new

    # ---------------------------------------------------------------- tiles
    def _tile(self, i: int, j: int) -> Tile:
        t, n = self.tile_size, self.n
        return Tile("k_train", i, j, block_bounds(n, t, i), block_bounds(n, t, j), seed=0)

    def tiles(self, rows: np.ndarray, cols: np.ndarray | None = None) -> list[Tile]:
        """The upper-triangle tiles that ``K[rows, cols]`` reads (``cols`` None: ``rows``)."""
        rb = np.unique(np.asarray(rows) // self.tile_size).tolist()
        cb = rb if cols is None else np.unique(np.asarray(cols) // self.tile_size).tolist()
        pairs = {(min(a, b), max(a, b)) for a in rb for b in cb}
        return [self._tile(i, j) for i, j in sorted(pairs)]

    def _complete(self, i: int, j: int) -> bool:
        t = self.tile_size
        written = self._extents.get(f"{i}.{j}", self.n)
        return all(min((b + 1) * t, written) == min((b + 1) * t, self.n) for b in (i, j))

    def missing(self, tiles: Iterable[Tile]) -> list[Tile]:
        """Tiles of ``tiles`` that are absent, or were written for a shorter block."""
        done = self.store.done_chunks("k_train")
        return [tl for tl in tiles
                if (tl.row_block, tl.col_block) not in done or not self._complete(tl.row_block,
                                                                                    tl.col_block)]

    def invalidate(self, tiles: Sequence[Tile]) -> None:
        """Before computing ``tiles``: delete their stale chunks, record their extents."""
        done = self.store.done_chunks("k_train")
        arr = self.store.array("k_train")
        prefix = f"{arr.store_path.path}/" if arr.store_path.path else ""
        encode = arr.metadata.encode_chunk_key  # type: ignore[union-attr]
        for tl in tiles:
            if (tl.row_block, tl.col_block) in done:
                sync(arr.store_path.store.delete(prefix + encode((tl.row_block, tl.col_block))))
            short = any(hi - lo < self.tile_size for lo, hi in (tl.rows, tl.cols))
            if short:
                self._extents[f"{tl.row_block}.{tl.col_block}"] = self.n
            else:
                self._extents.pop(f"{tl.row_block}.{tl.col_block}", None)
        self.store.update_attrs(extents=dict(self._extents))

    # ---------------------------------------------------------------- reading
    def gather(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """``K[rows, cols]`` by registry index, reading each needed tile once per block pair
        and mirroring tiles below the diagonal. Refuses NaN (a tile not computed yet)."""
        rows = np.asarray(rows, dtype=np.int64)
        sym = cols is None
        cols = rows if cols is None else np.asarray(cols, dtype=np.int64)
        arr, t = self.store.array("k_train"), self.tile_size
        out = np.empty((rows.size, cols.size))
        groups_r, groups_c = _by_block(rows, t), _by_block(cols, t)
        for bi, (pi, li) in groups_r.items():
            for bj, (pj, lj) in groups_c.items():
                if sym and bj < bi:
                    continue
                a, b = min(bi, bj), max(bi, bj)
                tile = np.asarray(arr[slice(*block_bounds(self.n, t, a)),
                                      slice(*block_bounds(self.n, t, b))])
                block = tile[np.ix_(li, lj)] if bi <= bj else tile[np.ix_(lj, li)].T
                out[np.ix_(pi, pj)] = block
                if sym:
                    out[np.ix_(pj, pi)] = block.T
        bad = np.isnan(out)
        if bad.any():
            raise IncompleteStoreError(
                f"{int(bad.sum())} entries read from the kernel cache {self.location!r} are NaN: "
                "their tiles are not computed yet. Compute them first (qdist.api.cached_gram does)."
            )
        return out


def _by_block(index: np.ndarray, t: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Positions in ``index`` and offsets within the block, grouped by block."""
    blocks = index // t
    return {int(b): (np.flatnonzero(blocks == b), index[blocks == b] - b * t)
            for b in np.unique(blocks)}


def check_params(x: Any, n_params: int) -> np.ndarray:
    """``x`` as a float64 ``(n, n_params)`` array of finite circuit parameters, or a DataError."""
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Circuit parameters must be numeric; {exc}. Encode the samples first.") \
            from exc
    if x.ndim != 2 or x.shape[1] != n_params:
        raise DataError(f"Circuit parameters must be a 2-d array with one column per circuit "
                        f"parameter ({n_params}); got shape {x.shape}. Encode the samples to "
                        f"{n_params} parameters, or use the feature map they were encoded for.")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise DataError(f"{bad.size} rows of circuit parameters are not finite (first: row "
                        f"{int(bad[0])}). Impute or drop them before computing the kernel.")
    return x


def _check_layout(store: GramStore, meta: dict[str, Any]) -> None:
    """Raise ValueError/KeyError naming what in an opened cache disagrees with its record."""
    n, t, p = int(meta["n"]), int(meta["tile_size"]), int(meta["n_params"])
    x, k = store.array("x_train"), store.array("k_train")
    keys = store.array("sample_keys")
    if x.shape[0] < n or keys.shape[0] < n or x.shape[1] != p or k.shape[0] < n:
        raise ValueError(f"its arrays (x_train {x.shape}, sample_keys {keys.shape}, k_train "
                         f"{k.shape}) do not hold the {n} samples of {p} parameters it records")
    if k.chunks != (t, t):
        raise ValueError(f"k_train is chunked {k.chunks}, not by its tile size {t}")
    if circuit_fingerprint(circuit_from_qpy(store.read("feature_map_qpy"))) != \
            meta["circuit_fingerprint"]:
        raise ValueError("its feature_map_qpy is not the circuit it records")
    stored, recomputed = np.asarray(keys[:n]), sample_keys(np.asarray(x[:n]))
    wrong = np.flatnonzero((stored != recomputed).any(axis=1))
    if wrong.size:
        raise ValueError(f"{wrong.size} samples' parameters no longer match their keys (first: "
                         f"registry row {int(wrong[0])})")
    if len({row.tobytes() for row in stored}) != n:
        raise ValueError("its registry holds the same sample twice")


def _refuse_group_as_folder(cache_dir: str) -> None:
    """A cache folder holds cache groups; a Zarr group (a run's store) is not one."""
    try:
        zarr.open_group(zarr_store(cache_dir, "r"), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, NotADirectoryError):
        return
    raise StoreError(f"cache_dir {cache_dir!r} is itself a Zarr group (a run's store?), not a "
                     "folder for kernel caches. Nothing was changed. Give a plain folder, e.g. "
                     "'kernel-cache'.")
