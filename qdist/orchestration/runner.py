"""The runner: streams missing tiles to a pool of Ray actors, retrying failures.

Tiles are handed out with row-block affinity: a free worker first takes another tile of the row
block it already holds, so its row states stay resident. Each worker has at most two calls in
flight, which keeps it busy without flooding its queue.

The pool is elastic. ``tiles.workers`` actors are asked for even when the cluster cannot place
them all yet; a worker gets tiles only once it has started (its ``ready`` call answered), so the
ones still waiting hold none back, and they join as nodes arrive: on KubeRay the pending actors
are the resource demand that makes the autoscaler add nodes. Without ``tiles.workers`` the pool
is one worker per CPU (GPU) the cluster has when the tiles start. If no worker starts within
``start_timeout`` seconds while tiles remain, the run stops saying what the cluster lacks.

Failures: a tile whose call raises, or whose worker dies (SIGKILL, a lost node), goes back to
the queue and is retried, up to ``max_retries`` times per tile. Dead workers are restarted by Ray
(``max_restarts``), on another node if theirs is gone. When a tile's budget is spent, or every
worker is gone, the run stops with a :class:`~qdist.errors.TileError` naming the tile and the
cause; tiles already written stay, and a rerun computes only the rest.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from qdist.config import BackendSpec
from qdist.errors import TileError
from qdist.events import Callback, TileCompleted, TileStats, emit
from qdist.orchestration.faults import FAULT_ENV
from qdist.orchestration.worker import TileWorker
from qdist.planning.plan import Tile

__all__ = ["RunStats", "run_tiles", "ensure_ray", "release_ray", "default_workers"]

log = logging.getLogger(__name__)

_IN_FLIGHT_PER_WORKER = 2
_ACTOR_RESTARTS = 4
_RESTART_WAIT_S = 0.2
START_TIMEOUT_S = 600.0
"""Default wait for a first (or, after all died, a next) worker to start while tiles remain."""


RunStats = TileStats
"""What the tile phase did (:class:`qdist.events.TileStats`)."""


def ensure_ray(address: str | None = None) -> bool:
    """Connect to ``address`` (``auto`` inside a Ray job), or start an embedded local Ray.

    Returns True if this call started or connected Ray (the caller then shuts it down).
    """
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(logging_level=logging.WARNING, include_dashboard=False)
    return True


def release_ray() -> None:
    """Disconnect from (and, if embedded, stop) the Ray that :func:`ensure_ray` started."""
    ray.shutdown()


def _actor_resources(backend: BackendSpec) -> dict[str, Any]:
    if backend.device == "GPU":
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": 1}


def default_workers(cap: int | None, backend: BackendSpec | None = None) -> int:
    """The pool's size: ``cap`` (``tiles.workers``) when given, whatever the cluster has now
    (workers it cannot place yet wait for nodes); else one per CPU (per GPU for GPU backends)
    that the cluster has now."""
    if cap:
        return cap
    resources = ray.cluster_resources()
    key = "GPU" if backend is not None and backend.device == "GPU" else "CPU"
    available = int(resources.get(key, 0))
    if available < 1:
        raise TileError(f"The Ray cluster offers no {key} for tile workers now (resources: "
                        f"{ {k: v for k, v in resources.items() if 'node' not in k} }). Add nodes "
                        f"with {key}s, or set tiles.workers so that the run asks for that many "
                        "workers and waits for an autoscaler to add the nodes.")
    return available


class _Queue:
    """Pending tiles grouped by (matrix, row block), handed out with affinity."""

    def __init__(self, tiles: Iterable[Tile]) -> None:
        self.groups: dict[tuple[str, int], deque[Tile]] = defaultdict(deque)
        for t in tiles:
            self.groups[(t.matrix, t.row_block)].append(t)

    def __bool__(self) -> bool:
        return bool(self.groups)

    def put_back(self, tile: Tile) -> None:
        self.groups[(tile.matrix, tile.row_block)].appendleft(tile)

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


class _Pool:
    """The actors, what each holds and runs, and the retry book-keeping."""

    def __init__(self, actors: list[Any], tiles: Sequence[Tile], max_retries: int) -> None:
        self.actors: dict[int, Any] = dict(enumerate(actors))
        self.holding: dict[int, tuple[str, int] | None] = dict.fromkeys(self.actors)
        self.load: dict[int, int] = dict.fromkeys(self.actors, 0)
        self.deaths: dict[int, int] = dict.fromkeys(self.actors, 0)
        self.pending: dict[Any, tuple[int, Tile]] = {}
        self.started: set[int] = set()
        self.failures: dict[str, int] = defaultdict(int)
        self.queue = _Queue(tiles)
        self.max_retries = max_retries

    def feed(self, w: int) -> None:
        while w in self.started and w in self.actors and self.load[w] < _IN_FLIGHT_PER_WORKER:
            tile = self.queue.take(self.holding[w])
            if tile is None:
                return
            self.holding[w] = (tile.matrix, tile.row_block)
            self.pending[self.actors[w].compute.remote(tile.to_dict())] = (w, tile)
            self.load[w] += 1

    def failed(self, w: int, tile: Tile, exc: BaseException) -> None:
        """Count a failure; requeue the tile or raise once its budget is spent."""
        self.failures[tile.key] += 1
        if isinstance(exc, RayActorError):
            self.deaths[w] += 1
            if self.deaths[w] > _ACTOR_RESTARTS and w in self.actors:
                log.error("tile worker %d died %d times; dropping it", w, self.deaths[w])
                del self.actors[w]
        if self.failures[tile.key] > self.max_retries:
            raise TileError(
                f"Tile {tile.key} (rows {tile.rows}, cols {tile.cols}) failed "
                f"{self.failures[tile.key]} times; last cause: {_cause(exc)}. Tiles already "
                "written are kept: fix the cause and rerun the same job on the same --out to "
                "compute only the missing ones."
            ) from exc
        if not self.actors:
            raise TileError(f"Every tile worker died (last cause: {_cause(exc)}); tiles already "
                            "written are kept. Check the cluster's nodes and rerun to resume.") \
                from exc
        log.warning("tile %s failed (attempt %d of %d): %s; retrying", tile.key,
                    self.failures[tile.key], self.max_retries + 1, _cause(exc))
        self.queue.put_back(tile)


def _restarting(exc: BaseException) -> bool:
    """A task refused because its actor is being restarted: not a new failure of the tile or the
    actor (counting it as one dropped healthy actors, and failed runs, on a loaded machine)."""
    return isinstance(exc, ActorUnavailableError) and "restarting" in str(exc)


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    tail = [ln for ln in text if ln.strip()][-1:] if text else []
    return f"{type(exc).__name__}: {tail[0] if tail else ''}".strip()


def run_tiles(
    tiles: Sequence[Tile],
    store_location: str,
    backend: BackendSpec,
    *,
    workers: int | None = None,
    cache_blocks: int = 3,
    max_retries: int = 3,
    callbacks: Sequence[Callback] = (),
    start_timeout: float = START_TIMEOUT_S,
) -> RunStats:
    """Compute ``tiles`` into the store at ``store_location`` on the connected Ray cluster.

    ``workers`` sizes the pool (default: one per CPU, or per GPU for GPU backends, that the
    cluster has now); workers the cluster cannot place yet join when it can. Each worker keeps up
    to ``cache_blocks`` blocks of states resident; a tile is retried at most ``max_retries``
    times; with tiles left and none in flight, a worker must start within ``start_timeout`` s.
    """
    stats = RunStats()
    if not tiles:
        return stats
    n_workers = min(default_workers(workers, backend), len(tiles))
    env = {k: os.environ[k] for k in FAULT_ENV if k in os.environ}
    resources = _actor_resources(backend)
    actor_cls = ray.remote(max_restarts=_ACTOR_RESTARTS, **resources)(TileWorker)
    options: dict[str, Any] = {"runtime_env": {"env_vars": env}} if env else {}
    actors = [actor_cls.options(**options).remote(store_location, backend, cache_blocks)
              for _ in range(n_workers)]
    pool = _Pool(actors, tiles, max_retries)
    starting = {a.ready.remote(): w for w, a in pool.actors.items()}
    start = last_news = time.perf_counter()
    try:
        while pool.pending or pool.queue:
            wait_s = None if pool.pending else max(0.0, start_timeout - (time.perf_counter() - last_news))
            ready, _ = ray.wait([*pool.pending, *starting], num_returns=1, timeout=wait_s)
            if not ready:
                raise TileError(_no_worker_started(start_timeout, n_workers, resources,
                                                   len(pool.started)))
            last_news = time.perf_counter()
            if ready[0] in starting:
                w = starting.pop(ready[0])
                _started(pool, w, ready[0], starting, stats)
                continue
            w, tile = pool.pending.pop(ready[0])
            pool.load[w] -= 1
            try:
                result = ray.get(ready[0])
            except Exception as exc:  # a tile or worker failure: retry within budget
                stats.retries += 1
                if _restarting(exc):  # a death already counted; Ray is bringing the actor back
                    pool.queue.put_back(tile)
                    time.sleep(_RESTART_WAIT_S)
                else:
                    pool.failed(w, tile, exc)
                for other in list(pool.actors):
                    pool.feed(other)
                continue
            stats.tiles_computed += 1
            stats.entries_computed += result["entries"]
            stats.nodes[result["node"]] = stats.nodes.get(result["node"], 0) + 1
            for k, v in result.get("mps", {}).items():
                stats.mps[k] = max(stats.mps.get(k, 0.0), v)
            emit(callbacks, TileCompleted(
                key=result["key"], entries=result["entries"], seconds=result["seconds"],
                node=result["node"], done=stats.tiles_computed, total=len(tiles),
                elapsed=time.perf_counter() - start))
            pool.feed(w)
    finally:
        for a in actors:
            ray.kill(a)
    stats.seconds = time.perf_counter() - start
    return stats


def _started(pool: _Pool, w: int, ref: Any, starting: dict[Any, int], stats: RunStats) -> None:
    """Worker ``w`` answered its ``ready`` call (or died trying): feed it, or retry, or drop it."""
    try:
        ray.get(ref)
    except Exception as exc:  # it could not be built (a bad backend) or its node went away
        pool.deaths[w] += 1
        if pool.deaths[w] > _ACTOR_RESTARTS or not isinstance(exc, RayActorError):
            del pool.actors[w]
            if not pool.actors:
                raise TileError(f"No tile worker could start: {_cause(exc)}. Tiles already written "
                                "are kept; fix the cause and rerun.") from exc
            log.warning("tile worker %d could not start (%s); dropping it", w, _cause(exc))
        else:
            starting[pool.actors[w].ready.remote()] = w
        return
    pool.started.add(w)
    if len(pool.started) > 1:
        log.info("tile worker %d started; %d of %d running", w, len(pool.started), len(pool.actors))
    stats.workers = max(stats.workers, len(pool.started))
    pool.feed(w)


def _no_worker_started(timeout: float, asked: int, resources: dict[str, Any], started: int) -> str:
    free = {k: v for k, v in ray.available_resources().items() if k in ("CPU", "GPU")}
    what = (f"none of the {asked} tile workers started" if not started else
            f"the {started} tile worker(s) that started are gone and no other one started")
    return (f"Tiles remain but {what} within {timeout:g} s; each needs {resources} and the "
            f"cluster has {free} free. Tiles already written are kept: add nodes (or let the "
            "autoscaler add them), or lower tiles.workers, and rerun.")
