"""Batched statevector engine: one feature-map circuit, a whole block of samples at once.

:class:`BatchedEngine` computes ``|phi(x_i)> = U(x_i)|0...0>`` for every row ``x_i`` of ``x``
(shape ``(n, p)``, columns in ``circuit.parameters`` order) and returns ``(n, 2**q)`` states in
Qiskit's little-endian order (qubit ``k`` is bit ``k`` of the basis index). Every gate acts on
all samples of a chunk at once: the sample axis is the batch axis.

Compilation, once per circuit:

1. Lowering. Each instruction becomes primitives (:class:`~qdist.kernel.phase_poly.Primitive`):
   a diagonal term ``exp(i theta(x) s(b_Q))`` (rz, p, u1, cp, crz, rzz, u(0, phi, lam), the
   global phase, any bound gate with a diagonal matrix), a basis permutation (any bound monomial
   matrix ``P_sigma D``: x, y, cx, cz, swap, ccx, ...), or a dense ``2**k x 2**k`` matrix, shared
   or one per sample (h, sx, rx, ry, u, u2, r, any other bound gate). Other gates are replaced by
   their ``definition``, recursively; measure, reset and opaque gates raise ``BackendError``.
   Angles are compiled to vectorised functions (:mod:`qdist.kernel.angles`).
2. Fusion. Runs of bound one-qubit gates on a qubit are multiplied out (H H vanishes).
3. Scheduling by commutation: a primitive joins the first stage of its kind (phase block or
   dense layer) after the last stage that touches its qubits. A phase block becomes ``P D``
   (:class:`~qdist.kernel.phase_poly.PhaseBlock`); one-qubit gates in a dense layer are fused into
   one ``2 x 2`` matrix per sample.

Evaluation keeps a chunk of m samples as ``psi[b, i]`` (basis index first), so every gate works
on contiguous runs of at least m amplitudes. Leading stages that act on single qubits are applied
to per-qubit vectors and the state is materialised by outer products. A shared Hadamard costs
three in-place additions (its ``1/sqrt 2`` goes into a scalar applied once at the end).

Memory: the output takes ``n * 2**q * itemsize`` bytes (:meth:`BatchedEngine.bytes_per_sample`:
16 per amplitude for complex128, 8 for complex64). Chunks hold at most ``chunk_bytes`` of state
(at least 16 samples) plus about three chunk-sized temporaries, and a phase block with
characters of weight >= 3 keeps a ``2**q x H`` float64 table. Phases are always computed in
float64, so complex64 differs from complex128 only by the rounding of the state updates (below
1e-5 per amplitude for feature maps of practical depth).

The module is pure (numpy and ``qiskit.circuit``). Array work goes through ``xp`` (numpy by
default); any numpy-compatible module such as CuPy can be passed instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from qiskit.circuit import Gate, Parameter, ParameterExpression, QuantumCircuit
from qiskit.circuit.exceptions import CircuitError

from qdist.errors import BackendError, DataError
from qdist.kernel.angles import compile_angle
from qdist.kernel.phase_poly import PhaseBlock, Primitive

__all__ = ["BatchedEngine", "ENGINE_BASIS"]

#: A basis every circuit can be transpiled to before it reaches the engine.
ENGINE_BASIS = ("h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "rx", "ry", "rz", "p",
                "u", "u1", "u2", "u3", "r", "cx", "cy", "cz", "cp", "crz", "rzz", "swap", "ccx")
_IGNORED = {"barrier", "id", "delay"}


def _u(xp: ModuleType, t: Any, f: Any, lam: Any) -> Any:
    """``U(t, f, lam) = [[c, -e^{i lam} s], [e^{i f} s, e^{i (f + lam)} c]]``, c, s of t/2."""
    t, f, lam = (xp.asarray(v) for v in (t, f, lam))  # CuPy ufuncs want arrays, not floats
    c, s = xp.cos(t / 2), xp.sin(t / 2)
    return [[c, -xp.exp(1j * lam) * s], [xp.exp(1j * f) * s, xp.exp(1j * (f + lam)) * c]]


_DENSE_RULES: dict[str, Callable[..., Any]] = {
    "rx": lambda xp, t: _u(xp, t, -math.pi / 2, math.pi / 2),
    "ry": lambda xp, t: _u(xp, t, 0.0, 0.0),
    "u": _u, "u3": _u,
    "u2": lambda xp, f, lam: _u(xp, math.pi / 2, f, lam),
    "r": lambda xp, t, f: _u(xp, t, f - math.pi / 2, math.pi / 2 - f),
}
_DIAG_RULES: dict[str, tuple[float, ...]] = {
    "rz": (-0.5, 0.5), "p": (0.0, 1.0), "u1": (0.0, 1.0), "cp": (0.0, 0.0, 0.0, 1.0),
    "cu1": (0.0, 0.0, 0.0, 1.0), "crz": (0.0, -0.5, 0.0, 0.5), "rzz": (-0.5, 0.5, 0.5, -0.5)}


def _from_matrix(mat: np.ndarray, qubits: tuple[int, ...]) -> list[Primitive]:
    """Lower a bound matrix: monomial ``P_sigma D`` (diag + perm) when it is one, else dense."""
    nz = np.abs(mat) > 1e-12
    if not (nz.sum(axis=0) == 1).all() or not np.allclose(np.abs(mat[nz]), 1.0, atol=1e-12):
        return [Primitive("dense", qubits, factors=[mat.astype(np.complex128)])]
    sigma = nz.argmax(axis=0)
    ops = [Primitive("diag", qubits, table=np.angle(mat[sigma, np.arange(len(sigma))]))]
    if np.abs(ops[0].table).max() < 1e-15:
        ops = []
    if (sigma != np.arange(len(sigma))).any():
        ops.append(Primitive("perm", qubits, table=sigma))
    return ops


def _bound_1q(op: Primitive) -> bool:
    return (op.kind == "dense" and len(op.qubits) == 1 and len(op.factors) == 1
            and isinstance(op.factors[0], np.ndarray))


@dataclass
class _Stage:
    kind: str
    qubits: set[int] = field(default_factory=set)
    ops: list[Primitive] = field(default_factory=list)
    block: PhaseBlock | None = None


class BatchedEngine:
    """States of a parameterised circuit for a whole block of samples (module docstring).

    Parameters
    ----------
    circuit : QuantumCircuit
        The feature map ``U(x)``; unitary instructions only.
    dtype : numpy dtype
        ``np.complex128`` (default) or ``np.complex64`` for the states.
    xp : module, optional
        A numpy-compatible array module; numpy if None.
    chunk_bytes : int
        Largest state chunk evaluated at once (bounds temporaries, keeps passes in cache).
    parameters : sequence of Parameter, optional
        Column order of ``x``; ``circuit.parameters`` if None.
    """

    def __init__(self, circuit: QuantumCircuit, dtype: Any = np.complex128,
                 xp: ModuleType | None = None, chunk_bytes: int = 1 << 23,
                 parameters: Sequence[Parameter] | None = None) -> None:
        self.xp = np if xp is None else xp
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.complex64, np.complex128):
            raise BackendError(f"dtype must be complex64 or complex128; got {self.dtype}.")
        if circuit.num_qubits < 1:
            raise BackendError("The batched engine needs a circuit with at least one qubit.")
        self.num_qubits = circuit.num_qubits
        params = list(circuit.parameters if parameters is None else parameters)
        self.num_parameters = len(params)
        self.chunk_bytes = chunk_bytes
        self._index = {p: k for k, p in enumerate(params)}
        self._phase: list[Primitive] = []
        ops: list[Primitive] = []
        self._lower(circuit, list(range(circuit.num_qubits)), ops)
        self._stages = self._schedule(self._fuse(ops))

    @staticmethod
    def bytes_per_sample(num_qubits: int, dtype: Any = np.complex128) -> int:
        """Bytes one output state takes: ``2**q * itemsize`` (16 per amplitude, complex128)."""
        return (1 << num_qubits) * np.dtype(dtype).itemsize

    def _lower(self, circuit: QuantumCircuit, wires: list[int], ops: list[Primitive]) -> None:
        """Append the primitives of ``circuit`` (its qubit j is ``wires[j]``) to ``ops``."""
        phase = compile_angle(circuit.global_phase, self._index)
        self._phase.append(Primitive("diag", (), phase, np.ones(1)))
        for inst in circuit.data:
            op, name = inst.operation, inst.operation.name
            qubits = tuple(wires[circuit.find_bit(q).index] for q in inst.qubits)
            if name in _IGNORED:
                continue
            if inst.clbits or not isinstance(op, Gate):
                raise BackendError(
                    f"The batched engine cannot simulate instruction {name!r} on qubits "
                    f"{qubits}: a feature map must be unitary. Remove measurements, resets and "
                    "control flow from the circuit, or use backend.kind 'aer'.")
            used = set().union(*(v.parameters for v in op.params
                                 if isinstance(v, ParameterExpression)))
            if not used <= self._index.keys():
                raise BackendError(f"Gate {name!r} on qubits {qubits} uses parameters "
                                   f"{sorted(p.name for p in used - self._index.keys())} that "
                                   "are not columns of x; bind them or pass `parameters`.")
            angles = [compile_angle(v, self._index) for v in op.params] if used else []
            if used and name in _DIAG_RULES:
                ops.append(Primitive("diag", qubits, angles[0], np.array(_DIAG_RULES[name])))
            elif used and name in ("u", "u3") and angles[0].const == 0:
                ops += [Primitive("diag", qubits, a, np.array([0.0, 1.0])) for a in angles[1:]]
            elif used and name in _DENSE_RULES:
                ops.append(Primitive("dense", qubits, factors=[(name, angles)]))
            elif not used and op.num_qubits <= 3 and (mat := self._bound_matrix(op)) is not None:
                ops += _from_matrix(mat, qubits)
            elif op.definition is not None:
                self._lower(op.definition, list(qubits), ops)
            else:
                raise BackendError(
                    f"The batched engine cannot simulate gate {name!r} on qubits {qubits}: it "
                    "has no matrix and no definition. Give the gate a definition, transpile "
                    f"the circuit to the basis {list(ENGINE_BASIS)}, or use backend.kind "
                    "'statevector'.")

    @staticmethod
    def _bound_matrix(op: Gate) -> np.ndarray | None:
        try:
            return np.asarray(op.to_matrix(), dtype=np.complex128)
        except (CircuitError, TypeError, ValueError):  # no matrix: lowered by definition
            return None

    @staticmethod
    def _fuse(ops: list[Primitive]) -> list[Primitive]:
        """Multiply consecutive bound one-qubit dense gates on each qubit, then re-lower."""
        out: list[Primitive] = []
        last: dict[int, int] = {}
        for op in ops:
            prev = out[last[op.qubits[0]]] if op.qubits and op.qubits[0] in last else None
            if _bound_1q(op) and prev is not None and _bound_1q(prev):
                prev.factors = [op.factors[0] @ prev.factors[0]]
                continue
            out.append(op)
            last.update((k, len(out) - 1) for k in op.qubits)
        return [new for op in out
                for new in (_from_matrix(op.factors[0], op.qubits) if _bound_1q(op) else [op])]

    def _schedule(self, ops: list[Primitive]) -> list[_Stage]:
        """Group primitives into phase blocks and dense layers by commutation."""
        stages: list[_Stage] = []
        for op in ops:
            kind, touch = ("dense" if op.kind == "dense" else "block"), set(op.qubits)
            last = max((j for j, st in enumerate(stages) if st.qubits & touch), default=-1)
            j = next((j for j in range(max(last, 0), len(stages)) if stages[j].kind == kind),
                     None)
            if j is None:
                stages.append(_Stage(kind))
                j = len(stages) - 1
            stage = stages[j]
            prior = next((o for o in reversed(stage.ops) if set(o.qubits) & touch), None)
            if (kind == "dense" and j == last and len(op.qubits) == 1 and prior is not None
                    and prior.qubits == op.qubits):
                prior.factors += op.factors
            else:
                stage.ops.append(op)
            stage.qubits |= touch
        blocks = [st for st in stages if st.kind == "block"]
        if not blocks:
            stages.append(_Stage("block"))
            blocks = stages[-1:]
        blocks[-1].ops += self._phase
        for stage in stages:
            if stage.kind == "block":
                stage.block = PhaseBlock(self.num_qubits, stage.ops, self.xp)
                continue
            for op in stage.ops:
                folded: list[Any] = []
                for f in op.factors:
                    if folded and isinstance(f, np.ndarray) and isinstance(folded[-1], np.ndarray):
                        folded[-1] = f @ folded[-1]
                    else:
                        folded.append(f)
                op.factors = [self.xp.asarray(f, dtype=self.dtype) if isinstance(f, np.ndarray)
                              else f for f in folded]
        return stages

    def states(self, x: Any) -> Any:
        """States ``U(x_i)|0...0>`` for every row of ``x``.

        Parameters
        ----------
        x : array of shape (n, p)
            One row per sample, one column per circuit parameter (``circuit.parameters`` order).

        Returns
        -------
        array of shape (n, 2**q)
            One normalised state per row, little-endian basis order, in ``dtype``.

        Raises
        ------
        DataError
            If ``x`` has the wrong shape or contains NaN.
        """
        xp = self.xp
        x = xp.asarray(x, dtype=xp.float64)
        if x.ndim != 2 or x.shape[1] != self.num_parameters:
            raise DataError(f"x must have shape (n, {self.num_parameters}) (one column per "
                            f"circuit parameter); got shape {tuple(x.shape)}.")
        if bool(xp.isnan(x).any()):
            raise DataError("x contains NaN; clean or impute the features before encoding.")
        dim = 1 << self.num_qubits
        out = xp.empty((x.shape[0], dim), dtype=self.dtype)
        step = max(16, self.chunk_bytes // (dim * self.dtype.itemsize))
        for start in range(0, x.shape[0], step):
            psi, scale = self._run(x[start:start + step].T)
            xp.multiply(psi.T, scale, out=out[start:start + step])
        return out

    def _run(self, cols: Any) -> tuple[Any, complex]:
        """``(psi, scale)`` with ``scale * psi.T`` the states of the chunk ``cols`` (p, m)."""
        xp, m, q = self.xp, cols.shape[1], self.num_qubits
        vecs: list[Any] = [xp.asarray([[1.0], [0.0]], dtype=xp.complex128)] * q
        first = 0
        for stage in self._stages:
            if any(len(op.qubits) > 1 or op.kind == "perm" for op in stage.ops):
                break
            first += 1
            for op in stage.ops:
                k = op.qubits[0] if op.qubits else 0
                if op.kind == "dense":
                    mat = self._matrix(op, cols)
                    vecs[k] = (xp.einsum("ij,jm->im", mat, vecs[k]) if mat.ndim == 2 else
                               xp.einsum("mij,jm->im", mat, vecs[k] + xp.zeros((1, m))))
                else:
                    theta = 1.0 if op.angle is None else op.angle.values(xp, cols)
                    vecs[k] = vecs[k] * xp.exp(1j * xp.asarray(op.table)[:, None] * theta)
        state = vecs[0] + xp.zeros((1, m), dtype=self.dtype)
        for k in range(1, q):
            state = (vecs[k][:, None, :] * state[None, :, :]).reshape(-1, m)
        psi, scale = state.astype(self.dtype, copy=False), 1.0 + 0j
        for stage in self._stages[first:]:
            if stage.block is not None:
                psi = stage.block.apply(xp, psi, cols)
                continue
            for op in stage.ops:
                scale *= self._apply(psi, op.qubits, self._matrix(op, cols))
        return psi, scale

    def _matrix(self, op: Primitive, cols: Any) -> Any:
        """The op's matrix: shared ``(d, d)`` or one per sample ``(m, d, d)``."""
        xp, out = self.xp, None
        for f in op.factors:
            if isinstance(f, tuple):
                rows = _DENSE_RULES[f[0]](xp, *(a.values(xp, cols) for a in f[1]))
                mat = xp.empty((cols.shape[1], 2, 2), dtype=self.dtype)
                for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)):
                    mat[:, i, j] = rows[i][j]
                f = mat
            out = f if out is None else xp.matmul(f, out)
        return out

    def _apply(self, psi: Any, qubits: tuple[int, ...], mat: Any) -> complex:
        """``psi <- (mat on qubits) psi`` in place, up to the scalar factor it returns."""
        m, d = psi.shape[1], 1 << len(qubits)
        order = sorted(range(len(qubits)), key=lambda j: -qubits[j])
        shape, top = [], self.num_qubits
        for j in order:
            shape += [1 << (top - 1 - qubits[j]), 2]
            top = qubits[j]
        view = psi.reshape([*shape, 1 << top, m])

        def part(local: int) -> Any:
            index: list[Any] = [slice(None)] * view.ndim
            for pos, j in enumerate(order):
                index[1 + 2 * pos] = (local >> j) & 1
            return view[tuple(index)]

        if mat.ndim == 3:
            mat = mat.transpose(1, 2, 0)
        if d == 2:
            a, b = part(0), part(1)
            if mat.ndim == 2 and bool(mat[0, 0] == mat[0, 1] == mat[1, 0] == -mat[1, 1]):
                a += b
                b *= -2
                b += a
                return complex(mat[0, 0])
            t = a * mat[1, 0]
            a *= mat[0, 0]
            a += b * mat[0, 1]
            b *= mat[1, 1]
            b += t
            return 1.0
        old = [part(c).copy() for c in range(d)]
        for r in range(d):
            dst = part(r)
            dst[...] = mat[r, 0] * old[0]
            for c in range(1, d):
                dst += mat[r, c] * old[c]
        return 1.0
