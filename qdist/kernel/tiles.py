"""Tile formulas of the fidelity kernel.

For states ``S_A`` (``b_r x 2^q``, one row per sample) and ``S_B`` (``b_c x 2^q``) the tile is

    K[A, B] = |conj(S_A) @ S_B^T|^2,

one complex matrix product costing ``8 b_r b_c 2^q`` flops. A diagonal tile (``A = B``) is
Hermitian, ``G = S S^H`` up to conjugation, so only its upper triangle is computed with a
Hermitian rank-k update (BLAS ``zherk``/``cherk``: half the flops) and mirrored. Values are
clipped to [0, 1]: the fidelity cannot leave that interval and rounding must not make it.

Precision: in complex64 each overlap is a sum of ``2^q`` products with relative rounding
``u = 6e-8``, so ``|<a|b>|`` carries an absolute error of about ``sqrt(2^q) u`` (rounding errors
add like a random walk; ``2^q u`` is the worst case), and the kernel entry about twice that,
plus the rounding of the single-precision state updates. Measured maxima over whole Gram
matrices (``benchmarks/results``): 2e-6 at 8-12 qubits, 4e-6 at 16, 2.4e-5 at 20. Complex128
keeps errors near 1e-14.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import blas

__all__ = ["fidelity_tile", "to_numpy"]


def to_numpy(a: Any) -> np.ndarray:
    """A NumPy copy of a NumPy, CuPy or PyTorch array (device arrays are copied to the host)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get"):  # CuPy
        return np.asarray(a.get())
    if hasattr(a, "detach"):  # PyTorch
        return np.asarray(a.detach().cpu().numpy())
    return np.asarray(a)


def _squared_modulus(overlap: Any) -> Any:
    return overlap.real * overlap.real + overlap.imag * overlap.imag


def _hermitian_tile(states: np.ndarray) -> np.ndarray:
    herk = blas.zherk if states.dtype == np.complex128 else blas.cherk
    # With a Fortran-ordered view of the C-ordered (n x d) states, BLAS sees A = S^T (d x n);
    # trans=2 (A^H A) then gives conj(S) S^T = the overlap matrix, upper triangle filled.
    upper = herk(1.0, np.asfortranarray(states.T), trans=2, lower=0)
    tile = _squared_modulus(upper).astype(np.float64)
    tile = np.triu(tile) + np.triu(tile, 1).T
    return tile


def fidelity_tile(states_a: Any, states_b: Any | None = None) -> np.ndarray:
    """``|<a|b>|^2`` for every row ``a`` of ``states_a`` and row ``b`` of ``states_b``, float64.

    With ``states_b`` omitted the tile is the Gram of ``states_a`` with itself (a diagonal tile),
    exactly symmetric. NumPy inputs use BLAS directly; CuPy or PyTorch inputs are multiplied on
    their device and only the finished tile is copied back.
    """
    if isinstance(states_a, np.ndarray) and states_b is None:
        tile = _hermitian_tile(states_a)
    else:
        other = states_a if states_b is None else states_b
        tile = to_numpy(_squared_modulus(states_a.conj() @ other.T)).astype(np.float64)
        if states_b is None:
            tile = 0.5 * (tile + tile.T)
    return np.clip(tile, 0.0, 1.0, out=tile)
