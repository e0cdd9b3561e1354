"""The MPS backend against ``qiskit.quantum_info.Statevector``: exact without truncation, within
the recorded bound with it."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.circuit import ParameterVector, QuantumCircuit
from qiskit.circuit.library import zz_feature_map
from qiskit.quantum_info import Statevector, partial_trace

from qdist.backends.mps import (
    MpsBackend,
    fidelity_error_bound,
    mps_fidelity_tile,
    mps_one_qubit_rdms,
    mps_overlaps,
)
from qdist.errors import BackendError, DataError

ATOL = 1e-10


def oracle(circuit: QuantumCircuit, x: np.ndarray) -> np.ndarray:
    return np.array([Statevector(circuit.assign_parameters(row)).data for row in x])


def random_circuit(q: int, depth: int, seed: int) -> QuantumCircuit:
    """Random one- and two-qubit gates (neighbours, reversed and distant pairs), angles affine
    or quadratic in random inputs, and a parameter-dependent global phase."""
    rng = np.random.default_rng(seed)
    x = ParameterVector("x", q)
    qc = QuantumCircuit(q)
    one = ["h", "sx", "t", "rx", "ry", "rz", "u"]
    two = ["cx", "cz", "rxx", "ryy", "rzz", "crx", "cry", "cp", "iswap", "rzx"]
    for _ in range(depth):
        k = int(rng.integers(q))
        a, b = (float(v) for v in rng.normal(size=2))
        angle = a * x[k] + b * x[(k + 1) % q] * x[k]
        name = str(rng.choice(one))
        if name in ("h", "sx", "t"):
            getattr(qc, name)(k)
        elif name == "u":
            qc.u(angle, 0.3 * x[k], b, k)
        else:
            getattr(qc, name)(angle, k)
        i, j = rng.choice(q, size=2, replace=False)
        if rng.random() < 0.7:  # mostly neighbours, in either order
            i = min(i, q - 2)
            i, j = (i, i + 1) if rng.random() < 0.5 else (i + 1, i)
        name = str(rng.choice(two))
        if name in ("cx", "cz", "iswap"):
            getattr(qc, name)(int(i), int(j))
        else:
            getattr(qc, name)(angle, int(i), int(j))
    qc.global_phase = 0.5 * x[0]
    return qc


CIRCUITS = [
    ("zz-linear-6", zz_feature_map(6, reps=2, entanglement="linear")),
    ("zz-full-5", zz_feature_map(5, reps=2, entanglement="full")),
    ("zz-circular-4", zz_feature_map(4, reps=3, entanglement="circular")),
    ("random-7", random_circuit(7, 40, seed=1)),
    ("random-10", random_circuit(10, 30, seed=2)),
]


@pytest.mark.parametrize(("name", "circuit"), CIRCUITS, ids=[c[0] for c in CIRCUITS])
def test_exact_states_and_overlaps_match_statevector(name, circuit):
    rng = np.random.default_rng(3)
    x = rng.uniform(-np.pi, np.pi, (9, circuit.num_parameters))
    y = rng.uniform(-np.pi, np.pi, (4, circuit.num_parameters))
    backend = MpsBackend(circuit, max_bond=1024, cutoff=0.0)
    sx, sy = backend.states(x), backend.states(y)
    want_x, want_y = oracle(circuit, x), oracle(circuit, y)
    assert np.all(sx.truncation_error == 0.0) and np.all(sx.distance_bound == 0.0)
    np.testing.assert_allclose(sx.to_statevector(), want_x, atol=ATOL, rtol=0)
    np.testing.assert_allclose(mps_overlaps(sx, sy), want_x.conj() @ want_y.T, atol=ATOL, rtol=0)
    np.testing.assert_allclose(mps_overlaps(sx), want_x.conj() @ want_x.T, atol=ATOL, rtol=0)
    np.testing.assert_allclose(mps_fidelity_tile(sx, sy), np.abs(want_x.conj() @ want_y.T) ** 2,
                               atol=ATOL, rtol=0)


def test_default_cutoff_stays_within_its_recorded_bound():
    circuit = random_circuit(8, 50, seed=5)
    x = np.random.default_rng(4).uniform(-np.pi, np.pi, (6, circuit.num_parameters))
    states = MpsBackend(circuit).states(x)
    want = oracle(circuit, x)
    err = np.abs(mps_fidelity_tile(states) - np.abs(want.conj() @ want.T) ** 2)
    assert np.all(err <= fidelity_error_bound(states) + ATOL)
    assert np.all(err <= fidelity_error_bound(states, tile=mps_fidelity_tile(states)) + ATOL)
    assert states.distance_bound.max() < 1e-6
    # every sample here dropped something (down to 1e-31): none may be recorded as exact
    assert np.all(states.truncation_error > 0) and np.all(states.distance_bound > 0)
    # sum_i f(eps_i) >= sqrt(sum_i eps_i), since f(eps) >= sqrt(eps)
    assert np.all(states.distance_bound >= np.sqrt(states.truncation_error) * (1 - 1e-12))


@pytest.mark.parametrize("max_bond", [4, 6])
def test_truncated_states_stay_within_the_recorded_error(max_bond):
    circuit = random_circuit(8, 60, seed=6)
    rng = np.random.default_rng(max_bond)
    # small angles: Schmidt spectra decay, so truncating at this bond loses a little, not all
    x = rng.uniform(-0.1, 0.1, (7, circuit.num_parameters))
    y = rng.uniform(-0.1, 0.1, (5, circuit.num_parameters))
    backend = MpsBackend(circuit, max_bond=max_bond, chunk=3)  # chunks of unequal bonds, padded
    sx, sy = backend.states(x), backend.states(y)
    assert sx.truncation_error.min() > 1e-8, "this circuit must need truncation at this bond"
    assert sx.bond_dims.max() == max_bond
    want_x, want_y = oracle(circuit, x), oracle(circuit, y)
    # the state moved by at most the recorded bound ...
    dist = np.linalg.norm(sx.to_statevector() - want_x, axis=1)
    assert np.all(dist <= sx.distance_bound + ATOL)
    # ... and the kernel by at most delta (2 |v| + delta), a bound that says something here
    tile = mps_fidelity_tile(sx, sy)
    err = np.abs(tile - np.abs(want_x.conj() @ want_y.T) ** 2)
    bound = fidelity_error_bound(sx, sy, tile)
    assert bound.max() < 1.0
    assert np.all(err <= bound + ATOL)
    assert np.all(err > ATOL), "truncation must show in the kernel for the check to mean much"
    # f(eps) = sqrt(2 - 2 sqrt(1 - eps)) is concave with f(0) = 0, so sum f(eps_i) >= f(sum eps_i)
    eps = np.minimum(sx.truncation_error, 1.0)
    assert np.all(sx.distance_bound >= np.sqrt(2 - 2 * np.sqrt(1 - eps)) - 1e-12)


def test_chunking_and_diagonal_tiles_change_nothing():
    circuit = zz_feature_map(6, reps=2)
    x = np.random.default_rng(8).uniform(0, np.pi, (11, 6))
    one = MpsBackend(circuit).states(x)
    many = MpsBackend(circuit, chunk=4).states(x)
    np.testing.assert_allclose(mps_overlaps(one), mps_overlaps(many), atol=ATOL, rtol=0)
    tile = mps_fidelity_tile(one)
    np.testing.assert_array_equal(tile, tile.T)
    np.testing.assert_allclose(np.diag(tile), 1.0, atol=ATOL)
    np.testing.assert_allclose(tile, mps_fidelity_tile(one, one), atol=ATOL, rtol=0)
    np.testing.assert_array_equal(MpsBackend.tile(one), tile)
    per_sample = sum(t.nbytes for t in one.tensors) / len(one)
    assert per_sample <= MpsBackend.bytes_per_sample(6, int(one.bond_dims.max()))
    # sub-tiles smaller than the sample count: exercised by a tiny cache budget
    np.testing.assert_allclose(mps_overlaps(one, cache_bytes=1), mps_overlaps(one), atol=ATOL)


def test_one_qubit_rdms_match_partial_trace():
    circuit = random_circuit(6, 30, seed=9)
    x = np.random.default_rng(10).uniform(-np.pi, np.pi, (4, circuit.num_parameters))
    rdms = mps_one_qubit_rdms(MpsBackend(circuit).states(x))
    for i, row in enumerate(x):
        sv = Statevector(circuit.assign_parameters(row))
        for k in range(6):
            want = partial_trace(sv, [j for j in range(6) if j != k]).data
            np.testing.assert_allclose(rdms[i, k], want, atol=ATOL, rtol=0)


def test_bad_inputs_are_refused():
    circuit = zz_feature_map(3, reps=1)
    backend = MpsBackend(circuit)
    with pytest.raises(DataError, match="shape"):
        backend.states(np.zeros((2, 4)))
    with pytest.raises(DataError, match="NaN"):
        backend.states(np.full((2, 3), np.nan))
    with pytest.raises(BackendError, match="max_bond"):
        MpsBackend(circuit, max_bond=0)
    measured = circuit.copy()
    measured.measure_all()
    with pytest.raises(BackendError, match="measure"):
        MpsBackend(measured)
