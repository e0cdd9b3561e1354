"""The QPU-specific steps of a run: tile sizing, the budget gate, the queue, the noise handling.

Called by :mod:`qdist.pipeline` when ``backend.kind`` is ``qpu``; everything else about a run
(store, lease, assembly, training, tracking) is shared with the statevector path.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from qdist.config import RunConfig
from qdist.errors import PlanError
from qdist.kernel.mitigation import (
    clip_psd,
    clip_psd_joint,
    depolarizing_mitigation,
    survival_from_diagonal,
)
from qdist.planning.plan import Plan
from qdist.planning.qpu import EXECUTION_LIMIT, check_budget, max_qpu_tile, qpu_budget

__all__ = ["qpu_tile_size", "qpu_gate", "qpu_record", "repair"]

log = logging.getLogger(__name__)


def qpu_tile_size(config: RunConfig, n_train: int) -> int:
    """``tiles.size`` checked against the provider's execution limit, or the largest that fits."""
    edge = max_qpu_tile(config.qpu.shots)
    size = config.tiles.size
    if size is None:
        return min(edge, n_train)
    if size > edge:
        raise PlanError(
            f"tiles.size={size} with qpu.shots={config.qpu.shots} puts {size * size * config.qpu.shots:,} "
            f"circuit executions in one job, over the provider's {EXECUTION_LIMIT:,}. Use "
            f"tiles.size <= {edge}, or fewer shots."
        )
    return size


def qpu_gate(config: RunConfig, plans: Plan | list[Plan]) -> dict[str, Any]:
    """The budget of every plan of the run together (one per kernel), refused before anything
    is written if it exceeds ``qpu.max_shots_total``."""
    budgets = [qpu_budget(p, config.qpu.shots) for p in (plans if isinstance(plans, list)
                                                         else [plans])]
    budget = dict(budgets[0])
    for extra in budgets[1:]:
        for key in ("jobs", "circuits", "shots_total", "estimated_qpu_seconds"):
            budget[key] += extra[key]
    check_budget(budget, config.qpu.max_shots_total)
    if config.qpu.provider == "ibm":
        from qdist.backends.qpu_providers import IbmCredentials

        IbmCredentials.from_env()  # a missing variable stops the run here, named
    return budget


def qpu_record(store: Any) -> dict[str, Any]:
    """The store's job ledger (tile -> job id, shots, seed...), also copied into its provenance."""
    ledger = dict(store.group["qpu_jobs"].attrs) if "qpu_jobs" in store.group else {}
    provenance = dict(store.attrs.get("provenance", {}))
    provenance["qpu_jobs"] = ledger
    store.update_attrs(provenance=provenance)
    return ledger


def repair(config: RunConfig, store: Any, k_train: np.ndarray, k_test: np.ndarray,
           qubits: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Depolarizing mitigation (from the measured diagonal) and PSD repair of the
    shot-estimated kernels, as the job asks; returns the kernels and metrics to log.
    ``qubits``: the kernel's register (a block's, under ``multiple_kernel``)."""
    metrics: dict[str, float] = {}
    if config.qpu.depolarizing_mitigation:
        q = qubits or config.feature_map.qubits
        lam_train = survival_from_diagonal(store.read("kdiag_train"), q)
        lam_test = survival_from_diagonal(store.read("kdiag_test"), q)
        k_train = depolarizing_mitigation(k_train, lam_train, lam_train, q)
        np.fill_diagonal(k_train, 1.0)
        k_test = depolarizing_mitigation(k_test, lam_test, lam_train, q)
        metrics["qpu_mean_survival"] = float(np.concatenate([lam_train, lam_test]).mean())
    mode = config.qpu.psd_repair
    if mode == "none":
        return k_train, k_test, metrics
    min_eig = float(np.linalg.eigvalsh(k_train).min())
    if mode == "joint":
        k_train, k_test, clipped = clip_psd_joint(k_train, k_test)
    else:
        k_train, clipped = clip_psd(k_train)
    log.info("PSD repair (%s) clipped %d eigenvalue(s); the smallest was %.3g", mode, clipped,
             min_eig)
    metrics.update({"qpu_psd_clipped_eigenvalues": float(clipped),
                    "qpu_min_eigenvalue_before_repair": min_eig})
    return k_train, k_test, metrics
