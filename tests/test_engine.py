"""The batched statevector engine against ``qiskit.quantum_info.Statevector``, to 1e-10."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit.circuit import Gate, Parameter, ParameterVector, QuantumCircuit
from qiskit.circuit import library as lib
from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary
from qiskit.circuit.library import pauli_feature_map, z_feature_map, zz_feature_map
from qiskit.quantum_info import Statevector

from qdist.backends.base import StateBackend
from qdist.backends.batched import BatchedBackend
from qdist.errors import BackendError, DataError
from qdist.kernel import angles as angles_module
from qdist.kernel.engine import BatchedEngine

ATOL = 1e-10
#: complex64 states agree with complex128 to this bound per amplitude (phases stay float64).
ATOL_C64 = 1e-5


def oracle(circuit: QuantumCircuit, x: np.ndarray) -> np.ndarray:
    return np.array([Statevector(circuit.assign_parameters(row)).data for row in x])


def inputs(circuit: QuantumCircuit, n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-math.pi, math.pi, (n, circuit.num_parameters))


def _library_cases() -> list[tuple[str, QuantumCircuit]]:
    cases = []
    for q in range(1, 8):
        cases.append((f"z-q{q}-r2", z_feature_map(q, reps=2)))
        if q < 2:
            continue
        for ent in ("full", "linear", "reverse_linear", "circular", "pairwise"):
            if ent == "pairwise" and q < 3:
                continue
            cases.append((f"zz-q{q}-{ent}", zz_feature_map(q, reps=2, entanglement=ent)))
        cases.append((f"pauli-q{q}", pauli_feature_map(
            q, reps=2, entanglement="linear" if q % 2 else "full",
            paulis=["Z", "XY", "ZZ", "YZ"])))
    cases.append(("zz-q10-circular", zz_feature_map(10, reps=2, entanglement="circular")))
    cases.append(("pauli-q9", pauli_feature_map(9, reps=1, paulis=["Z", "XY", "ZZ", "YZ"])))
    cases.append(("zz-alpha", zz_feature_map(4, reps=1, alpha=0.7, entanglement="circular")))
    cases.append(("pauli-3body", pauli_feature_map(4, reps=1, paulis=["X", "ZZZ", "XYZ"])))
    with warnings.catch_warnings():  # the class form is deprecated in Qiskit 2.1, still seen
        warnings.simplefilter("ignore", DeprecationWarning)
        cases.append(("zz-class-form", lib.ZZFeatureMap(3, reps=2)))
    return cases


@pytest.mark.parametrize("circuit", [pytest.param(c, id=label) for label, c in _library_cases()])
def test_library_feature_maps_match_statevector(circuit: QuantumCircuit) -> None:
    x = inputs(circuit, n=6)
    got = BatchedEngine(circuit).states(x)
    assert got.shape == (6, 2**circuit.num_qubits) and got.dtype == np.complex128
    np.testing.assert_allclose(got, oracle(circuit, x), rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-12)


# --- random circuits over the supported gate set --------------------------------------------

FIXED = {"h": lib.HGate, "x": lib.XGate, "y": lib.YGate, "z": lib.ZGate, "s": lib.SGate,
         "sdg": lib.SdgGate, "t": lib.TGate, "tdg": lib.TdgGate, "sx": lib.SXGate,
         "sxdg": lib.SXdgGate, "id": lib.IGate, "cx": lib.CXGate, "cy": lib.CYGate,
         "cz": lib.CZGate, "ch": lib.CHGate, "swap": lib.SwapGate, "iswap": lib.iSwapGate,
         "ecr": lib.ECRGate, "ccx": lib.CCXGate, "cswap": lib.CSwapGate, "ccz": lib.CCZGate}
ROTATIONS = {"rx": (lib.RXGate, 1), "ry": (lib.RYGate, 1), "rz": (lib.RZGate, 1),
             "p": (lib.PhaseGate, 1), "u1": (lib.U1Gate, 1), "u2": (lib.U2Gate, 2),
             "u": (lib.UGate, 3), "u3": (lib.U3Gate, 3), "r": (lib.RGate, 2),
             "cp": (lib.CPhaseGate, 1), "crx": (lib.CRXGate, 1), "cry": (lib.CRYGate, 1),
             "crz": (lib.CRZGate, 1), "cu": (lib.CUGate, 4), "rzz": (lib.RZZGate, 1),
             "rxx": (lib.RXXGate, 1), "ryy": (lib.RYYGate, 1), "rzx": (lib.RZXGate, 1),
             "xx_plus_yy": (lib.XXPlusYYGate, 2), "global_phase": (lib.GlobalPhaseGate, 1)}
coef = st.floats(-2.0, 2.0, allow_nan=False).map(lambda v: round(v, 6))


@st.composite
def angles(draw: st.DrawFn, x: ParameterVector) -> object:
    """A fixed angle, or an affine, product or trigonometric expression of x."""
    i, j = draw(st.integers(0, len(x) - 1)), draw(st.integers(0, len(x) - 1))
    kind = draw(st.sampled_from(["const", "affine", "product", "trig", "square"]))
    a, b, c = draw(coef), draw(coef), draw(coef)
    if kind == "const":
        return a
    if kind == "affine":
        return a * x[i] + b
    if kind == "product":
        return c * (a - x[i]) * (b - x[j])
    if kind == "trig":
        return a * (b * x[i]).sin() + c * x[j].cos()
    return a * x[i] ** 2 - b


@st.composite
def random_circuits(draw: st.DrawFn) -> QuantumCircuit:
    q = draw(st.integers(1, 9))
    x = ParameterVector("x", draw(st.integers(1, 4)))
    qc = QuantumCircuit(q)
    names = sorted(FIXED) + sorted(ROTATIONS) + ["u0", "barrier"]
    for _ in range(draw(st.integers(1, 30))):
        name = draw(st.sampled_from(names))
        if name == "barrier":
            qc.barrier()
            continue
        if name == "u0":  # u(0, phi, lam) is diagonal: the engine treats it as a phase
            gate: Gate = lib.UGate(0.0, draw(angles(x)), draw(angles(x)))
        elif name in FIXED:
            gate = FIXED[name]()
        else:
            cls, count = ROTATIONS[name]
            gate = cls(*(draw(angles(x)) for _ in range(count)))
        if gate.num_qubits > q:
            continue
        wires = draw(st.permutations(range(q)))[: gate.num_qubits]
        qc.append(gate, list(wires))
    if draw(st.booleans()):
        qc.global_phase = draw(angles(x))
    return qc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuit=random_circuits(), seed=st.integers(0, 2**16), n=st.integers(1, 4))
def test_random_circuits_match_statevector(circuit: QuantumCircuit, seed: int, n: int) -> None:
    x = inputs(circuit, n=n, seed=seed)
    engine = BatchedEngine(circuit, chunk_bytes=1)  # chunks of 16 samples
    np.testing.assert_allclose(engine.states(x), oracle(circuit, x), rtol=0, atol=ATOL)


# --- precision, chunking, shapes ------------------------------------------------------------


def test_complex64_within_documented_bound() -> None:
    circuit = pauli_feature_map(6, reps=3, paulis=["Z", "XY", "ZZ", "YZ"])
    x = inputs(circuit, n=8)
    got = BatchedEngine(circuit, dtype=np.complex64).states(x)
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got, BatchedEngine(circuit).states(x), rtol=0, atol=ATOL_C64)


def test_chunking_never_changes_the_states() -> None:
    circuit = zz_feature_map(5, reps=2)
    x = inputs(circuit, n=53, seed=4)
    whole = BatchedEngine(circuit, chunk_bytes=1 << 30).states(x)
    chunked = BatchedEngine(circuit, chunk_bytes=1).states(x)  # 16 samples per chunk
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-13)


def test_sample_order_and_empty_block() -> None:
    circuit = zz_feature_map(3, reps=1)
    engine = BatchedEngine(circuit)
    x = inputs(circuit, n=7)
    np.testing.assert_allclose(engine.states(x[::-1]), engine.states(x)[::-1], atol=1e-14)
    assert engine.states(np.empty((0, 3))).shape == (0, 8)


def test_sizes_and_memory() -> None:
    engine = BatchedEngine(zz_feature_map(4))
    assert (engine.num_qubits, engine.num_parameters) == (4, 4)
    assert BatchedEngine.bytes_per_sample(10) == 16 * 1024
    assert BatchedEngine.bytes_per_sample(10, np.complex64) == 8 * 1024


@pytest.mark.parametrize("bad", [np.zeros((3, 2)), np.zeros(4), np.full((2, 4), np.nan)])
def test_bad_inputs_raise_data_error(bad: np.ndarray) -> None:
    with pytest.raises(DataError, match="x "):
        BatchedEngine(zz_feature_map(4)).states(bad)


@pytest.mark.parametrize(("q", "toffoli"), [(9, False), (11, False), (11, True)])
def test_wide_permutation_networks(q: int, toffoli: bool) -> None:
    """CX/X/SWAP (affine) or CCX (not) networks leaving a basis permutation on many qubits."""
    rng = np.random.default_rng(q)
    x = ParameterVector("x", 3)
    circuit = QuantumCircuit(q)
    circuit.h(range(q))
    for step in range(40):
        a, b, c = (int(v) for v in rng.choice(q, 3, replace=False))
        [circuit.cx, circuit.swap, circuit.cz][step % 3](a, b)
        circuit.x(c)
        circuit.p(x[step % 3] * x[(step + 1) % 3] + step, b)
        circuit.rzz(x[step % 3] - 0.5, a, c)
        if toffoli and step % 10 == 9:
            circuit.ccx(a, b, c)
            circuit.crz(x[0], c, a)
    xs = inputs(circuit, n=3)
    np.testing.assert_allclose(BatchedEngine(circuit).states(xs), oracle(circuit, xs), atol=ATOL)


def test_custom_gate_with_definition_is_inlined() -> None:
    x = ParameterVector("x", 2)
    inner = QuantumCircuit(2, name="block")
    inner.h(0)
    inner.crx(x[0] * x[1], 0, 1)
    inner.global_phase = x[0]
    circuit = QuantumCircuit(3)
    circuit.append(inner.to_gate(), [2, 0])
    circuit.append(inner.to_gate().control(1), [1, 0, 2])
    got = BatchedEngine(circuit).states(inputs(circuit))
    np.testing.assert_allclose(got, oracle(circuit, inputs(circuit)), atol=ATOL)


def test_unparsable_angle_falls_back_to_qiskit(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    def refuse(node: object) -> None:
        raise ValueError("refused")

    monkeypatch.setattr(angles_module, "_to_fn", refuse)
    circuit = zz_feature_map(3, reps=2)
    x = inputs(circuit)
    with caplog.at_level(logging.WARNING, logger="qdist.kernel.angles"):
        got = BatchedEngine(circuit).states(x)
    assert "sample by sample" in caplog.text
    np.testing.assert_allclose(got, oracle(circuit, x), atol=ATOL)


def test_complex_angle_raises_backend_error() -> None:
    x = ParameterVector("x", 1)
    circuit = QuantumCircuit(1)
    circuit.rx(x[0] * 1j, 0)
    with pytest.raises(BackendError, match="complex"):
        BatchedEngine(circuit).states(np.array([[0.3]]))


# --- unsupported instructions ---------------------------------------------------------------


def test_opaque_gate_raises_backend_error_naming_it() -> None:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.append(Gate("mystery", 2, []), [0, 1])
    for build in (BatchedEngine, BatchedBackend):
        with pytest.raises(BackendError, match=r"'mystery'.*(definition|transpile)"):
            build(circuit)


@pytest.mark.parametrize("instruction", ["measure", "reset"])
def test_non_unitary_instruction_raises_backend_error(instruction: str) -> None:
    circuit = zz_feature_map(2)
    if instruction == "measure":
        circuit.measure_all()
    else:
        circuit.reset(0)
    for build in (BatchedEngine, BatchedBackend):
        with pytest.raises(BackendError, match=f"'{instruction}'.*unitary"):
            build(circuit)


# --- the backend adapter --------------------------------------------------------------------


def test_backend_transpiles_a_gate_the_engine_cannot_lower() -> None:
    theta = Parameter("theta")
    equivalent = QuantumCircuit(1)
    equivalent.ry(theta, 0)
    equivalent.rz(2 * theta, 0)
    SessionEquivalenceLibrary.add_equivalence(Gate("qdist_test_rot", 1, [theta]), equivalent)
    x = ParameterVector("x", 2)
    circuit, reference = QuantumCircuit(2), QuantumCircuit(2)
    for qc in (circuit, reference):
        qc.h([0, 1])
    circuit.append(Gate("qdist_test_rot", 1, [x[0] * x[1]]), [1])
    reference.ry(x[0] * x[1], 1)
    reference.rz(2 * x[0] * x[1], 1)
    for qc in (circuit, reference):
        qc.cx(1, 0)
    with pytest.raises(BackendError, match="qdist_test_rot"):
        BatchedEngine(circuit)
    xs = inputs(circuit)
    np.testing.assert_allclose(BatchedBackend(circuit).states(xs), oracle(reference, xs),
                               atol=ATOL)


def test_backend_follows_the_protocol() -> None:
    circuit = zz_feature_map(3, reps=2, entanglement="linear")
    backend = BatchedBackend(circuit)
    assert isinstance(backend, StateBackend) and backend.name == "batched"
    x = inputs(circuit, n=4)
    np.testing.assert_allclose(backend.states(x), oracle(circuit, x), atol=ATOL)


def test_backend_rejects_unknown_device_and_missing_cupy() -> None:
    with pytest.raises(BackendError, match="device"):
        BatchedBackend(zz_feature_map(2), device="TPU")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(BackendError, match="CuPy"):
            BatchedBackend(zz_feature_map(2), device="GPU")


@pytest.mark.gpu
def test_gpu_engine_matches_cpu() -> None:
    cupy = pytest.importorskip("cupy", reason="needs CuPy and an NVIDIA GPU")
    circuit = pauli_feature_map(5, reps=2, paulis=["Z", "XY", "ZZ"])
    x = inputs(circuit, n=40)
    got = BatchedBackend(circuit, device="GPU").states(x)
    assert isinstance(got, cupy.ndarray)  # states stay on the device for the tile GEMMs
    np.testing.assert_allclose(cupy.asnumpy(got), BatchedEngine(circuit).states(x), atol=1e-12)
