"""Phase-polynomial blocks: a run of diagonal gates and basis permutations, applied at once.

A block is a sequence of diagonal terms ``|b> -> exp(i theta_g(x) s_g(b_Q)) |b>`` (``s_g`` a
table over the bits of the term's qubits ``Q``) and permutations ``|b> -> |sigma(b_Q)>``. With
``pi_g`` the permutation accumulated before term ``g``, the block equals ``P D`` with
``P = pi_K`` and ``D = diag(exp(i phi(b)))``, ``phi(b) = sum_g theta_g(x) s_g(pi_g(b))``.

When every permutation is affine over GF(2) (x, cx, swap, ...), each bit of ``pi_g(b)`` is a
parity ``<r, b> + o`` and the Walsh expansion of ``s_g`` maps each term onto characters
``chi_S(b) = (-1)^{|b & S|}``::

    phi(b) = sum_S Theta_S(x) chi_S(b),     Theta = C @ [theta_1(x), ..., theta_G(x), 1].

Characters of weight <= 2 (ZZ, Z, Pauli feature maps) give
``exp(i phi) = prod_S (cos Theta_S + i chi_S(b) sin Theta_S)``, built by doubling over the
qubits: with ``E_k`` the factor over bits ``< k``,
``E_{k+1} = [E_k * F_k, E_k * conj(F_k)]`` where ``F_k`` is the product state
``e^{i Theta_k} (x)_{j<k} (e^{i Theta_jk}, e^{-i Theta_jk})``. That costs about five complex
multiplications per amplitude and no transcendental function per amplitude. Characters of
weight >= 3, and blocks with non-affine permutations (ccx, cswap), use
``phi = X @ (C @ theta)`` (one real matrix product) and one cosine and sine per amplitude.
States are laid out ``psi[b, i]`` (basis index first, sample last).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from operator import xor
from types import ModuleType
from typing import Any

import numpy as np

from qdist.kernel.angles import Angle

__all__ = ["Primitive", "PhaseBlock", "local_index"]

_CONST = -1


@dataclass
class Primitive:
    """A lowered gate: ``diag`` (angle times table), ``perm`` (table sigma) or ``dense``."""

    kind: str
    qubits: tuple[int, ...]
    angle: Angle | None = None
    table: np.ndarray | None = None
    factors: list[Any] = field(default_factory=list)


def local_index(pi: np.ndarray, qubits: tuple[int, ...]) -> np.ndarray:
    """``sum_j bit(pi, qubits[j]) << j`` for every entry of ``pi``."""
    out = np.zeros_like(pi)
    for j, k in enumerate(qubits):
        out |= ((pi >> k) & 1) << j
    return out


def _affine(sigma: np.ndarray) -> tuple[list[int], int] | None:
    """``(cols, o)`` with ``sigma(l) = o ^ XOR_{j in l} cols[j]``, or None if not affine."""
    o, t = int(sigma[0]), len(sigma).bit_length() - 1
    cols = [int(sigma[1 << j]) ^ o for j in range(t)]
    ok = all(int(sigma[x]) == reduce(xor, (c for j, c in enumerate(cols) if x >> j & 1), o)
             for x in range(len(sigma)))
    return (cols, o) if ok else None


def _walsh(t: int) -> np.ndarray:
    """The ``2**t`` Walsh-Hadamard matrix ``(-1)^{|T & y|}``."""
    idx = np.arange(1 << t)
    return 1.0 - 2.0 * (np.bitwise_count(idx[:, None] & idx[None, :]) & 1)


class PhaseBlock:
    """One block ``P D`` compiled from its primitives (see the module docstring)."""

    def __init__(self, num_qubits: int, ops: list[Primitive], xp: ModuleType) -> None:
        q, self.num_qubits = num_qubits, num_qubits
        self.angles: list[Angle] = []
        keys: dict[str, int] = {}
        affine = all(op.kind != "perm" or _affine(op.table) is not None for op in ops)
        masks, off = [1 << k for k in range(q)], [0] * q
        pi = np.zeros(1 << q, dtype=np.int64) if affine else np.arange(1 << q)
        walsh: dict[int, dict[int, float]] = {}
        rows: dict[int, Any] = {}
        for op in ops:
            assert op.table is not None
            if op.kind == "perm" and affine:
                cols, o = _affine(op.table) or ([], 0)
                old = [(masks[k], off[k]) for k in op.qubits]
                for i, k in enumerate(op.qubits):
                    use = [old[j] for j, c in enumerate(cols) if c >> i & 1]
                    masks[k] = reduce(xor, (r for r, _ in use), 0)
                    off[k] = reduce(xor, (s for _, s in use), o >> i & 1)
                continue
            if op.kind == "perm":
                moved = op.table[local_index(pi, op.qubits)]
                pi = pi & ~sum(1 << k for k in op.qubits)
                for j, k in enumerate(op.qubits):
                    pi |= ((moved >> j) & 1) << k
                continue
            col, weight = self._column(op.angle, keys)
            if not affine:
                rows[col] = rows.get(col, 0.0) + weight * op.table[local_index(pi, op.qubits)]
                continue
            t = len(op.qubits)
            for sub, hat in enumerate(_walsh(t) @ op.table / (1 << t)):
                if abs(hat) > 1e-15:
                    bits = [op.qubits[j] for j in range(t) if sub >> j & 1]
                    mask = reduce(xor, (masks[k] for k in bits), 0)
                    sign = -1.0 if sum(off[k] for k in bits) % 2 else 1.0
                    entry = walsh.setdefault(mask, {})
                    entry[col] = entry.get(col, 0.0) + sign * weight * hat
        ncol = len(self.angles) + 1

        def matrix(entries: list[dict[int, float]]) -> np.ndarray:
            out = np.zeros((len(entries), ncol))
            for r, entry in enumerate(entries):
                for c, v in entry.items():
                    out[r, c] += v
            return out

        basis = np.arange(1 << q)
        if affine:
            for k in range(q):
                parity = np.bitwise_count(basis & masks[k]).astype(np.int64) & 1
                pi |= (parity ^ off[k]) << k
        walsh = {m: e for m, e in walsh.items() if any(abs(v) > 1e-14 for v in e.values())}
        quad = sorted(m for m in walsh if m.bit_count() <= 2)
        high = sorted(m for m in walsh if m.bit_count() > 2)
        self.quad = xp.asarray(matrix([walsh[m] for m in quad])) if quad else None
        self.slot = {tuple(k for k in range(q) if m >> k & 1): r for r, m in enumerate(quad)}
        self.high: Any = None
        self.chi: Any = None
        if high:
            self.high = xp.asarray(matrix([walsh[m] for m in high]))
            chi = 1.0 - 2.0 * (np.bitwise_count(basis[:, None] & np.array(high)[None, :]) & 1)
            self.chi = xp.asarray(chi)
        elif rows:
            self.high = xp.asarray(np.eye(ncol))
            keyed = [_CONST if c == ncol - 1 else c for c in range(ncol)]
            self.chi = xp.asarray(np.stack([np.broadcast_to(rows.get(c, 0.0), basis.shape)
                                            for c in keyed], axis=1))
        self.inverse = None if (pi == basis).all() else xp.asarray(np.argsort(pi))

    def _column(self, angle: Angle | None, keys: dict[str, int]) -> tuple[int, float]:
        """Matrix column of ``angle`` (the last column holds constants) and its weight."""
        if angle is None or angle.const is not None:
            return _CONST, 1.0 if angle is None else angle.const.real
        if angle.key not in keys:
            keys[angle.key] = len(self.angles)
            self.angles.append(angle)
        return keys[angle.key], 1.0

    def apply(self, xp: ModuleType, psi: Any, cols: Any) -> Any:
        """``psi <- P D psi`` for the chunk (``psi`` is ``(2**q, m)``, ``cols`` is ``(p, m)``)."""
        m = psi.shape[1]
        theta = xp.empty((len(self.angles) + 1, m))
        for g, angle in enumerate(self.angles):
            theta[g] = angle.values(xp, cols)
        theta[-1] = 1.0
        if self.quad is not None:
            psi *= self._doubling(xp, xp.exp(1j * (self.quad @ theta)), m)
        if self.high is not None:
            phase = self.chi @ (self.high @ theta)
            turn = xp.empty(phase.shape, dtype=psi.dtype)
            xp.cos(phase, out=turn.real)
            xp.sin(phase, out=turn.imag)
            psi *= turn
        return psi if self.inverse is None else xp.take(psi, self.inverse, axis=0)

    def _doubling(self, xp: ModuleType, w: Any, m: int) -> Any:
        """``exp(i phi(b))`` for characters of weight <= 2, ``w[r] = exp(i Theta_r)``."""
        q = self.num_qubits
        out = xp.empty((1 << q, m), dtype=w.dtype)
        spare = xp.empty((max(1, 1 << (q - 1)), m), dtype=w.dtype)
        out[0] = w[self.slot[()]] if () in self.slot else 1.0
        for k in range(q):
            half = 1 << k
            spare[0] = w[self.slot[(k,)]] if (k,) in self.slot else 1.0
            for j in range(k):
                lo, hi = spare[: 1 << j], spare[1 << j: 2 << j]
                if (j, k) in self.slot:
                    pair = w[self.slot[(j, k)]]
                    xp.multiply(lo, xp.conj(pair), out=hi)
                    lo *= pair
                else:
                    hi[...] = lo
            xp.multiply(out[:half], xp.conj(spare[:half]), out=out[half:2 * half])
            out[:half] *= spare[:half]
        return out
