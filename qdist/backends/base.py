"""The backend contract: circuit parameters in, one state per sample out."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["StateBackend"]


@runtime_checkable
class StateBackend(Protocol):
    """Computes ``|phi(x)> = U(x)|0...0>`` for a block of samples.

    ``states(x)`` takes ``x`` of shape ``(n, p)`` (p = circuit parameters) and returns a
    ``(n, 2**q)`` complex array (complex128, or complex64 in single precision), one normalised
    state per row, in Qiskit's little-endian basis order: a NumPy array, or a CuPy array for a
    GPU backend, whose tiles are then multiplied on the device. Backends are built inside the
    worker that uses them and hold no global state.
    """

    name: str

    def states(self, x: np.ndarray) -> Any: ...
