"""Reference backend: ``qiskit.quantum_info.Statevector`` of the bound circuit, one sample at a time."""

from __future__ import annotations

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import Statevector

__all__ = ["QiskitStatevectorBackend"]


class QiskitStatevectorBackend:
    """Exact states from Qiskit's own simulator of a bound circuit (slow, simple, the oracle's twin)."""

    name = "statevector"

    def __init__(self, circuit: QuantumCircuit) -> None:
        self.circuit = circuit

    def states(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        out = np.empty((x.shape[0], 2**self.circuit.num_qubits), dtype=np.complex128)
        for i, row in enumerate(x):
            out[i] = Statevector(self.circuit.assign_parameters(row)).data
        return out
