"""Gate angles as vectorised functions of the circuit parameters.

A gate angle in a feature map is a :class:`~qiskit.circuit.ParameterExpression` such as
``2*(pi - x[0])*(pi - x[1])``. Binding it sample by sample is far too slow for a block of
thousands of samples, so each expression is compiled once: its parameters are renamed to
``qdist_arg_<k>`` (k = column of ``x``), its text is parsed with :mod:`ast` and turned into a
closure over array operations (``+ - * / **``, unary minus, and sin, cos, tan, asin, acos,
atan, exp, log, abs, sign, conj, sqrt). Nothing is ``eval``-ed. The result is checked against
Qiskit's own ``bind_all`` at three random points; if the text cannot be parsed or disagrees, the
angle falls back to Qiskit's evaluation per sample (correct, slower, logged as a warning).
"""

from __future__ import annotations

import ast
import logging
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from qiskit.circuit import Parameter, ParameterExpression

from qdist.errors import BackendError

__all__ = ["Angle", "compile_angle"]

log = logging.getLogger(__name__)

Evaluator = Callable[[ModuleType, Any], Any]
_FUNCS = {"sin": "sin", "cos": "cos", "tan": "tan", "asin": "arcsin", "acos": "arccos",
          "atan": "arctan", "exp": "exp", "log": "log", "abs": "abs", "sign": "sign",
          "conj": "conj", "sqrt": "sqrt"}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow}
_IMAG = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)i\b")
_NAME = re.compile(r"qdist_arg_(\d+)")


def _to_fn(node: ast.AST) -> Evaluator:
    """A vectorised evaluator ``f(xp, cols)`` of one parsed node (``cols[k]`` = column k)."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, complex):
        value = node.value
        return lambda xp, cols: value
    if isinstance(node, ast.Name) and (found := _NAME.fullmatch(node.id)):
        k = int(found.group(1))
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
class Angle:
    """One gate angle ``theta(x)``.

    ``key`` is a canonical text (equal keys mean equal functions, so their phase terms can be
    merged), ``const`` is set for an angle that depends on no parameter, ``fn`` otherwise.
    """

    key: str
    const: complex | None = None
    fn: Evaluator | None = None

    def values(self, xp: ModuleType, cols: Any) -> Any:
        """``theta`` for every sample: a float64 array of length m (``cols`` is ``(p, m)``)."""
        if self.const is not None or self.fn is None:
            return xp.full((cols.shape[1],), 0.0 if self.const is None else self.const.real)
        out = self.fn(xp, cols)
        if xp.iscomplexobj(out):
            if out.size and float(xp.abs(xp.imag(out)).max()) > 1e-12:
                raise BackendError(f"Gate angle {self.key} is complex for some samples; a "
                                   "feature map needs real angles. Check the circuit.")
            out = xp.real(out)
        return xp.broadcast_to(xp.asarray(out, dtype=xp.float64), (cols.shape[1],))


def compile_angle(value: Any, index: dict[Parameter, int]) -> Angle:
    """Compile one gate parameter ``value`` (number or expression) for columns ``index``."""
    if not isinstance(value, ParameterExpression) or not value.parameters:
        return Angle(key=repr(complex(value)), const=complex(value))
    params = sorted(value.parameters, key=index.__getitem__)
    try:
        renamed = value.subs({p: Parameter(f"qdist_arg_{index[p]}") for p in params})
        text = _IMAG.sub(r"\1j", str(renamed))
        fn = _to_fn(ast.parse(text, mode="eval").body)
        points = np.random.default_rng(7).uniform(-2.0, 2.0, (len(index), 3))
        with np.errstate(all="ignore"):
            got = np.broadcast_to(fn(np, points), (3,))
        want = [complex(value.bind_all({p: float(points[index[p], j]) for p in params}))
                for j in range(3)]
        if not np.allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True):
            raise ValueError(f"compiled {text!r} gives {got}, Qiskit gives {want}")
    except (ValueError, SyntaxError, TypeError, ArithmeticError) as exc:
        log.warning("Angle %s is evaluated sample by sample (%s)", value, exc)

        def slow(xp: ModuleType, cols: Any) -> Any:
            host = cols.get() if hasattr(cols, "get") else np.asarray(cols)  # CuPy -> host
            return xp.asarray([complex(value.bind_all({p: float(host[index[p], j])
                                                       for p in params}))
                               for j in range(host.shape[1])])

        return Angle(key=f"slow:{value}", fn=slow)
    return Angle(key=text, fn=fn)
