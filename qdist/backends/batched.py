"""Batched backend: every state of a block from one vectorised pass of :class:`BatchedEngine`.

The engine (:mod:`qdist.kernel.engine`) lowers standard gates itself and replaces any other gate
by its definition. A circuit it still cannot lower is transpiled here to
:data:`~qdist.kernel.engine.ENGINE_BASIS` (optimisation level 0, so the circuit and its
parameters stay as written) and compiled again; if that fails too, the engine's error stands.
"""

from __future__ import annotations

import logging
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit

from qdist.errors import BackendError
from qdist.kernel.engine import ENGINE_BASIS, BatchedEngine

__all__ = ["BatchedBackend"]

log = logging.getLogger(__name__)


def _array_module(device: str) -> ModuleType:
    if device == "CPU":
        return np
    if device == "GPU":
        try:
            import cupy
        except ImportError as exc:
            raise BackendError(
                "backend.kind 'batched' with device: GPU needs CuPy; pip install cupy-cuda12x "
                "on a GPU node, or use device: CPU.") from exc
        return cupy
    raise BackendError(f"backend.device must be 'CPU' or 'GPU' for backend.kind 'batched'; "
                       f"got {device!r}.")


class BatchedBackend:
    """States ``U(x_i)|0...0>`` for a block of samples with the batched numpy engine.

    Parameters
    ----------
    circuit : QuantumCircuit
        The feature map; its parameters, in ``circuit.parameters`` order, are the columns of x.
    device : {"CPU", "GPU"}
        ``"GPU"`` runs the same engine on CuPy arrays (states stay on the device).
    dtype : numpy dtype
        ``np.complex128`` (default, exact to ~1e-14) or ``np.complex64`` (half the memory,
        amplitudes within ~1e-6 for practical feature maps).
    chunk_bytes : int
        Largest state chunk the engine evaluates at once.
    """

    name = "batched"

    def __init__(self, circuit: QuantumCircuit, device: str = "CPU",
                 dtype: Any = np.complex128, chunk_bytes: int = 1 << 23) -> None:
        self._xp = _array_module(device)
        self.num_qubits = circuit.num_qubits
        build = partial(BatchedEngine, dtype=dtype, xp=self._xp, chunk_bytes=chunk_bytes,
                        parameters=list(circuit.parameters))
        try:
            self.engine = build(circuit)
        except BackendError as exc:
            from qiskit import transpile
            from qiskit.exceptions import QiskitError

            try:
                lowered = transpile(circuit, basis_gates=list(ENGINE_BASIS),
                                    optimization_level=0)
            except QiskitError:  # not translatable either: the engine's message says why
                raise exc from None
            log.info("Circuit %s transpiled to the engine basis: %s", circuit.name, exc)
            self.engine = build(lowered)

    def states(self, x: np.ndarray) -> Any:
        """``(n, 2**q)`` states for ``x`` of shape ``(n, p)``; see the StateBackend protocol.

        On ``GPU`` the states stay on the device (a CuPy array): tiles are then multiplied there
        and only the finished ``t x t`` tile is copied back (:func:`qdist.kernel.tiles.fidelity_tile`).
        """
        return self.engine.states(x)
