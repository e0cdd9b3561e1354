"""Tile formulas of the fidelity kernel.

For states ``S_A`` (``b_r x 2^q``, one row per sample) and ``S_B`` (``b_c x 2^q``) the tile is

    K[A, B] = |conj(S_A) @ S_B^T|^2,

one complex matrix product costing ``8 b_r b_c 2^q`` flops. Values are clipped to [0, 1]: the
fidelity cannot leave that interval and rounding must not make it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fidelity_tile"]


def fidelity_tile(states_a: np.ndarray, states_b: np.ndarray | None = None) -> np.ndarray:
    """``|<a|b>|^2`` for every row ``a`` of ``states_a`` and row ``b`` of ``states_b``.

    With ``states_b`` omitted the tile is the Gram of ``states_a`` with itself (a diagonal tile),
    made exactly symmetric.
    """
    if states_b is None:
        overlap = states_a.conj() @ states_a.T
        tile = np.abs(overlap) ** 2
        tile = 0.5 * (tile + tile.T)
    else:
        overlap = states_a.conj() @ states_b.T
        tile = np.abs(overlap) ** 2
    return np.clip(tile, 0.0, 1.0, out=tile)
