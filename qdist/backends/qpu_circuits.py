"""QPU kernel maths without a device: the compute-uncompute circuit, tile pairs, PUB values, counts.

On a QPU there are no states. The fidelity kernel is estimated per pair from shots of

.. math::

    K(x, y) = |\\langle 0 | U(y)^\\dagger U(x) | 0 \\rangle|^2 = P_{U(y)^\\dagger U(x)}(0\\ldots0),

and with :math:`s` shots the estimate :math:`\\hat K = n_{0\\ldots0} / s` is binomial:
:math:`E[\\hat K] = K`, :math:`\\mathrm{Var}[\\hat K] = K (1 - K) / s`.

Everything here is numpy and ``qiskit.circuit`` only, so it is cheap to test and to reuse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from qiskit.circuit import ParameterVector, QuantumCircuit

from qdist.errors import TileError

__all__ = [
    "compute_uncompute",
    "pair_parameter_names",
    "tile_pairs",
    "pub_values",
    "bitarray_counts",
    "zero_probability",
    "mitigated_zero_probability",
    "measured_physical_qubits",
]


def compute_uncompute(circuit: QuantumCircuit) -> QuantumCircuit:
    """The measured circuit ``U(y)^dagger U(x)`` whose all-zeros probability is ``K(x, y)``.

    Parameters
    ----------
    circuit
        The feature map ``U`` with ``p`` free parameters, taken in ``circuit.parameters`` order
        (the order in which every qdist backend reads the columns of ``x``).

    Returns
    -------
    QuantumCircuit
        ``U(x)`` then ``U(y).inverse()`` then ``measure_all`` (register ``meas``), with the ``2p``
        parameters ``x[0..p-1]`` (the row sample) and ``y[0..p-1]`` (the column sample). Its
        parameter order, as Qiskit sorts it, is all ``x`` then all ``y``.
    """
    params = list(circuit.parameters)
    xv = ParameterVector("x", len(params))
    yv = ParameterVector("y", len(params))
    u_x = circuit.assign_parameters(dict(zip(params, xv, strict=True)))
    u_y = circuit.assign_parameters(dict(zip(params, yv, strict=True)))
    out = u_x.compose(u_y.inverse())
    out.name = f"{circuit.name}_compute_uncompute"
    out.measure_all()
    return out


def pair_parameter_names(p: int) -> list[str]:
    """Names of the compute-uncompute parameters in documented order: ``x[0..p-1], y[0..p-1]``."""
    return [f"x[{k}]" for k in range(p)] + [f"y[{k}]" for k in range(p)]


def tile_pairs(tile_rows: tuple[int, int], tile_cols: tuple[int, int], diagonal: bool) -> np.ndarray:
    """Local ``(i, j)`` index pairs a tile needs measured, shape ``(n_pairs, 2)``, int64.

    An off-diagonal tile needs all ``b_r * b_c`` pairs. A diagonal tile (same row and column block)
    needs only ``i < j``: ``K`` is symmetric and ``K(x, x) = 1`` exactly, so the diagonal costs no
    shots.
    """
    nr = tile_rows[1] - tile_rows[0]
    nc = tile_cols[1] - tile_cols[0]
    if nr < 0 or nc < 0:
        raise TileError(f"A tile needs r0 <= r1 and c0 <= c1; got rows {tile_rows}, cols {tile_cols}.")
    if diagonal:
        if tile_rows != tile_cols:
            raise TileError(
                f"A diagonal tile needs equal row and column ranges; got rows {tile_rows}, cols "
                f"{tile_cols}. Pass diagonal=False for an off-diagonal tile."
            )
        i, j = np.triu_indices(nr, k=1)
    else:
        i, j = np.divmod(np.arange(nr * nc), nc) if nc else (np.empty(0, int), np.empty(0, int))
    return np.stack([i, j], axis=1).astype(np.int64).reshape(-1, 2)


def pub_values(
    names: Sequence[str], x_rows: np.ndarray, x_cols: np.ndarray, pairs: np.ndarray
) -> np.ndarray:
    """Parameter values of one PUB, shape ``(n_pairs, len(names))``, columns in ``names`` order.

    ``names`` are the ISA circuit's parameter names in its own order; transpilation may reorder
    (or drop) parameters, so columns are matched by name, never by position.
    """
    x_rows = np.asarray(x_rows, dtype=np.float64)
    x_cols = np.asarray(x_cols, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if x_rows.ndim != 2 or x_cols.ndim != 2 or x_rows.shape[1] != x_cols.shape[1]:
        raise TileError(
            f"x_rows and x_cols must be 2-D with the same number of columns; got {x_rows.shape} "
            f"and {x_cols.shape}."
        )
    p = x_rows.shape[1]
    if pairs.size and (pairs[:, 0].max() >= x_rows.shape[0] or pairs[:, 1].max() >= x_cols.shape[0]):
        raise TileError(
            f"Pair indices reach ({pairs[:, 0].max()}, {pairs[:, 1].max()}) but the tile has "
            f"{x_rows.shape[0]} rows and {x_cols.shape[0]} columns."
        )
    full = np.hstack([x_rows[pairs[:, 0]], x_cols[pairs[:, 1]]])
    position = {name: k for k, name in enumerate(pair_parameter_names(p))}
    missing = [n for n in names if n not in position]
    if missing:
        raise TileError(
            f"The ISA circuit has parameters {missing} that are not x[0..{p - 1}] or y[0..{p - 1}]; "
            f"the samples have {p} features. Build the circuit with compute_uncompute()."
        )
    return np.ascontiguousarray(full[:, [position[n] for n in names]])


def bitarray_counts(bit_array: Any) -> list[dict[str, int]]:
    """Per-pair counts ``{bitstring: count}`` of a 1-D ``qiskit.primitives.BitArray``.

    Vectorised for up to 40 bits (one ``np.unique`` over ``(pair, outcome)`` keys); wider registers
    fall back to ``BitArray.get_counts`` per pair.
    """
    n = int(bit_array.shape[0]) if bit_array.shape else 1
    nb = int(bit_array.num_bits)
    if nb > 40 or n >= 2 ** (63 - nb):
        return [bit_array.get_counts(loc=i) for i in range(n)]
    arr = np.asarray(bit_array.array).reshape(n, -1, bit_array.array.shape[-1])
    keys = np.zeros(arr.shape[:2], dtype=np.uint64)
    for byte in range(arr.shape[-1]):  # big-endian bytes: the last byte holds bit 0
        keys = (keys << np.uint64(8)) | arr[:, :, byte].astype(np.uint64)
    combined = (np.arange(n, dtype=np.uint64)[:, None] << np.uint64(nb)) | keys
    uniq, cnt = np.unique(combined.ravel(), return_counts=True)
    out: list[dict[str, int]] = [{} for _ in range(n)]
    mask = (1 << nb) - 1
    for u, c in zip(uniq.tolist(), cnt.tolist(), strict=True):
        out[u >> nb][format(u & mask, f"0{nb}b")] = c
    return out


def zero_probability(counts: Mapping[str, int]) -> tuple[float, int]:
    """``(n_{0...0} / s, s)`` for one pair's counts; ``s`` = total shots."""
    shots = int(sum(counts.values()))
    if shots == 0:
        raise TileError("A pair came back with zero shots; the job result is incomplete.")
    nb = len(next(iter(counts)))
    return counts.get("0" * nb, 0) / shots, shots


def mitigated_zero_probability(counts: Mapping[str, int], inverses: np.ndarray,
                               cache: dict[str, float] | None = None) -> tuple[float, int]:
    """Tensored readout mitigation of ``P(0...0)`` for one pair.

    With per-clbit confusion matrices ``A_k[m, t] = P(measure m | true t)`` and independent
    readout errors, the measured distribution is ``(A_{q-1} (x) ... (x) A_0) P_true``, so

    .. math::

        \\tilde P(0\\ldots0) = \\sum_b \\prod_k A_k^{-1}[0, b_k] \\, \\hat P(b),

    ``b_k`` being clbit ``k`` (the ``k``-th character from the right of Qiskit's bitstring). The
    result is clipped to ``[0, 1]`` by the caller. ``inverses`` has shape ``(q, 2, 2)``.
    """
    shots = int(sum(counts.values()))
    if shots == 0:
        raise TileError("A pair came back with zero shots; the job result is incomplete.")
    cache = {} if cache is None else cache
    total = 0.0
    for bits, c in counts.items():
        w = cache.get(bits)
        if w is None:
            w = 1.0
            for k, ch in enumerate(reversed(bits)):
                w *= inverses[k, 0, int(ch)]
            cache[bits] = w
        total += w * c
    return total / shots, shots


def measured_physical_qubits(isa_circuit: QuantumCircuit) -> list[int]:
    """Physical qubit measured into each clbit of the ``meas`` register (clbit order)."""
    phys: dict[int, int] = {}
    for inst in isa_circuit.data:
        if inst.operation.name == "measure":
            phys[isa_circuit.find_bit(inst.clbits[0]).index] = isa_circuit.find_bit(inst.qubits[0]).index
    return [phys[k] for k in sorted(phys)]
