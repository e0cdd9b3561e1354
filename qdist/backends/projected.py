"""The projected-kernel backend: any state backend's states reduced to per-sample projected
features (one-qubit reduced density matrices as Bloch vectors, :mod:`qdist.kernel.projected`),
with an RBF tile between them.

Its "states" are the ``(n, 3q)`` features, so the tile workers' block cache, the store (which
keeps them per sample in ``proj_train``/``proj_test``) and the model all handle them like any
states; its :meth:`tile` is ``exp(-gamma ||f - f'||^2)``. The quantum work is per sample; every
tile, and every other ``gamma``, is classical.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qdist.kernel.projected import one_qubit_rdms, projected_features, projected_kernel_tile

__all__ = ["ProjectedBackend"]


class ProjectedBackend:
    """Wraps ``inner`` (a state backend) into per-sample projected features and an RBF tile."""

    def __init__(self, inner: Any, gamma: float) -> None:
        self.inner, self.gamma = inner, gamma
        self.name = f"projected({inner.name})"

    def states(self, x: np.ndarray) -> np.ndarray:
        """``(n, 3q)`` projected features of the samples' states."""
        states = self.inner.states(x)
        if hasattr(states, "bond_dims"):  # matrix-product states
            from qdist.backends.mps import mps_one_qubit_rdms

            return projected_features(mps_one_qubit_rdms(states))
        return projected_features(one_qubit_rdms(states))

    def tile(self, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        return projected_kernel_tile(a, b, self.gamma)
