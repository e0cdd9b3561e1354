"""Feature-map circuits ``U(x)`` built from a :class:`~qdist.config.FeatureMapSpec`.

The circuit's parameters, in ``circuit.parameters`` order, are the sample's circuit parameters
``x`` (one per qubit). Bandwidth scaling is not in the circuit: callers pass ``bandwidth * angle``
so the stored ``x_train`` binds to the stored circuit with nothing else to know.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import math
from collections.abc import Mapping

import numpy as np
from qiskit import qasm3, qpy
from qiskit.circuit import ParameterVector, QuantumCircuit
from qiskit.circuit.library import pauli_feature_map, z_feature_map, zz_feature_map

from qdist.config import FeatureMapSpec, FusionSpec

__all__ = ["build_feature_map", "build_subregister_map", "kernel_circuits", "circuit_to_qpy",
           "circuit_from_qpy", "circuit_fingerprint"]


def build_feature_map(spec: FeatureMapSpec) -> QuantumCircuit:
    """The feature-map circuit for ``spec``, decomposed to standard gates.

    On a register too small for a map's interaction terms (a one-qubit block under fusion), the
    terms that do not fit are left out: ``zz`` on one qubit is the ``z`` map, and ``pauli`` keeps
    the strings no longer than the register (the ``z`` map when none is left).
    """
    paulis = [p for p in spec.paulis if len(p) <= spec.qubits]
    if (spec.kind == "zz" and spec.qubits == 1) or (spec.kind == "pauli" and not paulis):
        qc = z_feature_map(spec.qubits, reps=spec.reps, alpha=spec.alpha)
    elif spec.kind == "zz":
        qc = zz_feature_map(spec.qubits, reps=spec.reps, entanglement=spec.entanglement,
                            alpha=spec.alpha)
    elif spec.kind == "z":
        qc = z_feature_map(spec.qubits, reps=spec.reps, alpha=spec.alpha)
    else:
        qc = pauli_feature_map(spec.qubits, reps=spec.reps, entanglement=spec.entanglement,
                               alpha=spec.alpha, paulis=paulis)
    qc.name = f"{spec.kind}_feature_map"
    return qc


def build_subregister_map(spec: FeatureMapSpec, parts: Mapping[str, slice],
                          cross_layers: int) -> QuantumCircuit:
    """Fusion (b): each block's feature map on its own qubits, with cross-block interactions.

    The circuit is ``spec.reps`` repetitions of: one encoding layer of ``spec.kind`` per block on
    that block's qubits (``parts``: block -> its slice of the parameters, which is its slice of
    the qubits), then, in the first ``cross_layers`` repetitions, ZZ interactions
    ``exp(-i alpha (pi - x_i)(pi - x_j) Z_i Z_j / 2)`` between qubit ``k`` of each block and qubit
    ``k`` of the next. Without cross layers the state is a product over blocks, so the kernel is
    the product of the blocks' kernels.
    """
    q = max(sl.stop for sl in parts.values())
    x = ParameterVector("x", q)
    qc = QuantumCircuit(q, name=f"{spec.kind}_subregister_map")
    spans = sorted(parts.values(), key=lambda sl: sl.start)
    for rep in range(spec.reps):
        for sl in spans:
            layer = build_feature_map(dataclasses.replace(spec, qubits=sl.stop - sl.start, reps=1))
            bound = layer.assign_parameters(dict(zip(layer.parameters, x[sl], strict=True)))
            qc.compose(bound, qubits=list(range(sl.start, sl.stop)), inplace=True)
        if rep < cross_layers:
            for a, b in itertools.pairwise(spans):
                for k in range(min(a.stop - a.start, b.stop - b.start)):
                    i, j = a.start + k, b.start + k
                    qc.cx(i, j)
                    qc.p(spec.alpha * (math.pi - x[i]) * (math.pi - x[j]), j)
                    qc.cx(i, j)
    return qc


def kernel_circuits(spec: FeatureMapSpec, fusion: FusionSpec,
                    parts: Mapping[str, slice]) -> list[tuple[str, QuantumCircuit, slice]]:
    """The run's kernels as ``(name, circuit, parameter columns)``: one for ``concat`` and
    ``subregister`` (named ``all``), one per block for ``multiple_kernel``."""
    q = spec.qubits
    if fusion.mode == "multiple_kernel":
        return [(name, build_feature_map(dataclasses.replace(spec, qubits=sl.stop - sl.start)), sl)
                for name, sl in parts.items()]
    if fusion.mode == "subregister":
        return [("all", build_subregister_map(spec, parts, fusion.cross_layers), slice(0, q))]
    return [("all", build_feature_map(spec), slice(0, q))]


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
