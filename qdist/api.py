"""The notebook API: everything the CLI does, as functions.

- :func:`run_job` runs a job from a file, a mapping or a :class:`~qdist.config.RunConfig`.
- :func:`open_store` opens a finished (or partial) store and returns lazy Dask matrices.
- :func:`compute_gram` computes a Gram matrix for arrays in memory with the same tile engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit

from qdist.backends import make_backend
from qdist.config import BackendSpec, FeatureMapSpec
from qdist.kernel.feature_maps import build_feature_map, circuit_from_qpy
from qdist.kernel.tiles import fidelity_tile
from qdist.pipeline import RunResult, run_job
from qdist.planning.plan import block_bounds

__all__ = ["run_job", "RunResult", "StoreView", "open_store", "compute_gram", "gram_from_blocks"]


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
