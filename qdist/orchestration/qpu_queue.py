"""The QPU queue: one Ray actor per QPU backend keeps a bounded number of jobs in flight.

Each missing tile becomes one job with one PUB (all of the tile's pairs). The actor records a
job's id in the store's job ledger (the ``qpu_jobs`` group's attributes, written only by this
actor) as soon as the provider accepts it, before anything else happens, so a restarted run
finds it: a job that is queued, running or done is re-attached instead of submitted again (on
providers whose jobs outlive the driver: ``ibm`` and ``spool``; in-process ``aer``/``fake`` jobs
die with it and are resubmitted). Finished jobs are collected into the tile's chunk and its
shot counts; failed jobs are retried with exponential backoff up to ``max_retries`` times, then
the run stops naming the tile.

The actor asks Ray for the custom resource ``qpu`` when the cluster offers it (one unit per
queue), so QPU queues land on the nodes set aside for them; otherwise one CPU. With a local
simulator (``aer``, ``fake``) the shots are computed inside the actor, so it reserves the CPUs
the simulator uses (``qpu.simulator_threads``; default: the free CPUs of the largest node).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray

from qdist.backends.factory import make_qpu_sampler
from qdist.config import QpuSpec
from qdist.errors import BackendError, TileError
from qdist.events import Callback, TileCompleted, emit
from qdist.orchestration.runner import RunStats
from qdist.planning.plan import Tile
from qdist.storage import GramStore

__all__ = ["QpuQueue", "QpuStats", "run_qpu_tiles"]

log = logging.getLogger(__name__)

_LEDGER = "qpu_jobs"
LOCAL_SIMULATORS = ("aer", "fake")
"""Providers that simulate inside the queue actor."""
_POLL_SECONDS = 0.2
_BACKOFF_SECONDS = 1.0


class QpuQueue:
    """Submits, re-attaches, polls and collects the jobs of one store on one QPU backend."""

    def __init__(self, store_location: str, spec: QpuSpec, seed: int) -> None:
        from qdist.kernel.feature_maps import circuit_from_qpy

        self.store = GramStore.open(store_location, mode="r+")
        self.spec = spec
        self.sampler = make_qpu_sampler(circuit_from_qpy(self.store.read("feature_map_qpy")), spec, seed)
        self.x = {"k_train": self.store.read("x_train"), "k_test": self.store.read("x_test")}

    def ledger(self) -> dict[str, Any]:
        """Every job recorded so far: tile key -> record."""
        return dict(self.store.group.require_group(_LEDGER).attrs)

    def _record(self, tile: Tile, **fields: Any) -> None:
        group = self.store.group.require_group(_LEDGER)
        rec = dict(group.attrs.get(tile.key, {}))  # type: ignore[arg-type]
        rec.update(fields)
        group.attrs[tile.key] = rec

    def _pairs(self, tile: Tile) -> np.ndarray:
        return np.asarray(self.sampler.pairs(tile.rows, tile.cols, tile.diagonal))

    def status(self, job_id: str) -> str:
        return str(self.sampler.status(job_id))

    def close(self) -> None:
        """Close the provider's batch (submitted jobs run on)."""
        self.sampler.close()

    def submit(self, tile_dict: dict[str, Any]) -> str:
        """Submit the tile's job and record its id before returning it.

        A tile with no pairs (a 1 x 1 diagonal tile: K = 1 exactly) needs no job: it is written
        at once and the empty id is returned.
        """
        tile = Tile.from_dict(tile_dict)
        pairs = self._pairs(tile)
        if len(pairs) == 0:
            values, shots = self.sampler.tile_values(None, pairs, tile.shape, tile.diagonal)
            self.store.write_tile(tile, values, shots=shots)
            return ""
        rows = self.x[tile.matrix][tile.rows[0]:tile.rows[1]]
        cols = self.x["k_train"][tile.cols[0]:tile.cols[1]]
        pub = self.sampler.make_pub(rows, cols, pairs)
        job_id = str(self.sampler.submit([pub], tile.seed))
        self._record(tile, job_id=job_id, provider=self.spec.provider, backend=self.spec.backend,
                     shots=self.spec.shots, seed=tile.seed, submitted_at=time.time())
        return job_id

    def attach(self, job_id: str) -> bool:
        """Re-attach to a job of an earlier process; False if the provider cannot."""
        try:
            self.sampler.attach(job_id)
        except BackendError as exc:
            log.info("cannot re-attach job %s: %s", job_id, exc)
            return False
        return True

    def collect(self, tile_dict: dict[str, Any], job_id: str) -> dict[str, Any]:
        """Write a finished job's tile (values and shot counts); return a result record."""
        tile = Tile.from_dict(tile_dict)
        pub_shots = self.sampler.result(job_id)[0]
        values, shots = self.sampler.tile_values(pub_shots, self._pairs(tile), tile.shape,
                                                 tile.diagonal)
        self.store.write_tile(tile, values, shots=shots)
        self._record(tile, status="DONE")
        return {"key": tile.key, "entries": int(values.size), "job_id": job_id}

    def diagonal_done(self) -> bool:
        """True when the measured diagonal (for depolarizing mitigation) is in the store."""
        return "kdiag_train" in self.store.group and not np.isnan(
            self.store.read("kdiag_train")).any()

    def _diagonal_x(self) -> np.ndarray:
        return np.vstack([self.x["k_train"], self.x["k_test"]])

    def submit_diagonal(self, seed: int) -> str:
        """One job measuring ``K_hat(x_i, x_i)`` for every sample (ideally 1: what is lost is
        noise), recorded in the ledger under ``diagonal``."""
        x = self._diagonal_x()
        pairs = np.repeat(np.arange(x.shape[0])[:, None], 2, axis=1)
        job_id = str(self.sampler.submit([self.sampler.make_pub(x, x, pairs)], seed))
        group = self.store.group.require_group(_LEDGER)
        group.attrs["diagonal"] = {"job_id": job_id, "provider": self.spec.provider,
                                   "shots": self.spec.shots, "seed": seed,
                                   "submitted_at": time.time()}
        return job_id

    def collect_diagonal(self, job_id: str) -> None:
        """Write the measured diagonal as ``kdiag_train`` and ``kdiag_test``."""
        x = self._diagonal_x()
        n = x.shape[0]
        column = np.stack([np.arange(n), np.zeros(n, dtype=np.int64)], axis=1)
        values, _ = self.sampler.tile_values(self.sampler.result(job_id)[0], column, (n, 1),
                                             False)
        n_train = self.x["k_train"].shape[0]
        parts = (("kdiag_train", values[:n_train, 0]), ("kdiag_test", values[n_train:, 0]))
        for name, part in parts:
            if name not in self.store.group:
                self.store.group.create_array(name, shape=part.shape, dtype="f8",
                                              fill_value=np.nan)
            self.store.array(name)[...] = part


@dataclass
class QpuStats(RunStats):
    """What the QPU phase did: the runner's figures plus the jobs."""

    workers: int = 1
    job_ids: dict[str, str] = field(default_factory=dict)
    startup_seconds: float = 0.0
    """From asking for the queue actor until it was ready (process start, imports, transpile)."""


def _queue_actor(spec: QpuSpec) -> Any:
    """The queue actor's class with its resources: the custom resource ``qpu`` when the cluster
    has it; a local simulator (``aer``, ``fake``) also reserves the CPUs it runs on, since Ray
    gives an actor as many OpenMP threads as CPUs it asked for."""
    resources = ray.cluster_resources()
    opts: dict[str, Any] = ({"num_cpus": 0, "resources": {"qpu": 1}} if resources.get("qpu", 0) >= 1
                            else {"num_cpus": 1})
    if spec.provider in LOCAL_SIMULATORS:
        opts["num_cpus"] = simulator_cpus(spec)
    return ray.remote(**opts)(QpuQueue)


def simulator_cpus(spec: QpuSpec) -> int:
    """CPUs for a local simulator: ``qpu.simulator_threads``, or else the most CPUs one node has,
    capped by what is free in the cluster now (at least 1). More threads than any node has could
    never be scheduled, so that is refused."""
    largest = max((float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")),
                  default=1.0)
    if spec.simulator_threads:
        if spec.simulator_threads > largest:
            raise BackendError(
                f"qpu.simulator_threads={spec.simulator_threads}, but the largest node of this Ray "
                f"cluster has {largest:g} CPUs, so the queue actor could never start. Use at most "
                f"{largest:g}, or 0 to take a node's free CPUs.")
        return spec.simulator_threads
    free = float(ray.available_resources().get("CPU", 1.0))
    return max(1, int(min(largest, free)))


def run_qpu_tiles(tiles: Sequence[Tile], store_location: str, spec: QpuSpec, seed: int, *,
                  max_retries: int = 3, callbacks: Sequence[Callback] = (),
                  measure_diagonal: bool = False) -> QpuStats:
    """Compute ``tiles`` on the QPU queue, at most ``spec.max_jobs_in_flight`` jobs at once;
    then, with ``measure_diagonal``, the samples' own fidelities for depolarizing mitigation."""
    stats = QpuStats()
    if not tiles and not measure_diagonal:
        return stats
    asked = time.perf_counter()
    queue = _queue_actor(spec).remote(store_location, spec, seed)
    ledger: dict[str, Any] = ray.get(queue.ledger.remote())
    stats.startup_seconds = time.perf_counter() - asked
    waiting = list(tiles)
    flying: dict[str, tuple[Tile, str]] = {}
    failures: dict[str, int] = {}
    retry_at: dict[str, float] = {}
    start = time.perf_counter()

    def launch(tile: Tile) -> None:
        rec = ledger.pop(tile.key, None)
        if rec and rec.get("job_id") and rec.get("status") != "ERROR" and ray.get(
                queue.attach.remote(rec["job_id"])):
            stats.reattached += 1
            flying[tile.key] = (tile, rec["job_id"])
            return
        job_id = ray.get(queue.submit.remote(tile.to_dict()))
        if job_id:
            flying[tile.key] = (tile, job_id)
            stats.submitted += 1
        else:  # no pairs, written at once
            done(tile, job_id, tile.shape[0] * tile.shape[1])

    def done(tile: Tile, job_id: str, entries: int) -> None:
        stats.tiles_computed += 1
        stats.entries_computed += entries
        if job_id:
            stats.job_ids[tile.key] = job_id
        stats.nodes["qpu"] = stats.nodes.get("qpu", 0) + 1
        emit(callbacks, TileCompleted(
            key=tile.key, entries=entries, seconds=0.0, node="qpu", done=stats.tiles_computed,
            total=len(tiles), elapsed=time.perf_counter() - start))

    try:
        while waiting or flying:
            now = time.monotonic()
            ready = [t for t in waiting if retry_at.get(t.key, 0.0) <= now]
            while ready and len(flying) < spec.max_jobs_in_flight:
                tile = ready.pop(0)
                waiting.remove(tile)
                launch(tile)
            for key, (tile, job_id) in list(flying.items()):
                state = ray.get(queue.status.remote(job_id))
                if state == "DONE":
                    result = ray.get(queue.collect.remote(tile.to_dict(), job_id))
                    del flying[key]
                    done(tile, job_id, result["entries"])
                elif state in ("ERROR", "CANCELLED"):
                    del flying[key]
                    failures[key] = failures.get(key, 0) + 1
                    stats.retries += 1
                    if failures[key] > max_retries:
                        raise TileError(
                            f"Tile {key}: QPU job {job_id} ended {state} {failures[key]} times. "
                            "Tiles already written are kept; check the backend's status and "
                            "rerun to resume (finished jobs are not submitted again).")
                    retry_at[key] = time.monotonic() + _BACKOFF_SECONDS * 2 ** (failures[key] - 1)
                    log.warning("QPU job %s of tile %s ended %s; retrying", job_id, key, state)
                    waiting.append(tile)
            time.sleep(_POLL_SECONDS)
        if measure_diagonal and not ray.get(queue.diagonal_done.remote()):
            _measure_diagonal(queue, ledger.get("diagonal"), seed, max_retries, stats)
    finally:
        try:
            ray.get(queue.close.remote())
        except Exception as exc:  # the actor may be gone; closing is a courtesy
            log.warning("Could not close the QPU queue's batch: %s", exc)
        ray.kill(queue)
    stats.seconds = time.perf_counter() - start
    return stats


def _measure_diagonal(queue: Any, record: dict[str, Any] | None, seed: int, max_retries: int,
                      stats: QpuStats) -> None:
    """Run (or re-attach to) the diagonal job and store its values."""
    job_id = record.get("job_id") if record else None
    if job_id and ray.get(queue.attach.remote(job_id)):
        stats.reattached += 1
    else:
        job_id = ray.get(queue.submit_diagonal.remote(seed))
        stats.submitted += 1
    for attempt in range(max_retries + 1):
        state = ray.get(queue.status.remote(job_id))
        while state not in ("DONE", "ERROR", "CANCELLED"):
            time.sleep(_POLL_SECONDS)
            state = ray.get(queue.status.remote(job_id))
        if state == "DONE":
            ray.get(queue.collect_diagonal.remote(job_id))
            stats.job_ids["diagonal"] = job_id
            return
        if attempt == max_retries:
            break
        time.sleep(_BACKOFF_SECONDS * 2**attempt)
        job_id = ray.get(queue.submit_diagonal.remote(seed))
        stats.submitted += 1
        stats.retries += 1
    raise TileError(f"The diagonal job for depolarizing mitigation ended {state} "
                    f"{max_retries + 1} times (last job {job_id}). The tiles are stored; rerun "
                    "to retry, or set qpu.depolarizing_mitigation: false.")
