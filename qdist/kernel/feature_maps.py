"""Feature-map circuits ``U(x)`` built from a :class:`~qdist.config.FeatureMapSpec`.

The circuit's parameters, in ``circuit.parameters`` order, are the sample's circuit parameters
``x`` (one per qubit). Bandwidth scaling is not in the circuit: callers pass ``bandwidth * angle``
so the stored ``x_train`` binds to the stored circuit with nothing else to know.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from qiskit import qasm3, qpy
from qiskit.circuit import QuantumCircuit
from qiskit.circuit.library import pauli_feature_map, z_feature_map, zz_feature_map

from qdist.config import FeatureMapSpec

__all__ = ["build_feature_map", "circuit_to_qpy", "circuit_from_qpy", "circuit_fingerprint"]


def build_feature_map(spec: FeatureMapSpec) -> QuantumCircuit:
    """The feature-map circuit for ``spec``, decomposed to standard gates."""
    if spec.kind == "zz":
        qc = zz_feature_map(spec.qubits, reps=spec.reps, entanglement=spec.entanglement,
                            alpha=spec.alpha)
    elif spec.kind == "z":
        qc = z_feature_map(spec.qubits, reps=spec.reps, alpha=spec.alpha)
    else:
        qc = pauli_feature_map(spec.qubits, reps=spec.reps, entanglement=spec.entanglement,
                               alpha=spec.alpha, paulis=list(spec.paulis))
    qc.name = f"{spec.kind}_feature_map"
    return qc


def circuit_to_qpy(circuit: QuantumCircuit) -> np.ndarray:
    """QPY bytes of ``circuit`` as a uint8 array (the store's ``feature_map_qpy``)."""
    buf = io.BytesIO()
    qpy.dump(circuit, buf)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8).copy()


def circuit_from_qpy(data: np.ndarray | bytes) -> QuantumCircuit:
    """Inverse of :func:`circuit_to_qpy`."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    circuits = qpy.load(io.BytesIO(raw))
    return circuits[0]


def circuit_fingerprint(circuit: QuantumCircuit) -> str:
    """SHA-256 of the circuit's OpenQASM 3 text.

    QPY bytes are not used: they embed the random UUIDs of the circuit's parameters, so the same
    feature map built twice would get two fingerprints.
    """
    return hashlib.sha256(qasm3.dumps(circuit).encode()).hexdigest()
