"""QPU kernel maths without a device: the compute-uncompute circuit, tile pairs and PUB values.

On a QPU there are no states. The fidelity kernel is estimated per pair from shots of

.. math::

    K(x, y) = |\\langle 0 | U(y)^\\dagger U(x) | 0 \\rangle|^2 = P_{U(y)^\\dagger U(x)}(0\\ldots0),

and with :math:`s` shots the estimate :math:`\\hat K = n_{0\\ldots0} / s` is binomial:
:math:`E[\\hat K] = K`, :math:`\\mathrm{Var}[\\hat K] = K (1 - K) / s`.

Everything here is numpy and ``qiskit.circuit`` only, so it is cheap to test and to reuse; the
estimates from shots are in :mod:`qdist.backends.qpu_shots`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qiskit.circuit import ParameterVector, QuantumCircuit

from qdist.errors import TileError

__all__ = [
    "compute_uncompute",
    "pair_parameter_names",
    "tile_pairs",
    "pub_values",
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


def measured_physical_qubits(isa_circuit: QuantumCircuit) -> list[int]:
    """Physical qubit measured into each clbit of the ``meas`` register (clbit order)."""
    phys: dict[int, int] = {}
    for inst in isa_circuit.data:
        if inst.operation.name == "measure":
            phys[isa_circuit.find_bit(inst.clbits[0]).index] = isa_circuit.find_bit(inst.qubits[0]).index
    return [phys[k] for k in sorted(phys)]
