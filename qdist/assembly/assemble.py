"""Read the tiles lazily with Dask, mirror the upper triangle, check the kernel invariants.

``k_train`` holds only its upper-triangle tiles (the rest is NaN fill). With ``U`` the stored
array, ``K[i, j] = U[i, j]`` for ``i <= j`` and ``U[j, i]`` otherwise: every entry comes from
exactly one written chunk. Checks, before anything trains on it: every planned tile present,
no NaN, unit diagonal, diagonal tiles symmetric, all values in [0, 1]; the first violation is
named by tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np

from qdist.errors import IncompleteStoreError, KernelCheckError, StoreMismatchError
from qdist.planning.plan import Plan, block_bounds
from qdist.storage import GramStore

__all__ = ["AssembledKernels", "gram_arrays", "assemble", "assemble_columns", "check_kernels"]

_TOL = 1e-8


def _mirror_block(u: np.ndarray, u_t: np.ndarray, block_info: Any = None) -> np.ndarray:
    """Block (i, j) of the mirrored matrix: the written tile (i, j) when i <= j, else (j, i)^T."""
    i, j = block_info[0]["chunk-location"]
    return u if i <= j else u_t


def gram_arrays(store: GramStore) -> tuple[da.Array, da.Array]:
    """Lazy, mirrored ``K(train, train)`` and lazy ``K(test, train)`` of ``store``."""
    upper = da.from_zarr(store.array("k_train"), inline_array=True)
    k_train = da.map_blocks(_mirror_block, upper, upper.T, dtype=upper.dtype)
    k_test = da.from_zarr(store.array("k_test"), inline_array=True)
    return k_train, k_test


@dataclass(frozen=True)
class AssembledKernels:
    """Checked, in-memory kernel matrices for training."""

    k_train: np.ndarray
    k_test: np.ndarray


def _nan_tiles(arr: da.Array, matrix: str, upper_only: bool) -> list[str]:
    counts = arr.map_blocks(lambda b: np.array([[np.isnan(b).sum()]]), chunks=(1, 1),
                            dtype=np.int64).compute()
    bad = [f"{matrix}/{i}.{j}" for i, j in zip(*np.nonzero(counts), strict=True)
           if not upper_only or i <= j]
    return bad


def check_kernels(store: GramStore, k_train: da.Array, k_test: da.Array) -> None:
    """Raise :class:`KernelCheckError` naming the first tile that breaks an invariant."""
    # the mirrored k_train's block (i, j <= i) is tile (j, i): counting the upper blocks only
    # names every written tile once
    for matrix, arr, upper_only in (("k_train", k_train, True), ("k_test", k_test, False)):
        bad = _nan_tiles(arr, matrix, upper_only)
        if bad:
            raise IncompleteStoreError(
                f"Tiles {bad[:8]} of {store.location!r} hold NaN. Resume with 'qdist run "
                "JOB.yaml --out <same folder>'; if it persists the backend produced NaN."
            )
    lo, hi, diag_dev = da.compute(
        da.minimum(k_train.min(), k_test.min() if k_test.size else 0.0),
        da.maximum(k_train.max(), k_test.max() if k_test.size else 0.0),
        abs(da.diag(k_train) - 1.0).max(),
    )
    if lo < 0.0 or hi > 1.0:
        raise KernelCheckError(f"Kernel values leave [0, 1] (min {lo}, max {hi}).")
    if diag_dev > _TOL:
        raise KernelCheckError(
            f"The train Gram diagonal deviates from 1 by {diag_dev:.3g} (> {_TOL}): the states are "
            "not normalised. Check the backend."
        )
    tile = store.tile_size
    n = store.array("k_train").shape[0]
    arr = store.array("k_train")
    for b in range(-(-n // tile)):
        r0, r1 = block_bounds(n, tile, b)
        block = np.asarray(arr[r0:r1, r0:r1])
        asym = float(np.abs(block - block.T).max())
        if asym > _TOL:
            raise KernelCheckError(f"Diagonal tile k_train/{b}.{b} is not symmetric "
                                   f"(max |K - K^T| = {asym:.3g}).")


def _check_owner(store: GramStore, fingerprint: str | None) -> None:
    if fingerprint is not None and store.attrs.get("fingerprint") != fingerprint:
        raise StoreMismatchError(
            f"The store {store.location!r} has fingerprint {store.attrs.get('fingerprint')!r}, "
            f"not this job's {fingerprint!r}; refusing to train on another job's kernel."
        )


def assemble_columns(store: GramStore, plan: Plan, columns: int,
                     fingerprint: str | None = None) -> tuple[np.ndarray, np.ndarray, da.Array]:
    """The Nystrom path: ``K(train, L)`` and ``K(test, L)`` for the landmarks ``L`` = the first
    ``columns`` training samples, checked (no NaN, values in [0, 1], unit diagonal of
    ``K(L, L)``) and loaded; only the landmark tiles are read. Also returns the lazy mirrored
    ``K(train, train)`` for out-of-core diagnostics when the plan wrote every tile."""
    _check_owner(store, fingerprint)
    store.require_complete(plan)
    k_train, k_test = gram_arrays(store)
    c_train, c_test = da.compute(k_train[:, :columns], k_test[:, :columns])
    for name, block in (("K(train, landmarks)", c_train), ("K(test, landmarks)", c_test)):
        if np.isnan(block).any():
            raise IncompleteStoreError(
                f"{name} of {store.location!r} holds {int(np.isnan(block).sum())} NaN value(s). "
                "Resume with 'qdist run JOB.yaml --out <same folder>'.")
        if block.size and (block.min() < 0.0 or block.max() > 1.0):
            raise KernelCheckError(f"{name} leaves [0, 1] (min {block.min()}, max {block.max()}).")
    dev = float(np.abs(np.diag(c_train[:columns]) - 1.0).max())
    if dev > _TOL:
        raise KernelCheckError(f"The landmark Gram diagonal deviates from 1 by {dev:.3g} (> {_TOL}).")
    return np.asarray(c_train), np.asarray(c_test), k_train


def assemble(store: GramStore, plan: Plan, fingerprint: str | None = None) -> AssembledKernels:
    """Check completeness, fingerprint and invariants, then load the matrices."""
    _check_owner(store, fingerprint)
    store.require_complete(plan)
    k_train, k_test = gram_arrays(store)
    check_kernels(store, k_train, k_test)
    kt, ks = da.compute(k_train, k_test)
    return AssembledKernels(k_train=np.asarray(kt), k_test=np.asarray(ks))
