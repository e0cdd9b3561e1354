"""Batched statevector engine: one feature-map circuit, a whole block of samples at once.

The engine computes ``|phi(x_i)> = U(x_i)|0...0>`` for every row ``x_i`` of ``x`` (shape
``(n, p)``, columns in ``circuit.parameters`` order) and returns an ``(n, 2**q)`` array in
Qiskit's little-endian order (qubit ``k`` is bit ``k`` of the basis index). Every gate is applied
to all samples of a chunk at once; the sample axis is the batch axis.

Compilation (once per circuit) lowers every instruction to one of three primitives:

- a diagonal term ``|b> -> exp(i * theta(x) * s(b_Q)) |b>`` on qubits ``Q`` (rz, p, u1, cp, crz,
  rzz, u(0, phi, lam), the global phase, and any bound gate whose matrix is diagonal);
- a basis permutation ``|b> -> |sigma(b_Q)>`` (x, cx, swap, ccx, ... any bound monomial matrix
  ``M = P_sigma D``, whose phases ``D`` become a diagonal term);
- a dense ``2**k x 2**k`` matrix, shared or one per sample (h, sx, rx, ry, u, r, ...).

Gates outside these rules are replaced by their ``definition``, recursively. The primitives are
scheduled into stages by commutation (an op joins the first stage of its kind after the last
stage that touches its qubits). A *phase-polynomial block* of diagonal terms and permutations
``P_K D_K ... P_1 D_1`` is rewritten as ``P D`` with ``P = P_K ... P_1`` and
``D = diag(exp(i * phi(b)))``, ``phi(b) = sum_g theta_g(x) * s_g(pi_g(b))`` where ``pi_g`` is the
permutation accumulated before term ``g``. For a chunk of ``m`` samples this is one real matrix
product ``phi = [theta | 1] @ [S ; c]`` (``(m, G+1) @ (G+1, 2**q)``), one complex exponential
and at most one gather. Leading stages that act on single qubits only are applied to per-qubit
vectors, and the state is materialised by outer products.

Angles are ``ParameterExpression`` objects (products like ``2 (pi - x_0)(pi - x_1)`` included);
each is compiled once from its text into a vectorised numpy function of the parameter columns
and checked against Qiskit's own evaluation at random points before use.

Memory: the output takes ``n * 2**q * itemsize`` bytes (16 for complex128, 8 for complex64; see
:meth:`BatchedEngine.bytes_per_sample`). Work is done in sample chunks of at most
``chunk_bytes`` of state, with about three chunk-sized temporaries, plus ``(G+1) * 2**q * 8``
bytes per phase block for ``S``. Phases are always computed in float64, so complex64 output
differs from complex128 only by the rounding of the dense-gate passes (below 1e-5 per amplitude
for feature maps of practical depth).

The engine is pure (numpy and ``qiskit.circuit`` only). Array work goes through the ``xp`` module
(numpy by default); a numpy-compatible module such as CuPy can be passed instead.
"""

from __future__ import annotations

import ast
import logging
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from qiskit.circuit import Gate, Parameter, ParameterExpression, QuantumCircuit

from qdist.errors import BackendError, DataError

__all__ = ["BatchedEngine", "ENGINE_BASIS"]

log = logging.getLogger(__name__)

#: A basis every circuit can be transpiled to before it reaches the engine.
ENGINE_BASIS = ("h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "rx", "ry", "rz", "p",
                "u", "u1", "u2", "u3", "r", "cx", "cy", "cz", "cp", "crz", "rzz", "swap", "ccx")
_IGNORED = {"barrier", "id", "delay"}
_FUNCS = {"sin": "sin", "cos": "cos", "tan": "tan", "asin": "arcsin", "acos": "arccos",
          "atan": "arctan", "exp": "exp", "log": "log", "abs": "abs", "sign": "sign",
          "conj": "conj", "sqrt": "sqrt"}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow}
_IMAG = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)i\b")
Evaluator = Callable[[ModuleType, Any], Any]


def _to_fn(node: ast.AST) -> Evaluator:
    """A vectorised evaluator ``f(xp, cols)`` for one node of a parsed angle expression."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, complex):
        value = node.value
        return lambda xp, cols: value
    if isinstance(node, ast.Name) and re.fullmatch(r"qdist_arg_\d+", node.id):
        k = int(node.id.rsplit("_", 1)[1])
        return lambda xp, cols: cols[k]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        fn, lhs, rhs = _BINOPS[type(node.op)], _to_fn(node.left), _to_fn(node.right)
        return lambda xp, cols: fn(lhs(xp, cols), rhs(xp, cols))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        arg, sign = _to_fn(node.operand), -1 if isinstance(node.op, ast.USub) else 1
        return lambda xp, cols: sign * arg(xp, cols)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCS and len(node.args) == 1 and not node.keywords):
        name, arg = _FUNCS[node.func.id], _to_fn(node.args[0])
        return lambda xp, cols: getattr(xp, name)(arg(xp, cols))
    raise ValueError(f"unsupported syntax {ast.dump(node)}")


@dataclass(frozen=True)
class _Angle:
    """One gate angle ``theta(x)``: a constant, or a vectorised function of the columns of x."""

    key: str
    const: complex | None = None
    fn: Evaluator | None = None

    def values(self, xp: ModuleType, cols: Any) -> Any:
        """``theta`` for every sample (float64 array of length m), or a scalar if constant."""
        if self.const is not None:
            return self.const.real
        out = self.fn(xp, cols) if self.fn is not None else 0.0
        if xp.iscomplexobj(out):
            if float(xp.max(xp.abs(xp.imag(out)), initial=0.0)) > 1e-12:
                raise BackendError(f"Gate angle {self.key} is complex for some samples; the "
                                   "feature map must have real angles.")
            out = xp.real(out)
        return xp.broadcast_to(xp.asarray(out, dtype=xp.float64), (cols.shape[1],))


def _compile_angle(value: Any, index: dict[Parameter, int]) -> _Angle:
    """Compile one gate parameter; checked against ``bind_all`` at random points."""
    if not isinstance(value, ParameterExpression) or not value.parameters:
        return _Angle(key=repr(complex(value)), const=complex(value))
    params = sorted(value.parameters, key=index.__getitem__)
    try:
        renamed = value.subs({p: Parameter(f"qdist_arg_{index[p]}") for p in params})
        text = _IMAG.sub(r"\1j", str(renamed))
        fn = _to_fn(ast.parse(text, mode="eval").body)
        points = np.random.default_rng(7).uniform(-2.0, 2.0, (3, len(index))).T
        got = np.broadcast_to(fn(np, points), (3,))
        want = [complex(value.bind_all({p: float(points[index[p], j]) for p in params}))
                for j in range(3)]
        if not np.allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True):
            raise ValueError(f"compiled {text!r} gives {got}, Qiskit gives {want}")
    except (ValueError, SyntaxError, TypeError, ArithmeticError) as exc:
        log.warning("Angle %s evaluated sample by sample (%s)", value, exc)
        ordered = sorted(index, key=index.__getitem__)
        return _Angle(key=str(value), fn=lambda xp, cols: xp.asarray([complex(
            value.bind_all({p: float(cols[index[p], j]) for p in ordered}))
            for j in range(cols.shape[1])]))
    return _Angle(key=text, fn=fn)


def _u(xp: ModuleType, t: Any, f: Any, lam: Any) -> Any:
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


@dataclass
class _Op:
    """A lowered primitive: 'diag' (angle * s), 'perm' (sigma) or 'dense' (matrix factors)."""

    kind: str
    qubits: tuple[int, ...]
    angle: _Angle | None = None
    table: np.ndarray | None = None
    factors: list[tuple[str, list[_Angle]] | np.ndarray] = field(default_factory=list)


@dataclass
class _Stage:
    kind: str
    qubits: set[int] = field(default_factory=set)
    ops: list[_Op] = field(default_factory=list)
    angles: list[_Angle] = field(default_factory=list)
    matrix: Any = None
    inverse: Any = None


def _local(pi: np.ndarray, qubits: Sequence[int]) -> np.ndarray:
    """Local index ``sum_j bit(pi, qubits[j]) << j`` of every basis index in ``pi``."""
    out = np.zeros_like(pi)
    for j, qk in enumerate(qubits):
        out |= ((pi >> qk) & 1) << j
    return out


def _from_matrix(mat: np.ndarray, qubits: tuple[int, ...]) -> list[_Op]:
    """Lower a bound gate's matrix: diagonal, monomial (perm + phases) or dense."""
    nz = np.abs(mat) > 1e-12
    if not (nz.sum(axis=0) == 1).all() or not np.allclose(np.abs(mat[nz]), 1.0, atol=1e-12):
        return [_Op("dense", qubits, factors=[mat.astype(np.complex128)])]
    sigma = nz.argmax(axis=0)
    ops = [_Op("diag", qubits, table=np.angle(mat[sigma, np.arange(len(sigma))]))]
    if (sigma != np.arange(len(sigma))).any():
        ops.append(_Op("perm", qubits, table=sigma))
    return ops


class BatchedEngine:
    """States of a parameterised circuit for a whole block of samples; see the module docstring.

    Parameters
    ----------
    circuit : QuantumCircuit
        The feature map ``U(x)``; unitary instructions only (no measure, reset or control flow).
    dtype : numpy dtype
        ``np.complex128`` (default) or ``np.complex64``.
    xp : module, optional
        A numpy-compatible array module (numpy if None).
    chunk_bytes : int
        Largest state chunk processed at once (cache friendliness and bounded temporaries).
    parameters : sequence of Parameter, optional
        Column order of ``x``; defaults to ``circuit.parameters``.
    """

    def __init__(self, circuit: QuantumCircuit, dtype: Any = np.complex128,
                 xp: ModuleType | None = None, chunk_bytes: int = 1 << 21,
                 parameters: Sequence[Parameter] | None = None) -> None:
        self.xp = np if xp is None else xp
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.complex64, np.complex128):
            raise BackendError(f"dtype must be complex64 or complex128; got {self.dtype}.")
        self.num_qubits = circuit.num_qubits
        params = list(circuit.parameters if parameters is None else parameters)
        self.num_parameters = len(params)
        self.chunk_bytes = chunk_bytes
        self._index = {p: k for k, p in enumerate(params)}
        self._phase: list[_Angle] = []
        ops: list[_Op] = []
        self._lower(circuit, list(range(circuit.num_qubits)), ops)
        self._stages = self._schedule(ops)

    @staticmethod
    def bytes_per_sample(num_qubits: int, dtype: Any = np.complex128) -> int:
        """Bytes one output state takes: ``2**q * itemsize`` (16 for complex128)."""
        return (1 << num_qubits) * np.dtype(dtype).itemsize

    def _lower(self, circuit: QuantumCircuit, wires: list[int], ops: list[_Op]) -> None:
        """Append the primitives of ``circuit`` (acting on ``wires``) to ``ops``."""
        self._phase.append(_compile_angle(circuit.global_phase, self._index))
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
            free = any(isinstance(v, ParameterExpression) and v.parameters for v in op.params)
            if free and not set().union(*(getattr(v, "parameters", set()) for v in op.params)
                                        ) <= self._index.keys():
                raise BackendError(f"Gate {name!r} uses parameters that are not in the "
                                   "parameter list of the engine.")
            angles = [_compile_angle(v, self._index) for v in op.params] if free else []
            if free and name in _DIAG_RULES:
                ops.append(_Op("diag", qubits, angles[0], np.array(_DIAG_RULES[name])))
            elif free and name in ("u", "u3") and angles[0].const == 0:
                ops += [_Op("diag", qubits, a, np.array([0.0, 1.0])) for a in angles[1:]]
            elif free and name in _DENSE_RULES:
                ops.append(_Op("dense", qubits, factors=[(name, angles)]))
            elif not free and op.num_qubits <= 3 and self._has_matrix(op):
                ops += _from_matrix(np.asarray(op.to_matrix()), qubits)
            elif op.definition is not None:
                self._lower(op.definition, list(qubits), ops)
            else:
                raise BackendError(
                    f"The batched engine cannot simulate gate {name!r} on qubits {qubits}: it "
                    "has no matrix and no definition. Give the gate a definition, transpile "
                    f"the circuit to the basis {list(ENGINE_BASIS)}, or use backend.kind "
                    "'statevector'.")

    @staticmethod
    def _has_matrix(op: Gate) -> bool:
        try:
            op.to_matrix()
        except Exception:  # noqa: BLE001 - any failure means "use the definition"
            return False
        return True

    def _schedule(self, ops: list[_Op]) -> list[_Stage]:
        """Group ops into alternating phase-polynomial and dense stages by commutation."""
        stages: list[_Stage] = []
        for op in ops:
            kind = "dense" if op.kind == "dense" else "block"
            touch = set(op.qubits)
            last = max((j for j, st in enumerate(stages) if st.qubits & touch), default=-1)
            j = next((j for j in range(max(last, 0), len(stages))
                      if stages[j].kind == kind), None)
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
        phase = _Op("diag", (), None, np.zeros(1))
        if not blocks:
            stages.append(_Stage("block"))
            blocks = stages[-1:]
        blocks[-1].ops.append(phase)
        for a in self._phase:
            blocks[-1].ops.append(_Op("diag", (), a, np.ones(1)))
        for st in stages:
            self._finalise(st)
        return stages

    def _finalise(self, stage: _Stage) -> None:
        """Fold constant dense factors; turn a block into phase rows ``S`` and one gather."""
        xp = self.xp
        if stage.kind == "dense":
            for op in stage.ops:
                folded: list[Any] = []
                for f in op.factors:
                    if folded and isinstance(f, np.ndarray) and isinstance(folded[-1], np.ndarray):
                        folded[-1] = f @ folded[-1]
                    else:
                        folded.append(f)
                op.factors = [xp.asarray(f, dtype=self.dtype) if isinstance(f, np.ndarray)
                              else f for f in folded]
            return
        pi = np.arange(1 << self.num_qubits)
        rows: dict[str, tuple[_Angle, np.ndarray]] = {}
        const = np.zeros(1 << self.num_qubits)
        for op in stage.ops:
            assert op.table is not None
            local = _local(pi, op.qubits)
            if op.kind == "perm":
                moved = op.table[local]
                pi = pi & ~sum(1 << qk for qk in op.qubits)
                for j, qk in enumerate(op.qubits):
                    pi |= ((moved >> j) & 1) << qk
            elif op.angle is None or op.angle.const is not None:
                const += (1.0 if op.angle is None else op.angle.const.real) * op.table[local]
            else:
                old = rows.get(op.angle.key, (op.angle, 0.0))[1]
                rows[op.angle.key] = (op.angle, old + op.table[local])
        stage.angles = [a for a, _ in rows.values()]
        stage.matrix = xp.asarray(np.stack([r for _, r in rows.values()] + [const]))
        if (pi != np.arange(pi.size)).any():
            stage.inverse = xp.asarray(np.argsort(pi))

    def states(self, x: Any) -> Any:
        """States ``U(x_i)|0...0>`` for every row of ``x`` (shape ``(n, p)``): ``(n, 2**q)``."""
        xp = self.xp
        x = xp.asarray(x, dtype=xp.float64)
        if x.ndim != 2 or x.shape[1] != self.num_parameters:
            raise DataError(f"x must have shape (n, {self.num_parameters}) (one column per "
                            f"circuit parameter); got shape {tuple(x.shape)}.")
        if bool(xp.isnan(x).any()):
            raise DataError("x contains NaN; clean or impute the features before encoding.")
        dim = 1 << self.num_qubits
        out = xp.empty((x.shape[0], dim), dtype=self.dtype)
        step = max(1, self.chunk_bytes // (dim * self.dtype.itemsize))
        for start in range(0, x.shape[0], step):
            self._run(x[start:start + step].T, out[start:start + step])
        return out

    def _run(self, cols: Any, psi: Any) -> None:
        """Fill ``psi`` (m, 2**q) with the states of the m samples whose columns are ``cols``."""
        xp, m, q = self.xp, psi.shape[0], self.num_qubits
        vecs: list[Any] = [xp.asarray([1.0, 0.0], dtype=xp.complex128)] * q
        first = 0
        for stage in self._stages:
            if any(len(op.qubits) > 1 or op.kind == "perm" for op in stage.ops):
                break
            first += 1
            for op in stage.ops:
                k = op.qubits[0] if op.qubits else 0
                if op.kind == "dense":
                    vecs[k] = (self._matrix(op, cols) @ vecs[k][..., None])[..., 0]
                else:
                    theta = 1.0 if op.angle is None else op.angle.values(xp, cols)
                    table = xp.asarray(op.table)
                    vecs[k] = vecs[k] * xp.exp(1j * xp.multiply.outer(theta, table))
        state = xp.broadcast_to(vecs[0], (m, 2))
        for k in range(1, q):
            state = (vecs[k][..., :, None] * state[:, None, :]).reshape(m, -1)
        psi[...] = state
        for stage in self._stages[first:]:
            if stage.kind == "dense":
                for op in stage.ops:
                    self._apply(psi, op.qubits, self._matrix(op, cols))
                continue
            theta = xp.empty((m, len(stage.angles) + 1))
            for g, angle in enumerate(stage.angles):
                theta[:, g] = angle.values(xp, cols)
            theta[:, -1] = 1.0
            psi *= xp.exp(1j * (theta @ stage.matrix))
            if stage.inverse is not None:
                psi[...] = xp.take(psi, stage.inverse, axis=1)

    def _matrix(self, op: _Op, cols: Any) -> Any:
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

    def _apply(self, psi: Any, qubits: tuple[int, ...], mat: Any) -> None:
        """``psi <- (mat on qubits) psi`` in place, for every sample of the chunk."""
        m, d = psi.shape[0], 1 << len(qubits)
        order = sorted(range(len(qubits)), key=lambda j: -qubits[j])
        shape, top = [m], self.num_qubits
        for j in order:
            shape += [1 << (top - 1 - qubits[j]), 2]
            top = qubits[j]
        view = psi.reshape([*shape, 1 << top])

        def part(local: int) -> Any:
            index: list[Any] = [slice(None)] * view.ndim
            for pos, j in enumerate(order):
                index[2 + 2 * pos] = (local >> j) & 1
            return view[tuple(index)]

        if mat.ndim == 3:
            mat = mat.reshape((m, d, d) + (1,) * (view.ndim - 1 - len(qubits)))
        coef = (lambda r, c: mat[:, r, c]) if mat.ndim > 2 else (lambda r, c: mat[r, c])
        if d == 2:
            a, b = part(0), part(1)
            new = coef(0, 0) * a + coef(0, 1) * b
            b *= coef(1, 1)
            b += coef(1, 0) * a
            a[...] = new
            return
        old = [part(c).copy() for c in range(d)]
        for r in range(d):
            dst = part(r)
            dst[...] = coef(r, 0) * old[0]
            for c in range(1, d):
                dst += coef(r, c) * old[c]
