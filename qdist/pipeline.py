"""The whole job, step by step: cohort -> encoding -> plan -> store -> tiles on Ray -> assembly ->
training -> MLflow. :func:`run_job` is what ``qdist run`` calls.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from qdist.config import RunConfig, load_config
from qdist.data import Preprocessor, load_cohort
from qdist.data.cohort import Cohort
from qdist.errors import ConfigError, DataError
from qdist.events import (
    Callback,
    PhaseStarted,
    QpuBudgetReady,
    RunFinished,
    RunStarted,
    emit,
)
from qdist.kernel.diagnostics import kernel_diagnostics
from qdist.kernel.feature_maps import build_feature_map, circuit_fingerprint, circuit_to_qpy
from qdist.planning import Plan, make_plan
from qdist.planning.cost import WorkerMemory, cached_blocks, resolve_tile_size

__all__ = ["RunResult", "Prepared", "prepare", "run_job"]

log = logging.getLogger(__name__)

_VERSIONED = ("qdist", "qiskit", "qiskit-aer", "ray", "zarr", "dask", "scikit-learn", "mlflow",
              "numpy")


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

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "store": self.store, "tracking_uri": self.tracking_uri,
            "mlflow_run_id": self.mlflow_run_id, "n_train": self.n_train, "n_test": self.n_test,
            "tiles_total": self.tiles_total, "tiles_computed": self.tiles_computed,
            "metrics": self.metrics, "model_uri": self.model_uri, "out_dir": self.out_dir,
            "seconds": round(self.seconds, 3), "nodes": self.nodes,
        }


@dataclass(frozen=True)
class Prepared:
    """Everything decided before any quantum work: encoded splits, circuit, plan, fingerprint."""

    config: RunConfig
    cohort: Cohort
    preprocessor: Preprocessor
    idx_train: np.ndarray
    idx_test: np.ndarray
    x_train: np.ndarray
    x_test: np.ndarray
    f_train: np.ndarray
    f_test: np.ndarray
    qpy: np.ndarray
    plan: Plan
    fingerprint: str
    data_fingerprint: str

    @property
    def y_train(self) -> np.ndarray:
        return self.cohort.labels[self.idx_train]

    @property
    def y_test(self) -> np.ndarray:
        return self.cohort.labels[self.idx_test]


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def prepare(config: RunConfig) -> Prepared:
    """Load, split and encode the cohort; build the circuit and the plan. No quantum work."""
    cohort = load_cohort(config.data, config.seed)
    n = cohort.n_samples
    n_test = round(config.training.test_fraction * n)
    if n_test < 2 or n - n_test < 2 * config.training.cv_folds:
        raise DataError(
            f"The cohort has {n} samples: with training.test_fraction="
            f"{config.training.test_fraction} that leaves {n - n_test} to train and {n_test} to "
            f"test, too few for training.cv_folds={config.training.cv_folds}. Add samples, or "
            "lower cv_folds."
        )
    idx_train, idx_test = train_test_split(
        np.arange(n), test_size=n_test, stratify=cohort.labels, random_state=config.seed)
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    pre = Preprocessor(config.preprocess, config.feature_map).fit(cohort.features[idx_train])
    x_train = pre.transform(cohort.features[idx_train])
    x_test = pre.transform(cohort.features[idx_test])
    circuit = build_feature_map(config.feature_map)
    qpy = circuit_to_qpy(circuit)
    tile_size = _tile_size(config, len(idx_train))
    plan = make_plan(len(idx_train), len(idx_test), tile_size, config.seed)
    if config.backend.kind == "qpu":
        from qdist.qpu_steps import qpu_gate

        qpu_gate(config, plan)  # refuse an over-budget job before anything exists
    y = cohort.labels
    data_fp = _sha(x_train.tobytes(), x_test.tobytes(), y[idx_train].tobytes(),
                   y[idx_test].tobytes())
    kernel_cfg = json.dumps({"feature_map": config.to_dict()["feature_map"],
                             "backend": config.to_dict()["backend"],
                             "qpu": config.to_dict()["qpu"] if config.backend.kind == "qpu" else None,
                             "tile_size": tile_size, "seed": config.seed}, sort_keys=True)
    fingerprint = _sha(data_fp.encode(), circuit_fingerprint(circuit).encode(), kernel_cfg.encode())
    return Prepared(config, cohort, pre, idx_train, idx_test, x_train, x_test,
                    pre.features(cohort.features[idx_train]), pre.features(cohort.features[idx_test]),
                    qpy, plan, fingerprint, data_fp)


def _tile_size(config: RunConfig, n_train: int) -> int:
    if config.backend.kind == "qpu":
        from qdist.qpu_steps import qpu_tile_size

        return qpu_tile_size(config, n_train)
    tiles = config.tiles
    return resolve_tile_size(tiles.size, tiles.workers, tiles.worker_memory_gb, n_train,
                             config.feature_map.qubits, config.backend.itemsize)


def _compute_tiles(prep: Prepared, missing: list[Any], store_location: str,
                   cbs: list[Callback], diagonal_due: bool = False) -> Any:
    """The tile phase on the connected Ray cluster: statevector workers or the QPU queue."""
    config = prep.config
    if config.backend.kind == "qpu":
        from qdist.orchestration.qpu_queue import run_qpu_tiles

        return run_qpu_tiles(missing, store_location, config.qpu, config.seed,
                             max_retries=config.tiles.max_retries, callbacks=cbs,
                             measure_diagonal=diagonal_due)
    from qdist.orchestration.runner import run_tiles

    memory = WorkerMemory(int(config.tiles.worker_memory_gb * 1024**3), config.backend.itemsize)
    cache = cached_blocks(prep.plan.tile_size, config.feature_map.qubits, memory,
                          prep.plan.train_blocks + prep.plan.test_blocks)
    return run_tiles(missing, store_location, config.backend, workers=config.tiles.workers,
                     cache_blocks=cache, max_retries=config.tiles.max_retries, callbacks=cbs)


def _store_arrays(p: Prepared) -> dict[str, np.ndarray]:
    ids = p.cohort.sample_ids
    return {"x_train": p.x_train, "x_test": p.x_test, "y_train": p.y_train, "y_test": p.y_test,
            "sample_ids_train": ids[p.idx_train], "sample_ids_test": ids[p.idx_test],
            "feature_map_qpy": p.qpy}


def run_job(
    job: str | Path | RunConfig | Mapping[str, Any],
    *,
    out: str | Path | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    callbacks: Sequence[Callback] = (),
    overrides: Mapping[str, Any] | None = None,
) -> RunResult:
    """Run a whole job (a job-file path, a mapping or a :class:`RunConfig`).

    ``out``, ``address`` and ``tracking_uri`` override the job file, like the CLI flags. Running
    the same job on the same ``out`` again resumes: only missing tiles are computed.
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
    from qdist.storage.location import is_remote, resolve_store_location

    if is_remote(config.output.dir):  # the URL and the tracking server are checked before any work
        resolve_store_location(config.output.dir)
        if not config.tracking.uri:
            raise ConfigError(
                f"The job-file field 'tracking.uri' must name an MLflow server when output.dir "
                f"is an object-store URL ({config.output.dir!r}); got None. Set it (or "
                "--tracking-uri), e.g. http://mlflow:5000: the default SQLite file needs a local "
                "output folder.")
    cbs = list(callbacks)
    emit(cbs, PhaseStarted("prepare"))
    prep = prepare(config)
    store_location = resolve_store_location(config.output.dir)  # a local folder is created
    attrs = {"fingerprint": prep.fingerprint, "data_fingerprint": prep.data_fingerprint,
             "config": config.to_dict(), "versions": _versions(), "plan": prep.plan.summary(),
             "feature_map": {"name": config.feature_map.kind,
                             "num_qubits": config.feature_map.qubits},
             "provenance": {"backend": config.to_dict()["backend"], "seed": config.seed}}
    lease = store_lease(store_location)
    lease.acquire()  # one driver per store; refused here, before anything is written
    try:
        return _run_locked(prep, config, store_location, attrs, address, cbs, job_text, started)
    finally:
        lease.release()


def _run_locked(prep: Prepared, config: RunConfig, store_location: str, attrs: dict[str, Any],
                address: str | None, cbs: list[Callback], job_text: str,
                started: float) -> RunResult:
    """Everything after the lease is held: store, tiles, assembly, training, tracking."""
    from qdist.orchestration.runner import default_workers, ensure_ray, release_ray
    from qdist.storage import GramStore
    from qdist.storage.location import is_remote
    from qdist.tracking import MlflowTracker, default_tracking_uri

    remote = is_remote(config.output.dir)  # an object store: no local folder, no local artifacts
    out_dir = Path(config.output.dir)
    qpu = config.backend.kind == "qpu"
    store = GramStore.create(store_location, _store_arrays(prep), prep.plan.tile_size, attrs,
                             shots=qpu)
    missing = store.missing(prep.plan)

    uri = config.tracking.uri or default_tracking_uri(out_dir)
    # a local SQLite store keeps artifacts beside it; a server decides where its artifacts go
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    tracker = MlflowTracker(uri, config.tracking.experiment,
                            out_dir / "mlartifacts" if local and not remote else None)
    run_id = prep.fingerprint[:12]
    mlflow_run_id = tracker.start(f"{config.name}-{run_id}", config.flat(),
                                  {"qdist.run_id": run_id, "qdist.store": store_location})
    cbs.append(tracker)
    try:
        # the QPU's measured diagonal (depolarizing mitigation) is work too, done after the tiles
        diagonal_due = qpu and config.qpu.depolarizing_mitigation and "kdiag_train" not in store.group
        started_ray = ensure_ray(address) if missing or diagonal_due else False
        try:
            workers = (1 if qpu else default_workers(config.tiles.workers, config.backend)) \
                if missing else 0
            emit(cbs, RunStarted(run_id, store_location, len(prep.plan.tiles), len(missing),
                                 workers))
            if qpu:
                from qdist.planning.qpu import qpu_budget

                emit(cbs, QpuBudgetReady(qpu_budget(Plan(prep.plan.n_train, prep.plan.n_test,
                                                         prep.plan.tile_size, tuple(missing)),
                                                    config.qpu.shots)))
            emit(cbs, PhaseStarted("tiles"))
            stats = _compute_tiles(prep, missing, store_location, cbs, diagonal_due)
        finally:
            if started_ray:
                release_ray()
        result = _finish(prep, store, stats, tracker, cbs, job_text)
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()
    return RunResult(
        run_id=run_id, store=store_location, tracking_uri=uri, mlflow_run_id=mlflow_run_id,
        n_train=prep.plan.n_train, n_test=prep.plan.n_test, tiles_total=len(prep.plan.tiles),
        tiles_computed=stats.tiles_computed, metrics=result["metrics"],
        model_uri=result["model_uri"],
        out_dir=config.output.dir if remote else str(out_dir.resolve()),
        seconds=time.perf_counter() - started, nodes=stats.nodes)


def _finish(prep: Prepared, store: Any, stats: Any, tracker: Any, cbs: list[Callback],
            job_text: str) -> dict[str, Any]:
    """Assemble, check, train, diagnose and log; returns metrics and the model URI."""
    import tempfile

    from qdist.assembly import assemble, train_and_evaluate
    from qdist.tracking.model import QuantumKernelModel
    from qdist.tracking.plots import kernel_heatmap, spectrum_plot

    config = prep.config
    emit(cbs, PhaseStarted("assemble"))
    kernels = assemble(store, prep.plan, prep.fingerprint)
    k_train, k_test, noise_metrics = kernels.k_train, kernels.k_test, {}
    texts = {"job.yaml": job_text, "store_uri.txt": store.location + "\n"}
    if config.backend.kind == "qpu":
        from qdist.qpu_steps import qpu_record, repair

        k_train, k_test, noise_metrics = repair(config, store, k_train, k_test)
        job_metrics, ledger = qpu_record(store, stats)
        noise_metrics.update(job_metrics)
        texts["qpu_jobs.json"] = json.dumps(ledger, indent=2, sort_keys=True)
    emit(cbs, PhaseStarted("train"))
    trained = train_and_evaluate(k_train, prep.y_train, k_test, prep.y_test,
                                 prep.f_train, prep.f_test, config.training, config.seed)
    diag, eig = kernel_diagnostics(k_train, prep.y_train)
    if diag["kernel_concentrated"]:
        log.warning("The kernel has concentrated (off-diagonal variance %.2e): it is nearly "
                    "constant. Lower feature_map.bandwidth or the qubit count.",
                    diag["kernel_offdiag_var"])
    metrics = {**trained.metrics, **diag, **noise_metrics,
               "tiles_computed": float(stats.tiles_computed),
               "tile_retries": float(stats.retries),
               "tile_phase_seconds": stats.seconds,
               "entries_per_second": stats.entries_computed / stats.seconds if stats.seconds else 0.0}
    store.update_attrs(completion={"tiles_total": len(prep.plan.tiles), "complete": True,
                                   "tiles_computed_last_run": stats.tiles_computed,
                                   "tile_retries_last_run": stats.retries,
                                   "nodes_last_run": stats.nodes,
                                   "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime())})
    emit(cbs, RunFinished(metrics))
    model = trained.model
    support = model.support_
    qk_model = QuantumKernelModel(
        prep.preprocessor, list(prep.cohort.feature_names), prep.qpy.tobytes(), config.backend,
        prep.x_train[support], model.dual_coef_[0].copy(), float(model.intercept_[0]),
        list(prep.cohort.label_names), qpu=config.qpu if config.backend.kind == "qpu" else None)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        heat = kernel_heatmap(k_train, prep.y_train, t / "kernel_heatmap.png",
                              f"K(train, train), {config.feature_map.kind}, "
                              f"{config.feature_map.qubits} qubits")
        spec = spectrum_plot(eig, t / "kernel_spectrum.png", "Eigen-spectrum of K(train, train)")
        tracker.log_artifacts([("plots", heat), ("plots", spec)], texts)
    import pandas as pd

    schema_rows = pd.DataFrame(prep.cohort.features[prep.idx_train[:2]],
                               columns=list(prep.cohort.feature_names))
    model_uri = tracker.log_model(qk_model, _pip_requirements(), schema_rows)
    return {"metrics": metrics, "model_uri": model_uri}


def _pip_requirements() -> list[str]:
    v = _versions()
    return [f"{name}=={v[name]}" for name in ("qiskit", "scikit-learn", "numpy", "mlflow")
            if v[name] != "not installed"] + ["pandas"]
