"""The QPU budget: jobs, circuits, shots and an estimate of QPU time, checked before submission.

On a QPU each tile is one job holding one PUB: one compute-uncompute circuit with a parameter
row per pair. An off-diagonal ``b_r x b_c`` tile has ``b_r b_c`` pairs; a diagonal ``b x b`` tile
``b (b - 1) / 2`` (identical samples have K = 1 exactly). A job costs ``pairs x shots`` circuit
executions and providers cap that (IBM: about 10 million), so the tile edge is at most
``floor(sqrt(limit / shots))``.

The time estimate is a simple model, stated so users can correct it (:func:`estimate_seconds`):
every job costs ``JOB_OVERHEAD_S`` (loading, compilation checks, result transfer), every bound
circuit ``CIRCUIT_OVERHEAD_S``, and every shot ``shot_seconds`` (default 250 us, a typical
repetition delay; the QPU backend passes the device's own delay plus the circuit's duration).
It is an estimate, not a quote.
"""

from __future__ import annotations

import math
from typing import Any

from qdist.errors import PlanError
from qdist.planning.plan import Plan

__all__ = ["EXECUTION_LIMIT", "JOB_OVERHEAD_S", "CIRCUIT_OVERHEAD_S", "DEFAULT_SHOT_S",
           "estimate_seconds", "max_qpu_tile", "tile_pair_count", "qpu_budget", "check_budget"]

EXECUTION_LIMIT = 10_000_000
"""Circuit executions (pairs x shots) one job may hold (IBM's cap)."""
JOB_OVERHEAD_S = 2.0
"""Estimate model: fixed seconds per job."""
CIRCUIT_OVERHEAD_S = 1e-3
"""Estimate model: seconds per bound circuit (parameter binding, control-system loading)."""
DEFAULT_SHOT_S = 250e-6
"""Estimate model: seconds per shot when the device reports no repetition delay."""


def estimate_seconds(circuits: int, shots: int, jobs: int,
                     shot_seconds: float = DEFAULT_SHOT_S) -> float:
    """Estimated QPU seconds: ``jobs * JOB_OVERHEAD_S + circuits * CIRCUIT_OVERHEAD_S
    + circuits * shots * shot_seconds``."""
    return jobs * JOB_OVERHEAD_S + circuits * CIRCUIT_OVERHEAD_S + circuits * shots * shot_seconds


def max_qpu_tile(shots: int, limit: int = EXECUTION_LIMIT) -> int:
    """Largest tile edge whose full tile stays under the provider's execution limit."""
    if shots < 1:
        raise PlanError(f"qpu.shots must be >= 1; got {shots}.")
    edge = math.isqrt(limit // shots)
    if edge < 1:
        raise PlanError(f"qpu.shots={shots} alone exceeds the provider's limit of {limit} "
                        "executions per job. Lower qpu.shots.")
    return edge


def tile_pair_count(shape: tuple[int, int], diagonal: bool) -> int:
    """Circuits (pairs) a tile needs."""
    r, c = shape
    return r * (r - 1) // 2 if diagonal else r * c


def qpu_budget(plan: Plan, shots: int, shot_seconds: float = DEFAULT_SHOT_S) -> dict[str, Any]:
    """Jobs, circuits, shots and estimated QPU seconds of ``plan`` (tiles with no pairs skipped)."""
    circuits = [tile_pair_count(t.shape, t.diagonal) for t in plan.tiles]
    jobs = sum(1 for c in circuits if c)
    total = sum(circuits)
    return {"jobs": jobs, "circuits": total, "shots_per_circuit": shots,
            "shots_total": total * shots,
            "estimated_qpu_seconds": estimate_seconds(total, shots, jobs, shot_seconds)}


def check_budget(budget: dict[str, Any], max_shots_total: int) -> None:
    """Refuse a plan whose shots exceed ``qpu.max_shots_total``, with the numbers."""
    if budget["shots_total"] > max_shots_total:
        raise PlanError(
            f"This job needs {budget['shots_total']:,} shots ({budget['jobs']} jobs, "
            f"{budget['circuits']:,} circuits x {budget['shots_per_circuit']} shots, about "
            f"{budget['estimated_qpu_seconds'] / 3600:.2f} QPU hours), more than "
            f"qpu.max_shots_total={max_shots_total:,}. Raise qpu.max_shots_total to at least "
            f"{budget['shots_total']:,} to spend it, or lower qpu.shots or the sample count."
        )
