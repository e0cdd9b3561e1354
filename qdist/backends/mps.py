"""Matrix-product-state backend: feature-map states of many qubits, and their overlaps.

A state of q qubits is kept as an MPS, one tensor per qubit (site ``k`` = qubit ``k``):

    |phi(x)> = sum_s A_0[s_0] A_1[s_1] ... A_{q-1}[s_{q-1}] |s_{q-1} ... s_0>,

with ``A_k`` of shape ``(chi_k, 2, chi_{k+1})`` and ``chi_0 = chi_q = 1``. Like the batched
engine, the sample axis is the batch axis: :class:`MpsStates` holds, per site, an array of shape
``(n, chi_k, 2, chi_{k+1})``, where ``chi_k`` is the largest bond of the block (smaller bonds
are padded with zeros, which changes no amplitude and no overlap).

Simulation (:class:`MpsBackend`). The circuit is transpiled (optimisation level 0, parameters
kept) to one- and two-qubit gates of :data:`MPS_BASIS`. One-qubit gates act on their site. Two-
qubit gates on neighbouring sites are multiplied into one ``4 x 4`` block per sample, together
with every later gate on the same pair (``CX P CX`` of a ZZ term is one block), and a block is
applied by contracting its two sites, applying it, and splitting them again with an SVD. Gates
on distant qubits are routed with SWAP blocks there and back. The MPS stays in mixed canonical
form (QR sweeps move the orthogonality centre to the block), so the singular values of a split
are the Schmidt coefficients of the state across that bond. Truncation keeps at most
``max_bond`` of them and drops the smallest ones while their summed squares stay within
``cutoff``; the kept ones are renormalised.

Recorded per sample: ``bond_dims`` (the largest bond kept), ``truncation_error`` (the sum over
all splits of the discarded squared singular values, ``eps_i``), and ``distance_bound``: a split
moves the normalised state by exactly ``sqrt(2 - 2 sqrt(1 - eps_i))`` in 2-norm and unitaries
preserve distances, so ``|| |phi_exact> - |phi_mps> || <= sum_i sqrt(2 - 2 sqrt(1 - eps_i))``.
For a pair, ``| |<a|b>|^2 - |<a'|b'>|^2 | <= delta (2 |<a'|b'>| + delta)`` with
``delta = d_a + d_b`` (:func:`fidelity_error_bound`);
without truncation all three are zero and the states are exact up to rounding.

Overlaps (:func:`mps_overlaps`): ``<a_i|b_j>`` for every pair of a tile by sweeping a transfer
environment ``E[i, j, l, l']`` site by site, two batched matrix products per site:
``O(n_a n_b q chi^3)`` flops, with no state vector ever formed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit.circuit import Gate, ParameterExpression, QuantumCircuit

from qdist.errors import BackendError, DataError
from qdist.kernel.angles import Angle, compile_angle

__all__ = ["MPS_BASIS", "MpsStates", "MpsBackend", "mps_overlaps", "mps_fidelity_tile",
           "fidelity_error_bound", "mps_one_qubit_rdms"]

#: Gates the circuit is transpiled to; every parameterised one has a vectorised rule below.
MPS_BASIS = ("h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "rx", "ry", "rz", "p",
             "u", "cx", "cy", "cz", "swap", "rzz", "cp", "crz")
_SWAP = np.eye(4, dtype=np.complex128)[[0, 2, 1, 3]]


def _u_mat(t: np.ndarray, f: np.ndarray, lam: np.ndarray) -> np.ndarray:
    c, s = np.cos(t / 2), np.sin(t / 2)
    return np.stack([np.stack([c + 0j, -np.exp(1j * lam) * s], -1),
                     np.stack([np.exp(1j * f) * s, np.exp(1j * (f + lam)) * c], -1)], -2)


def _diag(*phases: np.ndarray) -> np.ndarray:
    vals = np.exp(1j * np.stack(np.broadcast_arrays(*phases), -1))
    out = np.zeros((*vals.shape, vals.shape[-1]), dtype=np.complex128)
    idx = np.arange(vals.shape[-1])
    out[..., idx, idx] = vals
    return out


# per-sample matrices (m, d, d), little-endian index (bit j = j-th qubit of the gate)
_RULES: dict[str, Callable[..., np.ndarray]] = {
    "rx": lambda t: _u_mat(t, -np.pi / 2 + 0 * t, np.pi / 2 + 0 * t),
    "ry": lambda t: _u_mat(t, 0 * t, 0 * t),
    "rz": lambda t: _diag(-t / 2, t / 2),
    "p": lambda t: _diag(0 * t, t),
    "u": _u_mat,
    "rzz": lambda t: _diag(-t / 2, t / 2, t / 2, -t / 2),
    "cp": lambda t: _diag(0 * t, 0 * t, 0 * t, t),
    "crz": lambda t: _diag(0 * t, -t / 2, 0 * t, t / 2),
}


@dataclass(frozen=True, eq=False)
class MpsStates:
    """A block of n MPS states (module docstring), in mixed canonical form around ``center``."""

    tensors: tuple[np.ndarray, ...]
    """Site k: complex128 array ``(n, chi_k, 2, chi_{k+1})``, zero-padded bonds."""
    center: int
    """The orthogonality centre: sites left of it are left-, right of it right-isometric."""
    bond_dims: np.ndarray
    """``(n,)`` int: the largest bond kept for each sample (before padding)."""
    truncation_error: np.ndarray
    """``(n,)``: summed discarded squared singular values (0 when nothing was truncated)."""
    distance_bound: np.ndarray
    """``(n,)``: upper bound on the 2-norm distance to the exact state."""

    def __len__(self) -> int:
        return int(self.bond_dims.shape[0])

    @property
    def num_qubits(self) -> int:
        return len(self.tensors)

    def take(self, rows: Any) -> MpsStates:
        """The samples ``rows`` (an index array or slice) as a new block."""
        return MpsStates(tuple(t[rows] for t in self.tensors), self.center, self.bond_dims[rows],
                         self.truncation_error[rows], self.distance_bound[rows])

    def to_statevector(self) -> np.ndarray:
        """``(n, 2**q)`` dense states, little-endian (for checks at small q only)."""
        psi = self.tensors[0][:, 0]  # (n, 2, chi): index s_0
        for k in range(1, self.num_qubits):
            a = self.tensors[k]  # new qubit k is the most significant bit
            psi = np.einsum("nir,nrsk->nsik", psi, a).reshape(psi.shape[0], -1, a.shape[3])
        return psi[:, :, 0]

    @staticmethod
    def concat(blocks: Sequence[MpsStates]) -> MpsStates:
        """One block from several of the same circuit, bonds padded to the largest."""
        q = blocks[0].num_qubits
        dims = [max(b.tensors[k].shape[1] for b in blocks) for k in range(q)] + [1]
        tensors = []
        for k in range(q):
            parts = [np.pad(b.tensors[k], ((0, 0), (0, dims[k] - b.tensors[k].shape[1]), (0, 0),
                                           (0, dims[k + 1] - b.tensors[k].shape[3])))
                     for b in blocks]
            tensors.append(np.concatenate(parts))
        return MpsStates(tuple(tensors), blocks[0].center,
                         *(np.concatenate([getattr(b, f) for b in blocks])
                           for f in ("bond_dims", "truncation_error", "distance_bound")))


@dataclass
class _Op:
    qubits: tuple[int, ...]
    fixed: np.ndarray | None = None
    rule: Callable[..., np.ndarray] | None = None
    angles: tuple[Angle, ...] = ()

    def matrix(self, cols: np.ndarray) -> np.ndarray:
        if self.fixed is not None:
            return self.fixed
        assert self.rule is not None
        return self.rule(*(a.values(np, cols) for a in self.angles))


class _Sim:
    """The MPS of one chunk of m samples while the gates are applied."""

    def __init__(self, q: int, m: int, max_bond: int, cutoff: float) -> None:
        site = np.zeros((m, 1, 2, 1), dtype=np.complex128)
        site[:, 0, 0, 0] = 1.0
        self.a = [site.copy() for _ in range(q)]
        self.center, self.max_bond, self.cutoff = 0, max_bond, cutoff
        self.bond = np.ones(m, dtype=np.int64)
        self.err, self.dist = np.zeros(m), np.zeros(m)

    def one(self, k: int, u: np.ndarray) -> None:
        sub = "st" if u.ndim == 2 else "mst"
        self.a[k] = np.einsum(f"{sub},mltr->mlsr", u, self.a[k])

    def move_center(self, k: int) -> None:
        a = self.a
        while self.center < k:
            c = self.center
            m, left, _, r = a[c].shape
            qm, rm = np.linalg.qr(a[c].reshape(m, 2 * left, r))
            a[c] = qm.reshape(m, left, 2, -1)
            a[c + 1] = np.einsum("mab,mbsr->masr", rm, a[c + 1])
            self.center += 1
        while self.center > k:
            c = self.center
            m, left, _, r = a[c].shape
            qm, rm = np.linalg.qr(a[c].reshape(m, left, 2 * r).conj().transpose(0, 2, 1))
            a[c] = qm.conj().transpose(0, 2, 1).reshape(m, -1, 2, r)
            a[c - 1] = np.einsum("mxsl,mkl->mxsk", a[c - 1], rm.conj())
            self.center -= 1

    def two(self, i: int, g: np.ndarray) -> None:
        """Apply ``g`` (little-endian on (i, i+1)), split with truncation; centre ends at i+1."""
        self.move_center(i if self.center <= i else i + 1)
        a, b = self.a[i], self.a[i + 1]
        m, left, r = a.shape[0], a.shape[1], b.shape[3]
        g4 = np.broadcast_to(g, (m, 4, 4)).reshape(m, 2, 2, 2, 2)  # (b', a', b, a)
        theta = np.einsum("mbaBA,mlAx,mxBr->mlabr", g4, a, b).reshape(m, 2 * left, 2 * r)
        u, s, vh = np.linalg.svd(theta, full_matrices=False)
        w = s * s
        tail = np.cumsum(w[:, ::-1], axis=1)[:, ::-1]  # tail[j] = sum_{i >= j} w_i
        keep = np.clip((tail > self.cutoff).sum(axis=1), 1, self.max_bond)
        mask = np.arange(s.shape[1])[None, :] < keep[:, None]
        lost = np.clip(np.where(mask, 0.0, w).sum(axis=1), 0.0, 1.0)
        s = np.where(mask, s, 0.0)
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        chi = int(keep.max())
        self.a[i] = u[:, :, :chi].reshape(m, left, 2, chi)
        self.a[i + 1] = (s[:, :chi, None] * vh[:, :chi]).reshape(m, chi, 2, r)
        self.center = i + 1
        self.bond = np.maximum(self.bond, keep)
        self.err += lost
        # 2 - 2 sqrt(1 - eps) written so that it does not round to 0 for eps below 1e-16
        self.dist += np.sqrt(2.0 * lost / (1.0 + np.sqrt(1.0 - lost)))


class MpsBackend:
    """MPS states of a feature-map circuit for a block of samples (module docstring).

    Parameters
    ----------
    circuit : QuantumCircuit
        The feature map; its parameters, in ``circuit.parameters`` order, are the columns of x.
    max_bond : int
        Largest bond dimension kept at any split.
    cutoff : float
        Largest summed squared singular values dropped at one split (relative to the norm 1).
        The default (1e-16) drops only numerical noise: each split moves a state by at most
        1e-8 in norm, and ``distance_bound`` records what was actually dropped.
    chunk : int
        Samples simulated at once (bounds the temporaries).
    """

    name = "mps"

    @staticmethod
    def tile(a: MpsStates, b: MpsStates | None = None) -> np.ndarray:
        """This backend's tile function (its states are MPS, not vectors):
        :func:`mps_fidelity_tile`."""
        return mps_fidelity_tile(a, b)

    @staticmethod
    def bytes_per_sample(num_qubits: int, max_bond: int) -> int:
        """Upper bound on one sample's MPS: ``q`` sites of ``max_bond^2 * 2`` complex128."""
        return 32 * num_qubits * max_bond * max_bond

    def __init__(self, circuit: QuantumCircuit, max_bond: int = 64, cutoff: float = 1e-16,
                 chunk: int = 512) -> None:
        if max_bond < 1 or not 0.0 <= cutoff < 1.0:
            raise BackendError(f"MPS needs max_bond >= 1 and 0 <= cutoff < 1; got max_bond="
                               f"{max_bond}, cutoff={cutoff}.")
        from qiskit import transpile

        self.num_qubits = circuit.num_qubits
        self.max_bond, self.cutoff, self.chunk = max_bond, cutoff, chunk
        params = list(circuit.parameters)
        self._index = {p: k for k, p in enumerate(params)}
        self.num_parameters = len(params)
        qc = transpile(circuit, basis_gates=list(MPS_BASIS), optimization_level=0)
        self._phase = compile_angle(qc.global_phase, self._index)
        self._ops = [self._lower(qc, inst) for inst in qc.data
                     if inst.operation.name not in ("barrier", "id", "delay")]

    def _lower(self, qc: QuantumCircuit, inst: Any) -> _Op:
        op, name = inst.operation, inst.operation.name
        qubits = tuple(qc.find_bit(q).index for q in inst.qubits)
        if inst.clbits or not isinstance(op, Gate) or op.num_qubits > 2:
            raise BackendError(f"The MPS backend cannot simulate {name!r} on qubits {qubits}: a "
                               "feature map must be unitary (no measure, reset or control flow).")
        if not any(isinstance(v, ParameterExpression) and v.parameters for v in op.params):
            return _Op(qubits, fixed=np.asarray(op.to_matrix(), dtype=np.complex128))
        if name not in _RULES:
            raise BackendError(f"Gate {name!r} on {qubits} kept free parameters after "
                               f"transpiling to {list(MPS_BASIS)}; bind it or rewrite the circuit.")
        return _Op(qubits, rule=_RULES[name],
                   angles=tuple(compile_angle(v, self._index) for v in op.params))

    def states(self, x: np.ndarray) -> MpsStates:
        """MPS of ``U(x_i)|0...0>`` for every row of ``x`` (shape ``(n, p)``)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.num_parameters:
            raise DataError(f"x must have shape (n, {self.num_parameters}) (one column per "
                            f"circuit parameter); got shape {x.shape}.")
        if np.isnan(x).any():
            raise DataError("x contains NaN; clean or impute the features before encoding.")
        if x.shape[0] == 0:
            raise DataError("x has no rows; pass at least one sample.")
        return MpsStates.concat([self._run(x[s:s + self.chunk].T)
                                 for s in range(0, x.shape[0], self.chunk)])

    def _run(self, cols: np.ndarray) -> MpsStates:
        sim = _Sim(self.num_qubits, cols.shape[1], self.max_bond, self.cutoff)
        pair: int | None = None  # lower site of the open two-qubit block
        block: np.ndarray = _SWAP
        for op in self._ops:
            mat = op.matrix(cols)
            if len(op.qubits) == 1:
                k = op.qubits[0]
                if pair is not None and k in (pair, pair + 1):
                    eye = np.eye(2)
                    block = (np.kron(eye, mat) if k == pair else np.kron(mat, eye)) @ block
                else:
                    sim.one(k, mat)
                continue
            a, b = op.qubits
            if a > b:  # little-endian on (b, a): reverse the qubit order of the matrix
                a, b, mat = b, a, _SWAP @ mat @ _SWAP
            if pair is not None and pair == a and b == a + 1:
                block = mat @ block
                continue
            if pair is not None:
                sim.two(pair, block)
                pair = None
            if b == a + 1:
                pair, block = a, mat
                continue
            for k in range(b - 1, a, -1):  # bring qubit b next to a, apply, and back
                sim.two(k, _SWAP)
            sim.two(a, mat)
            for k in range(a + 1, b):
                sim.two(k, _SWAP)
        if pair is not None:
            sim.two(pair, block)
        phase = np.exp(1j * self._phase.values(np, cols))
        sim.a[0] = sim.a[0] * phase[:, None, None, None]
        return MpsStates(tuple(sim.a), sim.center, sim.bond, sim.err, sim.dist)


def mps_overlaps(a: MpsStates, b: MpsStates | None = None, cache_bytes: int = 1 << 21) -> np.ndarray:
    """``<a_i|b_j>`` for every sample i of ``a`` and j of ``b``: a ``(n_a, n_b)`` complex array.

    The pairs are swept in sub-tiles whose environment and temporaries stay near
    ``cache_bytes`` (measured 3x faster than one sweep over a 256 x 256 tile: the sweep is
    bound by memory traffic). With ``b=None`` only sub-tiles on and above the diagonal are
    swept and the rest is mirrored (``<a_j|a_i> = conj <a_i|a_j>``).
    """
    other = a if b is None else b
    if a.num_qubits != other.num_qubits:
        raise BackendError(f"Overlaps need states of equal size; got {a.num_qubits} and "
                           f"{other.num_qubits} qubits.")
    wa = max(t.shape[3] for t in a.tensors)
    wb = max(t.shape[3] for t in other.tensors)
    step = int(np.clip(np.sqrt(cache_bytes / (64 * wa * wb)), 8, 512))
    na, nb = len(a), len(other)
    out = np.empty((na, nb), dtype=np.complex128)
    for i in range(0, na, step):
        rows = [t[i:i + step] for t in a.tensors]
        for j in range(i if b is None else 0, nb, step):
            out[i:i + step, j:j + step] = _sweep(rows, [t[j:j + step] for t in other.tensors])
            if b is None and j > i:
                out[j:j + step, i:i + step] = out[i:i + step, j:j + step].conj().T
    return out


def _sweep(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """Overlaps of one sub-tile: the environment alternates between the layouts
    ``[j, i, l_a, l_b]`` and ``[i, j, l_b, l_a]`` so each site needs one transpose only."""
    na, nb = a[0].shape[0], b[0].shape[0]
    env, flip = np.ones((nb, na, 1, 1), dtype=np.complex128), False
    for ta, tb in zip(a, b, strict=True):
        la, ra, lb, rb = ta.shape[1], ta.shape[3], tb.shape[1], tb.shape[3]
        if not flip:  # contract B_j over l_b, then conj(A_i) over (l_a, s)
            t = np.matmul(env.reshape(nb, na * la, lb), tb.reshape(nb, lb, 2 * rb))
            t = t.reshape(nb, na, la, 2, rb).transpose(1, 0, 4, 2, 3).reshape(na, nb * rb, 2 * la)
            env = np.matmul(t, ta.conj().reshape(na, 2 * la, ra))
        else:  # contract conj(A_i) over l_a, then B_j over (l_b, s)
            t = np.matmul(env.reshape(na, nb * lb, la), ta.conj().reshape(na, la, 2 * ra))
            t = t.reshape(na, nb, lb, 2, ra).transpose(1, 0, 4, 2, 3).reshape(nb, na * ra, 2 * lb)
            env = np.matmul(t, tb.reshape(nb, 2 * lb, rb))
        flip = not flip
    return env.reshape(nb, na).T if not flip else env.reshape(na, nb)


def mps_fidelity_tile(a: MpsStates, b: MpsStates | None = None) -> np.ndarray:
    """Kernel tile ``|<a_i|b_j>|^2`` in float64, clipped to [0, 1]; ``b=None``: a diagonal tile,
    exactly symmetric."""
    ov = mps_overlaps(a, b)
    tile = ov.real * ov.real + ov.imag * ov.imag
    if b is None:
        tile = 0.5 * (tile + tile.T)
    return np.clip(tile, 0.0, 1.0, out=tile)


def fidelity_error_bound(a: MpsStates, b: MpsStates | None = None,
                         tile: np.ndarray | None = None) -> np.ndarray:
    """Upper bound on ``|K_mps - K_exact|`` per pair from the recorded distance bounds.

    With ``delta = d_a + d_b`` and ``v = <a'|b'>`` the MPS overlap, ``|<a|b> - v| <= delta`` and
    ``| |u|^2 - |v|^2 | <= |u - v| (|u| + |v|) <= delta (2 |v| + delta)``; pass the MPS kernel
    ``tile`` (``|v|^2``) for this tighter form, else ``|v| <= 1`` is used. Clipped at 1.
    """
    db = (a if b is None else b).distance_bound
    delta = a.distance_bound[:, None] + db[None, :]
    v = 1.0 if tile is None else np.sqrt(np.clip(tile, 0.0, 1.0))
    return np.minimum(1.0, delta * (2.0 * v + delta))


def mps_one_qubit_rdms(states: MpsStates) -> np.ndarray:
    """One-qubit reduced density matrices ``(n, q, 2, 2)`` of every sample.

    The orthogonality centre is swept over the sites (QR only, no truncation); at site k the
    reduced state is ``rho_k[s, t] = sum_{l, r} A_k[l, s, r] conj(A_k[l, t, r])``.
    """
    n, q = len(states), states.num_qubits
    sim = _Sim(q, n, max_bond=1, cutoff=0.0)
    sim.a, sim.center = list(states.tensors), states.center
    sim.move_center(0)
    out = np.empty((n, q, 2, 2), dtype=np.complex128)
    for k in range(q):
        sim.move_center(k)
        out[:, k] = np.einsum("mlsr,mltr->mst", sim.a[k], sim.a[k].conj())
    return out
