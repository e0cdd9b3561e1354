"""The whole job, step by step: cohort -> encoding -> plan -> store -> tiles on Ray -> assembly ->
training -> MLflow. :func:`run_job` is what ``qdist run`` calls.

A run has one kernel (``fusion.mode`` ``concat`` or ``subregister``) or one per omics block
(``multiple_kernel``). Each kernel is a :class:`KernelPart` with its own circuit, plan and Zarr
store; the tile machinery, resume and checks are the same for all of them, and the combined
kernel is formed after assembly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qdist.cohort_steps import encode_targets, impute_strategy, split
from qdist.config import RunConfig, load_config
from qdist.data import Preprocessor, load_cohort
from qdist.data.cohort import Cohort, Target
from qdist.events import Callback, PhaseStarted, QpuBudgetReady, RunStarted, TileStats, emit
from qdist.finish import finish, versions
from qdist.incremental import (
    check_cache,
    load_preprocessor,
    save_preprocessor,
    tiles_from_cache,
)
from qdist.kernel.feature_maps import (
    circuit_fingerprint,
    circuit_from_qpy,
    circuit_to_qpy,
    kernel_circuits,
)
from qdist.landmarks import choose_landmarks
from qdist.planning import Plan, make_plan
from qdist.planning.cost import WorkerMemory, cached_blocks, choose_method, resolve_tile_size
from qdist.planning.plan import landmark_plan

__all__ = ["RunResult", "Prepared", "KernelPart", "prepare", "run_job", "part_location"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RunResult:
    """What a finished job produced (the ``--json`` summary is :meth:`summary`)."""

    run_id: str
    store: str
    tracking_uri: str
    mlflow_run_id: str
    n_train: int
    n_test: int
    tiles_total: int
    tiles_computed: int
    metrics: dict[str, float]
    model_uri: str
    out_dir: str
    seconds: float
    nodes: dict[str, int] = field(default_factory=dict)
    task: str = "classification"
    targets: dict[str, str] = field(default_factory=dict)
    """Every trained target -> its task (the primary first; its metrics are unprefixed, the
    others' carry ``<target>/``)."""
    registered_model: str = ""
    """``name/version`` in the MLflow model registry, when ``tracking.register_model`` is set."""
    stores: list[str] = field(default_factory=list)
    """Every store of the run: ``[store]``, or one per block under ``multiple_kernel``."""
    sweep: list[dict[str, Any]] = field(default_factory=list)
    """A bandwidth sweep's points (bandwidth, CV and test scores, concentration, run ids); the
    rest of this result is then the best point's, and ``mlflow_run_id`` the parent run."""

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "store": self.store, "tracking_uri": self.tracking_uri,
            "mlflow_run_id": self.mlflow_run_id, "n_train": self.n_train, "n_test": self.n_test,
            "tiles_total": self.tiles_total, "tiles_computed": self.tiles_computed,
            "metrics": self.metrics, "model_uri": self.model_uri, "out_dir": self.out_dir,
            "seconds": round(self.seconds, 3), "nodes": self.nodes, "task": self.task,
            "targets": self.targets, "registered_model": self.registered_model,
            "stores": self.stores, "sweep": self.sweep,
        }


@dataclass(frozen=True)
class KernelPart:
    """One kernel of the run: its circuit (QPY), its parameter columns, plan and fingerprint."""

    name: str
    """``all``, or the block's name under ``multiple_kernel``."""
    columns: slice
    """Columns of ``x_train``/``x_test`` (circuit parameters) this kernel reads."""
    qubits: int
    qpy: np.ndarray
    plan: Plan
    fingerprint: str
    """Identifies the part's store: data, circuit, backend, tile size, seed."""


@dataclass(frozen=True)
class Prepared:
    """Everything decided before any quantum work: encoded splits, kernels, plans, fingerprints."""

    config: RunConfig
    cohort: Cohort
    preprocessor: Preprocessor
    idx_train: np.ndarray
    idx_test: np.ndarray
    x_train: np.ndarray
    x_test: np.ndarray
    f_train: np.ndarray
    f_test: np.ndarray
    parts: tuple[KernelPart, ...]
    targets: dict[str, Target]
    """Every target, encoded for its task (primary first); empty for unlabelled clustering."""
    fingerprint: str
    data_fingerprint: str
    method: str = "exact"
    """``exact`` or ``nystrom`` (:func:`qdist.planning.cost.choose_method`)."""
    landmarks: int = 0
    """Nystrom: the first ``landmarks`` training samples are the landmarks; 0 on the exact path."""

    @property
    def plan(self) -> Plan:
        return self.parts[0].plan

    @property
    def qpy(self) -> np.ndarray:
        return self.parts[0].qpy

    @property
    def primary(self) -> Target | None:
        name = self.config.data.label_column
        return self.targets.get(name) if name is not None else None

    @property
    def y_train(self) -> np.ndarray:
        """The primary target on the training split (-1 for unlabelled clustering)."""
        t = self.primary
        return t.values[self.idx_train] if t is not None else np.full(self.idx_train.size, -1)

    @property
    def y_test(self) -> np.ndarray:
        t = self.primary
        return t.values[self.idx_test] if t is not None else np.full(self.idx_test.size, -1)


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def prepare(config: RunConfig) -> Prepared:
    """Load, split and encode the cohort; build the circuits and the plans. No quantum work."""
    cohort = load_cohort(config.data, config.seed)
    targets = encode_targets(config, cohort)
    idx_train, idx_test = split(config, cohort, targets)
    if config.preprocess.frozen_from:  # an earlier run's fit: old samples keep their encoding
        pre = load_preprocessor(config.preprocess.frozen_from, cohort.feature_names, cohort.blocks)
    else:
        pre = Preprocessor(config.preprocess, config.feature_map, config.fusion, cohort.blocks,
                           impute_strategy(config)).fit(cohort.features[idx_train])
    x_train = pre.transform(cohort.features[idx_train])
    x_test = pre.transform(cohort.features[idx_test])
    circuits = kernel_circuits(config.feature_map, config.fusion, pre.parts)
    sizes = [_tile_size(config, len(idx_train), c.num_qubits) for _, c, _ in circuits]
    method = choose_method(config.training.method, len(idx_train), len(idx_test),
                           config.training.exact_max_gb)
    check_cache(config, method)
    landmarks = 0
    if method == "nystrom":
        sizes = [min(sizes)] * len(sizes)  # one grid for every block kernel: whole landmark tiles
        landmarks, order = choose_landmarks(config, x_train, circuits, sizes[0])
        idx_train, x_train = idx_train[order], x_train[order]  # the landmarks come first
    y_train, y_test = _store_targets(targets, config, idx_train, idx_test)
    data_fp = _sha(x_train.tobytes(), x_test.tobytes(), y_train.tobytes(), y_test.tobytes())
    parts = []
    for (name, circuit, cols), tile_size in zip(circuits, sizes, strict=True):
        q = circuit.num_qubits
        plan = make_plan(len(idx_train), len(idx_test), tile_size, config.seed)
        if landmarks and not config.training.nystrom.full_gram:
            plan = landmark_plan(plan, landmarks)
        part_fp = _sha(x_train[:, cols].tobytes(), x_test[:, cols].tobytes(), y_train.tobytes(),
                       y_test.tobytes())
        kernel_cfg = json.dumps({"feature_map": config.to_dict()["feature_map"],
                                 "fusion": config.to_dict()["fusion"] if name != "all" or
                                 config.fusion.mode != "concat" else None,
                                 "part": name,
                                 "backend": {k: v for k, v in config.to_dict()["backend"].items()
                                             if k != "projected_gamma_sweep"},
                                 "qpu": config.to_dict()["qpu"] if config.backend.kind == "qpu"
                                 else None,
                                 "tile_size": tile_size, "seed": config.seed}, sort_keys=True)
        fp = _sha(part_fp.encode(), circuit_fingerprint(circuit).encode(), kernel_cfg.encode())
        parts.append(KernelPart(name, cols, q, circuit_to_qpy(circuit), plan, fp))
    if config.backend.kind == "qpu":
        from qdist.qpu_steps import qpu_gate

        qpu_gate(config, [p.plan for p in parts])  # refuse an over-budget job before anything exists
    fingerprint = parts[0].fingerprint if len(parts) == 1 else _sha(
        *(p.fingerprint.encode() for p in parts), json.dumps(config.to_dict()["fusion"]).encode())
    return Prepared(config, cohort, pre, idx_train, idx_test, x_train, x_test,
                    pre.features(cohort.features[idx_train]), pre.features(cohort.features[idx_test]),
                    tuple(parts), targets, fingerprint, data_fp, method, landmarks)


def _store_targets(targets: dict[str, Target], config: RunConfig, idx_train: np.ndarray,
                   idx_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y_train``/``y_test`` as stored: the primary target (-1 when there is none)."""
    t = targets.get(config.data.label_column or "")
    if t is None:
        return np.full(idx_train.size, -1), np.full(idx_test.size, -1)
    return t.values[idx_train], t.values[idx_test]


def _tile_size(config: RunConfig, n_train: int, qubits: int) -> int:
    if config.backend.kind == "qpu":
        from qdist.qpu_steps import qpu_tile_size

        return qpu_tile_size(config, n_train)
    tiles = config.tiles
    if config.backend.kind == "mps":  # no 2^q state: the tile edge is the user's, or 128
        return min(tiles.size or 128, n_train)
    return resolve_tile_size(tiles.size, tiles.workers, tiles.worker_memory_gb, n_train, qubits,
                             config.backend.itemsize)


def part_location(base: str, part: KernelPart, parts: Sequence[KernelPart]) -> str:
    """The store of ``part``: ``base`` for a single kernel, ``<base stem>-<block>.zarr`` beside it
    for each block kernel of ``multiple_kernel``."""
    if len(parts) == 1:
        return base
    stem = base[: -len(".zarr")] if base.endswith(".zarr") else base.rstrip("/")
    return f"{stem}-{part.name}.zarr"


def _compute_tiles(prep: Prepared, part: KernelPart, missing: list[Any], store_location: str,
                   cbs: list[Callback], diagonal_due: bool = False) -> Any:
    """The tile phase of one kernel on the connected Ray cluster: statevector workers or the
    QPU queue."""
    config = prep.config
    if config.backend.kind == "qpu":
        from qdist.orchestration.qpu_queue import run_qpu_tiles

        return run_qpu_tiles(missing, store_location, config.qpu, config.seed,
                             max_retries=config.tiles.max_retries, callbacks=cbs,
                             measure_diagonal=diagonal_due)
    from qdist.orchestration.runner import run_tiles

    budget = int(config.tiles.worker_memory_gb * 1024**3)
    if config.backend.kind == "mps":
        from qdist.backends.mps import MpsBackend

        block = part.plan.tile_size * MpsBackend.bytes_per_sample(part.qubits,
                                                                  config.backend.max_bond)
        cache = max(2, budget // max(block, 1))
    else:
        memory = WorkerMemory(budget, config.backend.itemsize)
        cache = cached_blocks(part.plan.tile_size, part.qubits, memory,
                              part.plan.train_blocks + part.plan.test_blocks)
    return run_tiles(missing, store_location, config.backend, workers=config.tiles.workers,
                     cache_blocks=cache, max_retries=config.tiles.max_retries, callbacks=cbs)


def _store_arrays(p: Prepared, part: KernelPart | None = None) -> dict[str, np.ndarray]:
    part = part or p.parts[0]
    ids = p.cohort.sample_ids
    y_train, y_test = _store_targets(p.targets, p.config, p.idx_train, p.idx_test)
    return {"x_train": p.x_train[:, part.columns], "x_test": p.x_test[:, part.columns],
            "y_train": y_train, "y_test": y_test,
            "sample_ids_train": ids[p.idx_train], "sample_ids_test": ids[p.idx_test],
            "feature_map_qpy": part.qpy}


def run_job(
    job: str | Path | RunConfig | Mapping[str, Any],
    *,
    out: str | Path | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    callbacks: Sequence[Callback] = (),
    overrides: Mapping[str, Any] | None = None,
    nested: bool = False,
) -> RunResult:
    """Run a whole job (a job-file path, a mapping or a :class:`RunConfig`).

    ``out``, ``address`` and ``tracking_uri`` override the job file, like the CLI flags. Running
    the same job on the same ``out`` again resumes: only missing tiles are computed. A job with
    ``feature_map.bandwidth_sweep`` runs once per bandwidth (:mod:`qdist.sweep`); ``nested``
    makes the MLflow run a child of the active one (how the sweep runs its points).
    """
    started = time.perf_counter()
    flags = dict(overrides or {})
    if out is not None:
        flags["output.dir"] = str(out)
    if tracking_uri is not None:
        flags["tracking.uri"] = tracking_uri
    if isinstance(job, RunConfig):
        config = load_config(job.to_dict(), flags) if flags else job
        job_text = json.dumps(job.to_dict(), indent=2)
    else:
        config = load_config(job, flags)
        job_text = Path(job).read_text() if not isinstance(job, Mapping) else json.dumps(
            config.to_dict(), indent=2)
    from qdist.storage.lease import store_lease
    from qdist.storage.location import check_output, resolve_store_location

    check_output(config.output.dir, config.tracking.uri)  # an S3 URL and its MLflow, before any work
    if config.feature_map.bandwidth_sweep:
        from qdist.sweep import run_sweep

        return run_sweep(config, job_text, address, callbacks)
    cbs = list(callbacks)
    emit(cbs, PhaseStarted("prepare"))
    prep = prepare(config)
    store_location = resolve_store_location(config.output.dir)  # a local folder is created
    lease = store_lease(store_location)
    lease.acquire()  # one driver per run's stores; refused here, before anything is written
    try:
        return _run_locked(prep, config, store_location, address, cbs, job_text, started, nested)
    finally:
        lease.release()


def _part_attrs(prep: Prepared, part: KernelPart) -> dict[str, Any]:
    config = prep.config
    return {"fingerprint": part.fingerprint, "data_fingerprint": prep.data_fingerprint,
            "config": config.to_dict(), "versions": versions(), "plan": part.plan.summary(),
            "feature_map": {"name": config.feature_map.kind, "num_qubits": part.qubits,
                            "fusion": config.fusion.mode, "part": part.name},
            "provenance": {"backend": config.to_dict()["backend"], "seed": config.seed}}


def _run_locked(prep: Prepared, config: RunConfig, store_location: str, address: str | None,
                cbs: list[Callback], job_text: str, started: float,
                nested: bool = False) -> RunResult:
    """Everything after the lease is held: stores, tiles, assembly, training, tracking."""
    from qdist.orchestration.runner import default_workers, ensure_ray, release_ray
    from qdist.storage import GramStore
    from qdist.storage.location import is_remote
    from qdist.tracking import MlflowTracker, default_tracking_uri

    remote = is_remote(config.output.dir)  # an object store: no local folder, no local artifacts
    out_dir = Path(config.output.dir)
    qpu = config.backend.kind == "qpu"
    stores, missing = {}, {}
    for part in prep.parts:
        loc = part_location(store_location, part, prep.parts)
        stores[part.name] = GramStore.create(loc, _store_arrays(prep, part), part.plan.tile_size,
                                             _part_attrs(prep, part), shots=qpu,
                                             projected=3 * part.qubits
                                             if config.backend.kernel == "projected" else 0)
        missing[part.name] = stores[part.name].missing(part.plan)

    if not remote:  # for preprocess.frozen_from in a later run
        save_preprocessor(out_dir, prep.preprocessor, prep.cohort.feature_names, prep.cohort.blocks)
    uri = config.tracking.uri or default_tracking_uri(out_dir)
    # a local SQLite store keeps artifacts beside it; a server decides where its artifacts go
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    tracker = MlflowTracker(uri, config.tracking.experiment,
                            out_dir / "mlartifacts" if local and not remote else None)
    run_id = prep.fingerprint[:12]
    mlflow_run_id = tracker.start(f"{config.name}-{run_id}", config.flat(),
                                  {"qdist.run_id": run_id, "qdist.store": store_location},
                                  nested=nested)
    cbs.append(tracker)
    part_stats: dict[str, TileStats] = {}  # what this run computed, per kernel
    try:
        # the QPU's measured diagonal (depolarizing mitigation) is work too, done after the tiles
        diagonal_due = {name: qpu and config.qpu.depolarizing_mitigation and
                        "kdiag_train" not in s.group for name, s in stores.items()}
        work = any(missing.values()) or any(diagonal_due.values())
        started_ray = ensure_ray(address) if work else False
        try:
            for part in prep.parts:
                todo, store = missing[part.name], stores[part.name]
                workers = (1 if qpu else default_workers(config.tiles.workers, config.backend)) \
                    if todo else 0
                emit(cbs, RunStarted(run_id, store.location, len(part.plan.tiles), len(todo),
                                     workers))
                if qpu:
                    from qdist.planning.qpu import qpu_budget

                    emit(cbs, QpuBudgetReady(qpu_budget(Plan(part.plan.n_train, part.plan.n_test,
                                                             part.plan.tile_size, tuple(todo)),
                                                        config.qpu.shots)))
                emit(cbs, PhaseStarted("tiles" if len(prep.parts) == 1 else f"tiles ({part.name})"))
                if config.tiles.cache:  # the shared kernel cache computes what it has not seen
                    part_stats[part.name] = tiles_from_cache(
                        prep.x_train[:, part.columns], prep.x_test[:, part.columns],
                        circuit_from_qpy(part.qpy), store, todo, config, address, cbs)
                else:
                    part_stats[part.name] = _compute_tiles(prep, part, todo, store.location, cbs,
                                                           diagonal_due[part.name])
        finally:
            if started_ray:
                release_ray()
        result = finish(prep, stores, part_stats, tracker, cbs, job_text)
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()
    plan = prep.plan
    totals = TileStats.sum(part_stats.values())
    return RunResult(
        run_id=run_id, store=store_location, tracking_uri=uri, mlflow_run_id=mlflow_run_id,
        n_train=plan.n_train, n_test=plan.n_test,
        tiles_total=sum(len(p.plan.tiles) for p in prep.parts),
        tiles_computed=totals.tiles_computed, metrics=result["metrics"],
        model_uri=result["model_uri"],
        out_dir=config.output.dir if remote else str(out_dir.resolve()),
        seconds=time.perf_counter() - started, nodes=totals.nodes, task=config.training.task,
        targets={t.name: (config.training.task if t.name == config.data.label_column else t.task)
                 for t in prep.targets.values()} or {"(none)": "clustering"},
        registered_model=result["registered"], stores=[s.location for s in stores.values()])
