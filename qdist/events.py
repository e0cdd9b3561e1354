"""Run events: small frozen records that progress bars and trackers subscribe to.

Library code never prints; it emits events to callbacks. A callback is any callable taking one
event; it must not raise (a failing callback is logged and dropped, it never stops a run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Event",
    "RunStarted",
    "PhaseStarted",
    "QpuBudgetReady",
    "TileCompleted",
    "RunFinished",
    "Callback",
    "emit",
    "TileStats",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of run events."""


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """The plan is fixed and the store exists; tiles are about to be computed."""

    run_id: str
    """qdist run id (derived from the config and data fingerprints)."""
    store: str
    """Path or URI of the Zarr group."""
    tiles_total: int
    """Tiles in the plan."""
    tiles_missing: int
    """Tiles still to compute (fewer than total on a resume)."""
    workers: int
    """Tile workers in the pool."""


@dataclass(frozen=True, slots=True)
class PhaseStarted(Event):
    """A named phase of the pipeline began (``load``, ``tiles``, ``assemble``, ``train``...)."""

    phase: str


@dataclass(frozen=True, slots=True)
class QpuBudgetReady(Event):
    """Before any QPU job is submitted: what the missing tiles will cost."""

    budget: dict[str, Any]
    """``jobs``, ``circuits``, ``shots_per_circuit``, ``shots_total``, ``estimated_qpu_seconds``."""


@dataclass(frozen=True, slots=True)
class TileCompleted(Event):
    """One tile is written to the store."""

    key: str
    """Tile key, e.g. ``k_train/0.3``."""
    entries: int
    """Gram entries in the tile."""
    seconds: float
    """Worker time spent on it (states, product, write)."""
    node: str
    """Ray node id (or ``local``) that computed it."""
    done: int
    """Tiles done in this run so far."""
    total: int
    """Tiles to compute in this run."""
    elapsed: float
    """Seconds since the tile phase began."""


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    """The run ended; ``metrics`` are the final figures."""

    metrics: dict[str, float] = field(default_factory=dict)


Callback = Callable[[Event], Any]


def emit(callbacks: Iterable[Callback], event: Event) -> None:
    """Send ``event`` to every callback; a callback that raises is logged, never fatal."""
    for cb in callbacks:
        try:
            cb(event)
        except Exception:  # a broken progress bar must not stop a kernel run
            log.exception("callback %r failed on %s", cb, type(event).__name__)


@dataclass
class TileStats:
    """What a tile phase did (the runner's, the QPU queue's or the kernel cache's figures), and
    their sum over the kernels of a run (:meth:`add`)."""

    tiles_computed: int = 0
    entries_computed: int = 0
    seconds: float = 0.0
    workers: int = 0
    retries: int = 0
    nodes: dict[str, int] = field(default_factory=dict)
    mps: dict[str, float] = field(default_factory=dict)
    """MPS backends: the largest bond dimension and per-sample truncation error seen."""
    submitted: int = 0
    """QPU: jobs submitted."""
    reattached: int = 0
    """QPU: jobs found in the ledger and re-attached to instead of submitted."""
    tiles_reused: int = 0
    """Kernel cache: tiles read as they were."""

    @classmethod
    def sum(cls, parts: Iterable[TileStats]) -> TileStats:
        """The figures of several tile phases (the kernels of a run) together."""
        total = cls()
        for part in parts:
            total.add(part)
        return total

    def add(self, other: TileStats) -> None:
        """Add ``other``'s counts; the largest MPS figures win."""
        for name in ("tiles_computed", "entries_computed", "seconds", "retries", "submitted",
                     "reattached", "tiles_reused"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for node, n in other.nodes.items():
            self.nodes[node] = self.nodes.get(node, 0) + n
        for k, v in other.mps.items():
            self.mps[k] = max(self.mps.get(k, 0.0), v)
