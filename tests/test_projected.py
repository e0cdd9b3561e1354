"""Projected quantum kernels against a direct computation from Statevector reduced states."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.circuit.library import pauli_feature_map, zz_feature_map
from qiskit.quantum_info import DensityMatrix, Pauli, Statevector, partial_trace

from qdist.backends.batched import BatchedBackend
from qdist.backends.mps import MpsBackend, mps_one_qubit_rdms
from qdist.errors import DataError
from qdist.kernel.projected import (
    bloch_vectors,
    one_qubit_rdms,
    projected_features,
    projected_kernel_tile,
    squared_distance_tile,
)

ATOL = 1e-10
CIRCUITS = [zz_feature_map(5, reps=2, entanglement="full"),
            pauli_feature_map(4, reps=2, paulis=["Y", "XZ"], entanglement="circular")]


def oracle_rdms(circuit, x):
    """rho_k(x) for every sample and qubit, straight from Qiskit."""
    q = circuit.num_qubits
    out = []
    for row in x:
        sv = Statevector(circuit.assign_parameters(row))
        out.append([partial_trace(sv, [j for j in range(q) if j != k]).data for k in range(q)])
    return np.array(out)


def oracle_kernel(ra, rb, gamma):
    """exp(-gamma sum_k ||rho_k - rho'_k||_F^2), pair by pair."""
    return np.array([[np.exp(-gamma * sum(np.linalg.norm(a[k] - b[k], "fro") ** 2
                                          for k in range(len(a)))) for b in rb] for a in ra])


@pytest.mark.parametrize("circuit", CIRCUITS, ids=lambda c: c.name)
def test_rdms_and_kernel_match_statevector(circuit):
    rng = np.random.default_rng(circuit.num_qubits)
    x = rng.uniform(0, np.pi, (8, circuit.num_parameters))
    y = rng.uniform(0, np.pi, (5, circuit.num_parameters))
    backend = BatchedBackend(circuit)
    rx, ry = one_qubit_rdms(backend.states(x)), one_qubit_rdms(backend.states(y))
    want_x, want_y = oracle_rdms(circuit, x), oracle_rdms(circuit, y)
    np.testing.assert_allclose(rx, want_x, atol=ATOL, rtol=0)
    fx, fy = projected_features(rx), projected_features(ry)
    for gamma in (0.1, 1.0, 3.0):  # one set of features serves every bandwidth
        np.testing.assert_allclose(projected_kernel_tile(fx, fy, gamma), oracle_kernel(
            want_x, want_y, gamma), atol=ATOL, rtol=0)
    diag = projected_kernel_tile(fx, gamma=0.7)
    np.testing.assert_array_equal(diag, diag.T)
    np.testing.assert_array_equal(np.diag(diag), 1.0)
    np.testing.assert_allclose(diag, oracle_kernel(want_x, want_x, 0.7), atol=ATOL, rtol=0)


def test_bloch_vectors_are_pauli_expectations():
    circuit = CIRCUITS[1]
    x = np.random.default_rng(2).uniform(0, np.pi, (3, circuit.num_parameters))
    bloch = bloch_vectors(one_qubit_rdms(BatchedBackend(circuit).states(x)))
    for i, row in enumerate(x):
        rho = DensityMatrix(Statevector(circuit.assign_parameters(row)))
        for k in range(circuit.num_qubits):
            want = [rho.expectation_value(Pauli(p), [k]).real for p in "XYZ"]
            np.testing.assert_allclose(bloch[i, k], want, atol=ATOL)
    # features from measured expectation values give the same kernel as from RDMs
    np.testing.assert_allclose(projected_features(bloch),
                               projected_features(one_qubit_rdms(BatchedBackend(circuit).states(x))),
                               atol=ATOL)


def test_distances_reused_across_bandwidths():
    f = np.random.default_rng(3).normal(size=(6, 9))
    d = squared_distance_tile(f)
    want = ((f[:, None, :] - f[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(d, want, atol=1e-12)
    np.testing.assert_allclose(projected_kernel_tile(f, gamma=0.3, distances=d),
                               projected_kernel_tile(f, gamma=0.3), atol=1e-15)


def test_mps_rdms_give_the_same_projected_kernel():
    circuit = zz_feature_map(6, reps=2)
    x = np.random.default_rng(4).uniform(0, np.pi, (7, 6))
    f_mps = projected_features(mps_one_qubit_rdms(MpsBackend(circuit).states(x)))
    f_sv = projected_features(oracle_rdms(circuit, x))
    np.testing.assert_allclose(projected_kernel_tile(f_mps, gamma=1.0),
                               projected_kernel_tile(f_sv, gamma=1.0), atol=ATOL, rtol=0)


def test_bad_inputs_are_refused():
    with pytest.raises(DataError, match="2\\*\\*q"):
        one_qubit_rdms(np.zeros((2, 6), dtype=complex))
    with pytest.raises(DataError, match="gamma"):
        projected_kernel_tile(np.zeros((2, 3)), gamma=0.0)
    with pytest.raises(DataError, match="Bloch"):
        projected_features(np.zeros((2, 3, 4)))
