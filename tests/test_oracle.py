"""Every kernel path against an independent oracle (qiskit-machine-learning), to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.circuit import ParameterVector, QuantumCircuit
from qiskit_machine_learning.kernels import FidelityStatevectorKernel

from qdist.api import compute_gram
from qdist.config import BackendSpec, FeatureMapSpec
from qdist.kernel.feature_maps import build_feature_map, circuit_from_qpy, circuit_to_qpy

FEATURE_MAPS = [
    FeatureMapSpec(kind="zz", qubits=4, reps=2, entanglement="linear"),
    FeatureMapSpec(kind="zz", qubits=3, reps=1, entanglement="full", alpha=1.3),
    FeatureMapSpec(kind="z", qubits=5, reps=3),
    FeatureMapSpec(kind="pauli", qubits=4, reps=2, paulis=("Z", "XY", "ZZ"),
                   entanglement="circular"),
]
BACKENDS = [BackendSpec(kind="batched"), BackendSpec(kind="statevector"), BackendSpec(kind="aer")]


def _custom_circuit(q: int) -> QuantumCircuit:
    """A feature map written by hand from standard gates, not one of the built-ins."""
    x = ParameterVector("x", q)
    qc = QuantumCircuit(q)
    for k in range(q):
        qc.h(k)
        qc.ry(x[k], k)
    for k in range(q - 1):
        qc.cx(k, k + 1)
        qc.rz(x[k] * x[k + 1], k + 1)
        qc.crx(0.7 * x[k], k + 1, k)
    qc.rxx(x[0] - x[q - 1], 0, q - 1)
    qc.sx(0)
    qc.u(x[1], 0.3, x[2], 1)
    return qc


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.kind)
@pytest.mark.parametrize("spec", FEATURE_MAPS, ids=lambda s: f"{s.kind}-{s.qubits}")
def test_built_in_maps_match_oracle(spec, backend):
    rng = np.random.default_rng(spec.qubits)
    x = rng.uniform(0, np.pi, size=(23, spec.qubits))
    y = rng.uniform(0, np.pi, size=(9, spec.qubits))
    circuit = build_feature_map(spec)
    oracle = FidelityStatevectorKernel(feature_map=circuit)
    np.testing.assert_allclose(compute_gram(x, feature_map=spec, backend=backend, tile_size=7),
                               oracle.evaluate(x), atol=1e-10, rtol=0)
    np.testing.assert_allclose(compute_gram(y, x, feature_map=spec, backend=backend, tile_size=4),
                               oracle.evaluate(y, x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.kind)
def test_custom_circuit_matches_oracle(backend):
    circuit = _custom_circuit(4)
    x = np.random.default_rng(9).normal(size=(17, 4))
    got = compute_gram(x, feature_map=circuit, backend=backend, tile_size=5)
    want = FidelityStatevectorKernel(feature_map=circuit).evaluate(x)
    np.testing.assert_allclose(got, want, atol=1e-10, rtol=0)


def test_qpy_round_trip_preserves_the_kernel():
    spec = FEATURE_MAPS[3]
    circuit = build_feature_map(spec)
    again = circuit_from_qpy(circuit_to_qpy(circuit))
    x = np.random.default_rng(2).uniform(0, 2, size=(6, spec.qubits))
    np.testing.assert_allclose(FidelityStatevectorKernel(feature_map=again).evaluate(x),
                               compute_gram(x, feature_map=spec), atol=1e-10)


@pytest.mark.parametrize("spec", FEATURE_MAPS, ids=lambda s: f"{s.kind}-{s.qubits}")
def test_single_precision_within_documented_bound(spec):
    x = np.random.default_rng(4).uniform(0, np.pi, size=(30, spec.qubits))
    single = compute_gram(x, feature_map=spec, backend=BackendSpec(precision="single"))
    double = compute_gram(x, feature_map=spec, backend=BackendSpec(precision="double"))
    assert np.abs(single - double).max() < 1e-5  # the bound stated in qdist.kernel.tiles
