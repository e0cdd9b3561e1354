"""The runner: streams missing tiles to a fixed pool of Ray actors.

Tiles are handed out with row-block affinity: a free worker first takes another tile of the row
block it already holds, so its row states stay resident. Each worker has at most two calls in
flight, which keeps it busy without flooding the queue.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

from qdist.config import BackendSpec
from qdist.errors import TileError
from qdist.events import Callback, TileCompleted, emit
from qdist.orchestration.worker import TileWorker
from qdist.planning.plan import Tile

__all__ = ["RunStats", "run_tiles", "ensure_ray"]

log = logging.getLogger(__name__)

_IN_FLIGHT_PER_WORKER = 2


@dataclass
class RunStats:
    """What the tile phase did."""

    tiles_computed: int = 0
    entries_computed: int = 0
    seconds: float = 0.0
    workers: int = 0
    nodes: dict[str, int] = field(default_factory=dict)


def ensure_ray(address: str | None = None) -> bool:
    """Connect to ``address``, or start an embedded local Ray; True if this call started it."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(logging_level=logging.WARNING, include_dashboard=False)
    return True


def default_workers(cap: int | None) -> int:
    """One worker per CPU in the cluster, capped by the job file."""
    cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
    return max(1, min(cpus, cap) if cap else cpus)


class _Queue:
    """Pending tiles grouped by (matrix, row block), handed out with affinity."""

    def __init__(self, tiles: Iterable[Tile]) -> None:
        self.groups: dict[tuple[str, int], deque[Tile]] = defaultdict(deque)
        for t in tiles:
            self.groups[(t.matrix, t.row_block)].append(t)

    def __len__(self) -> int:
        return sum(len(q) for q in self.groups.values())

    def take(self, prefer: tuple[str, int] | None) -> Tile | None:
        if prefer in self.groups:
            group = prefer
        elif self.groups:
            group = next(iter(self.groups))
        else:
            return None
        tile = self.groups[group].popleft()
        if not self.groups[group]:
            del self.groups[group]
        return tile


def run_tiles(
    tiles: Sequence[Tile],
    store_location: str,
    backend: BackendSpec,
    *,
    workers: int | None = None,
    cache_blocks: int = 3,
    callbacks: Sequence[Callback] = (),
) -> RunStats:
    """Compute ``tiles`` into the store at ``store_location`` on the connected Ray cluster.

    ``workers`` caps the pool (default: one per CPU); each worker keeps up to ``cache_blocks``
    blocks of states resident (the cost model sizes it to the worker's memory).
    """
    stats = RunStats()
    if not tiles:
        return stats
    n_workers = min(default_workers(workers), len(tiles))
    actor_cls = ray.remote(num_cpus=1)(TileWorker)
    actors = [actor_cls.remote(store_location, backend, cache_blocks) for _ in range(n_workers)]
    stats.workers = n_workers
    queue = _Queue(tiles)
    holding: list[tuple[str, int] | None] = [None] * n_workers
    pending: dict[Any, tuple[int, Tile]] = {}
    load = [0] * n_workers
    start = time.perf_counter()

    def feed(w: int) -> None:
        while load[w] < _IN_FLIGHT_PER_WORKER:
            tile = queue.take(holding[w])
            if tile is None:
                return
            holding[w] = (tile.matrix, tile.row_block)
            pending[actors[w].compute.remote(tile.to_dict())] = (w, tile)
            load[w] += 1

    for w in range(n_workers):
        feed(w)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            w, tile = pending.pop(ref)
            load[w] -= 1
            try:
                result = ray.get(ref)
            except Exception as exc:
                raise TileError(
                    f"Tile {tile.key} (rows {tile.rows}, cols {tile.cols}) failed: {exc}. Tiles "
                    "already written are kept; rerun the same job on the same --out to resume."
                ) from exc
            stats.tiles_computed += 1
            stats.entries_computed += result["entries"]
            stats.nodes[result["node"]] = stats.nodes.get(result["node"], 0) + 1
            emit(callbacks, TileCompleted(
                key=result["key"], entries=result["entries"], seconds=result["seconds"],
                node=result["node"], done=stats.tiles_computed, total=len(tiles),
                elapsed=time.perf_counter() - start))
            feed(w)
    finally:
        for a in actors:
            ray.kill(a)
    stats.seconds = time.perf_counter() - start
    return stats
