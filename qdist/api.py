"""The notebook API: everything the CLI does, as functions.

- :func:`run_job` runs a job from a file, a mapping or a :class:`~qdist.config.RunConfig`.
- :func:`open_store` opens a finished (or partial) store and returns lazy Dask matrices.
- :func:`compute_gram` computes a Gram matrix for arrays in memory with the same tile engine.
- :func:`cached_gram` and :func:`cached_cross` compute kernels through a content-keyed kernel
  cache: only tiles of samples the cache has not seen are computed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit

from qdist.backends import make_backend
from qdist.config import BackendSpec, FeatureMapSpec
from qdist.errors import ConfigError
from qdist.events import Callback
from qdist.kernel.feature_maps import build_feature_map, circuit_from_qpy
from qdist.kernel.tiles import fidelity_tile
from qdist.pipeline import RunResult, run_job
from qdist.planning.cost import WorkerMemory, cached_blocks, check_tile_fits
from qdist.planning.plan import Tile, block_bounds

__all__ = ["run_job", "RunResult", "StoreView", "open_store", "compute_gram", "gram_from_blocks",
           "cached_gram", "cached_cross", "CacheStats"]


@dataclass(frozen=True)
class StoreView:
    """A read-only view of a run's store: lazy kernels and the small arrays."""

    location: str
    k_train: Any
    """``dask.array`` of K(train, train), mirrored from its upper-triangle tiles."""
    k_test: Any
    """``dask.array`` of K(test, train)."""
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    sample_ids_train: np.ndarray
    sample_ids_test: np.ndarray
    feature_map: QuantumCircuit
    attrs: dict[str, Any]


def open_store(location: str | Path) -> StoreView:
    """Open the store at ``location`` (read-only)."""
    from qdist.assembly import gram_arrays
    from qdist.storage import GramStore

    store = GramStore.open(location)
    k_train, k_test = gram_arrays(store)
    return StoreView(
        location=store.location, k_train=k_train, k_test=k_test,
        x_train=store.read("x_train"), x_test=store.read("x_test"),
        y_train=store.read("y_train"), y_test=store.read("y_test"),
        sample_ids_train=store.read("sample_ids_train"),
        sample_ids_test=store.read("sample_ids_test"),
        feature_map=circuit_from_qpy(store.read("feature_map_qpy")), attrs=store.attrs)


def gram_from_blocks(blocks: list[Any], n: int, tile_size: int) -> np.ndarray:
    """The symmetric Gram of ``n`` samples from their state blocks (block ``b`` holds samples
    ``[b t, (b + 1) t)``): upper-triangle tiles computed, mirrored in place."""
    out = np.empty((n, n))
    for i in range(len(blocks)):
        ri = slice(*block_bounds(n, tile_size, i))
        out[ri, ri] = fidelity_tile(blocks[i])
        for j in range(i + 1, len(blocks)):
            rj = slice(*block_bounds(n, tile_size, j))
            out[ri, rj] = fidelity_tile(blocks[i], blocks[j])
            out[rj, ri] = out[ri, rj].T
    return out


def compute_gram(
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    feature_map: FeatureMapSpec | QuantumCircuit | None = None,
    backend: BackendSpec | None = None,
    tile_size: int = 256,
) -> np.ndarray:
    """Fidelity kernel ``K[i, j] = |<phi(x_i)|phi(y_j)>|^2`` in memory, tile by tile.

    ``x`` (and ``y``) are circuit parameters, one row per sample. With ``y`` omitted the result is
    the symmetric Gram of ``x`` (upper-triangle tiles computed, then mirrored). ``feature_map``
    is a spec or any parameterised circuit whose parameter count equals ``x.shape[1]``.
    """
    circuit = (feature_map if isinstance(feature_map, QuantumCircuit)
               else build_feature_map(feature_map or FeatureMapSpec(qubits=np.shape(x)[1])))
    engine = make_backend(backend or BackendSpec(), circuit)
    x = np.asarray(x, dtype=np.float64)
    nb = -(-x.shape[0] // tile_size)
    sx = [engine.states(x[slice(*block_bounds(x.shape[0], tile_size, b))]) for b in range(nb)]
    if y is None:
        return gram_from_blocks(sx, x.shape[0], tile_size)
    y = np.asarray(y, dtype=np.float64)
    sy = engine.states(y)
    return np.vstack([fidelity_tile(s, sy) for s in sx])


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a cached kernel call found in its kernel cache and what it computed."""

    cache: str
    """Location of the cache group (one per feature-map circuit and precision)."""
    samples_new: int
    """Samples this call appended to the cache's registry."""
    samples_total: int
    """Registry size after the call."""
    tiles_needed: int
    """Tiles the requested kernel reads."""
    tiles_computed: int
    """Tiles computed by this call: absent ones, and ones written before their block grew."""
    tiles_reused: int
    """Tiles read as they were (``tiles_needed - tiles_computed``)."""
    seconds: float
    """Wall time of the call."""


def cached_gram(
    x: np.ndarray,
    feature_map: FeatureMapSpec | QuantumCircuit,
    cache_dir: str | Path,
    *,
    backend: BackendSpec | None = None,
    tile_size: int | None = None,
    workers: int | None = None,
    address: str | None = None,
    worker_memory_gb: float = 4.0,
    callbacks: Sequence[Callback] = (),
) -> tuple[np.ndarray, CacheStats]:
    """Fidelity Gram ``K[i, j] = |<phi(x_i)|phi(x_j)>|^2`` of the rows of ``x``, through the
    content-keyed kernel cache under ``cache_dir`` (:mod:`qdist.storage.kernel_cache`).

    Rows are circuit parameters (bandwidth already applied), keyed by content: rows the cache
    has seen, under this circuit and ``backend.precision``, cost nothing, so a cohort grown by
    new patients computes only the tiles of the new rows and columns, and two cohorts that share
    samples share tiles. Missing tiles run on Ray (the connected cluster, ``address``, or an
    embedded one started and stopped here) with up to ``workers`` workers; ``workers=0``
    computes them in this process instead. ``tile_size`` fixes a new cache's tile edge (default
    128); an existing cache keeps its own. Returns ``K`` in the order of ``x`` and
    :class:`CacheStats`. One driver at a time per cache (a lease, as for a run's store).
    """
    return _cached(x, None, feature_map, cache_dir, backend, tile_size, workers, address,
                   worker_memory_gb, callbacks)


def cached_cross(
    x: np.ndarray,
    y: np.ndarray,
    feature_map: FeatureMapSpec | QuantumCircuit,
    cache_dir: str | Path,
    *,
    backend: BackendSpec | None = None,
    tile_size: int | None = None,
    workers: int | None = None,
    address: str | None = None,
    worker_memory_gb: float = 4.0,
    callbacks: Sequence[Callback] = (),
) -> tuple[np.ndarray, CacheStats]:
    """``K[i, j] = |<phi(x_i)|phi(y_j)>|^2`` (e.g. test rows against training columns) through
    the same cache as :func:`cached_gram`, whose tiles it shares; arguments as there."""
    return _cached(x, y, feature_map, cache_dir, backend, tile_size, workers, address,
                   worker_memory_gb, callbacks)


def _cached(x: Any, y: Any, feature_map: FeatureMapSpec | QuantumCircuit, cache_dir: str | Path,
            backend: BackendSpec | None, tile_size: int | None, workers: int | None,
            address: str | None, worker_memory_gb: float,
            callbacks: Sequence[Callback]) -> tuple[np.ndarray, CacheStats]:
    from qdist.storage.kernel_cache import KernelCache, cache_location, check_params
    from qdist.storage.lease import store_lease

    start = time.perf_counter()
    if not isinstance(feature_map, QuantumCircuit | FeatureMapSpec):
        raise ConfigError(f"feature_map must be a FeatureMapSpec or a QuantumCircuit; got "
                          f"{type(feature_map).__name__}. Use e.g. FeatureMapSpec(qubits=4).")
    circuit = (feature_map if isinstance(feature_map, QuantumCircuit)
               else build_feature_map(feature_map))
    backend = backend or BackendSpec()
    if backend.kind == "qpu":
        raise ConfigError("backend.kind='qpu' estimates entries from shots, which a kernel cache "
                          "does not hold (it holds exact kernels). Use kind batched, statevector "
                          "or aer.")
    if workers is not None and workers < 0:
        raise ConfigError(f"workers must be None (one per CPU), 0 (in this process) or >= 1; "
                          f"got {workers}.")
    x = check_params(x, circuit.num_parameters)
    y = None if y is None else check_params(y, circuit.num_parameters)
    with store_lease(cache_location(cache_dir, circuit, backend.precision)):
        cache = KernelCache.open_or_create(cache_dir, circuit, backend.precision, tile_size)
        memory = WorkerMemory(int(worker_memory_gb * 1024**3), backend.itemsize)
        check_tile_fits(cache.tile_size, circuit.num_qubits, memory)
        n_before = cache.n
        ix = cache.register(x).index
        iy = None if y is None else cache.register(y).index
        needed = cache.tiles(ix, iy)
        todo = cache.missing(needed)
        if todo:
            cache.invalidate(todo)
            blocks = cached_blocks(cache.tile_size, circuit.num_qubits, memory,
                                   -(-cache.n // cache.tile_size))
            _compute_cached(todo, cache.location, backend, workers, address, blocks, callbacks)
        k = cache.gather(ix, iy)
    return k, CacheStats(cache=cache.location, samples_new=cache.n - n_before,
                         samples_total=cache.n, tiles_needed=len(needed), tiles_computed=len(todo),
                         tiles_reused=len(needed) - len(todo), seconds=time.perf_counter() - start)


def _compute_cached(todo: Sequence[Tile], location: str, backend: BackendSpec, workers: int | None,
                    address: str | None, cache_blocks: int, callbacks: Sequence[Callback]) -> None:
    """The missing tiles: in this process (``workers=0``) or on Ray."""
    if workers == 0:
        from qdist.orchestration.worker import TileWorker

        worker = TileWorker(location, backend, cache_blocks)
        for tile in todo:
            worker.compute(tile.to_dict())
        return
    from qdist.orchestration.runner import ensure_ray, release_ray, run_tiles

    started = ensure_ray(address)
    try:
        run_tiles(todo, location, backend, workers=workers, cache_blocks=cache_blocks,
                  callbacks=callbacks)
    finally:
        if started:
            release_ray()
