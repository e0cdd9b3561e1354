"""After the tiles: assemble and check every kernel, fuse block kernels, train every target
beside its baselines, diagnose the kernel, and log results, comparison and model to MLflow.
Called by :func:`qdist.pipeline.run_job` once the run's stores are complete.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qdist.errors import ConfigError
from qdist.events import Callback, PhaseStarted, RunFinished, TileStats, emit
from qdist.kernel.diagnostics import kernel_diagnostics

if TYPE_CHECKING:
    from qdist.pipeline import Prepared

__all__ = ["finish", "versions"]

log = logging.getLogger(__name__)

_VERSIONED = ("qdist", "qiskit", "qiskit-aer", "ray", "zarr", "dask", "scikit-learn", "mlflow",
              "numpy")


def versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out



def _kernels(prep: Prepared, stores: dict[str, Any], totals: TileStats,
             texts: dict[str, str]) -> tuple[np.ndarray, np.ndarray, dict[str, float],
                                             dict[str, float], dict[str, Any]]:
    """Assemble and check every part; QPU noise handling; combine the block kernels."""
    from qdist.assembly import assemble
    from qdist.kernel.fusion import alignment_weights, combine_kernels

    config = prep.config
    trains, tests, metrics = {}, {}, {}
    ledgers: dict[str, Any] = {}
    lazy: dict[str, Any] = {}
    m = prep.landmarks
    for part in prep.parts:
        store = stores[part.name]
        if m:  # Nystrom: only K(train, L) and K(test, L) are loaded
            from qdist.assembly.assemble import assemble_columns

            k_train, k_test, lazy[part.name] = assemble_columns(store, part.plan, m,
                                                                part.fingerprint)
        else:
            kernels = assemble(store, part.plan, part.fingerprint)
            k_train, k_test = kernels.k_train, kernels.k_test
        if config.backend.kind == "qpu" and not m:
            from qdist.qpu_steps import qpu_record, repair

            k_train, k_test, noise = repair(config, store, k_train, k_test, part.qubits)
            ledgers[part.name] = qpu_record(store)
            metrics.update(noise if len(prep.parts) == 1 else
                           {f"{part.name}/{k}": v for k, v in noise.items()})
        trains[part.name], tests[part.name] = k_train, k_test
    if config.backend.kind == "qpu":
        metrics.update({"qpu_jobs_submitted": float(totals.submitted),
                        "qpu_jobs_reattached": float(totals.reattached)})
        ledger = ledgers["all"] if len(ledgers) == 1 and "all" in ledgers else ledgers
        texts["qpu_jobs.json"] = json.dumps(ledger, indent=2, sort_keys=True)
    if len(prep.parts) == 1:
        return trains[prep.parts[0].name], tests[prep.parts[0].name], metrics, {}, lazy
    primary = prep.primary
    rows = slice(0, m or prep.idx_train.size)  # alignment on the square block: K(L, L) for Nystrom
    weights = dict(config.fusion.weights) or alignment_weights(
        {b: k[rows] for b, k in trains.items()},
        primary.values[prep.idx_train][rows] if primary is not None else None,
        config.training.task)
    absent = [p.name for p in prep.parts if p.name not in weights]
    if absent:
        raise ConfigError(f"The job-file field 'fusion.weights' must give every block a weight; "
                          f"got {dict(config.fusion.weights)}, without {absent}. Add them, or "
                          "leave fusion.weights empty to choose weights by kernel-target alignment.")
    weights = {p.name: float(weights[p.name]) for p in prep.parts}
    for part in prep.parts:
        metrics[f"{part.name}/kernel_target_alignment"] = \
            _diagnostics(prep, trains[part.name][rows])[0]["kernel_target_alignment"]
        metrics[f"fusion_weight_{part.name}"] = weights[part.name]
    mode = config.fusion.combine
    return combine_kernels(trains, weights, mode), combine_kernels(tests, weights, mode), metrics, \
        weights, lazy


def _diagnostics(prep: Prepared, k_train: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Kernel diagnostics of the square ``k_train`` (the first ``len(k_train)`` training samples:
    all of them, or the landmarks) against the primary target, with the geometric difference to
    the classical RBF kernel of the same preprocessed features."""
    from qdist.kernel.diagnostics import rbf_gram

    n = k_train.shape[0]
    primary = prep.primary
    task = primary.task if primary is not None else "classification"
    y = _diag_labels(prep)[:n] if primary is not None else np.arange(n) % 2
    diag, eig = kernel_diagnostics(k_train, y, task=task, k_classical=rbf_gram(prep.f_train[:n]))
    if primary is None:  # unlabelled clustering: there is no target to align with
        diag["kernel_target_alignment"] = diag["kernel_target_alignment_centered"] = float("nan")
    return diag, eig


def _diag_labels(prep: Prepared) -> np.ndarray:
    return prep.y_train if prep.primary is not None else np.zeros(prep.idx_train.size, dtype=int)


def finish(prep: Prepared, stores: dict[str, Any], part_stats: Mapping[str, TileStats],
           tracker: Any, cbs: list[Callback], job_text: str) -> dict[str, Any]:
    """Assemble, check, combine, train every target, diagnose and log. ``part_stats``: what this
    run's tile phase did for each kernel (one per ``prep.parts``)."""
    import tempfile

    from qdist.assembly.nystrom_task import train_nystrom
    from qdist.assembly.train import train_task
    from qdist.tracking.plots import kernel_heatmap, spectrum_plot

    config = prep.config
    totals = TileStats.sum(part_stats.values())
    emit(cbs, PhaseStarted("assemble"))
    texts = {"job.yaml": job_text,
             "store_uri.txt": "".join(s.location + "\n" for s in stores.values())}
    k_train, k_test, metrics, weights, lazy = _kernels(prep, stores, totals, texts)
    backend = config.backend
    if backend.kernel == "projected" and backend.projected_gamma_sweep:
        k_train, k_test, backend = _gamma_sweep(prep, stores, metrics, texts)
    emit(cbs, PhaseStarted("train"))
    task = config.training.task
    primary = prep.primary
    results = {}
    for name, target in ({"": primary} if task == "clustering" and primary is None
                         else {t.name: t for t in prep.targets.values()}).items():
        is_primary = name in ("", config.data.label_column)
        t_task = task if is_primary else target.task  # type: ignore[union-attr]
        y_tr = target.values[prep.idx_train] if target is not None else None
        y_te = target.values[prep.idx_test] if target is not None else None
        trainer = train_nystrom if prep.landmarks else train_task
        res = trainer(t_task, k_train, y_tr, k_test, y_te, prep.f_train, prep.f_test,
                      config.training, config.seed,
                      target.class_names if target is not None else ())
        results[name] = res
        metrics.update(res.metrics if is_primary else
                       {f"{name}/{k}": v for k, v in res.metrics.items()})
    main = results[config.data.label_column or ""]
    m = prep.landmarks
    diag, eig = _diagnostics(prep, k_train[:m] if m else k_train)
    if m:
        diag.update(_whole_gram(prep, stores, lazy, weights, main))
    if diag["kernel_concentrated"]:
        log.warning("The kernel has concentrated (off-diagonal variance %.2e): it is nearly "
                    "constant. Lower feature_map.bandwidth or the qubit count.",
                    diag["kernel_offdiag_var"])
    metrics.update({**diag,
                    "tiles_computed": float(totals.tiles_computed),
                    "tile_retries": float(totals.retries),
                    "tile_phase_seconds": totals.seconds,
                    "entries_per_second": totals.entries_computed / totals.seconds
                    if totals.seconds else 0.0,
                    **{f"mps_{k}": float(v) for k, v in totals.mps.items()},
                    **({"cache_tiles_reused": float(totals.tiles_reused)} if config.tiles.cache else {})})
    for part in prep.parts:  # each store records what this run did for its own kernel
        done = part_stats[part.name]
        stores[part.name].update_attrs(completion={"tiles_total": len(part.plan.tiles),
                                       "complete": True,
                                       "tiles_computed_last_run": done.tiles_computed,
                                       "tile_retries_last_run": done.retries,
                                       "nodes_last_run": done.nodes,
                                       "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                    time.gmtime())})
    emit(cbs, RunFinished(metrics))
    texts["comparison.md"] = _comparison_markdown(prep, metrics, results)
    if main.assignments is not None:
        texts["strata.csv"] = _strata_csv(prep, main, k_test)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        which = "K(landmarks, landmarks)" if m else "K(train, train)"
        heat = kernel_heatmap(k_train[:m] if m else k_train, _diag_labels(prep)[:m or None],
                              t / "kernel_heatmap.png",
                              f"{which}, {config.feature_map.kind}, "
                              f"{config.feature_map.qubits} qubits, {config.fusion.mode}")
        spec = spectrum_plot(eig, t / "kernel_spectrum.png", f"Eigen-spectrum of {which}")
        tracker.log_artifacts([("plots", heat), ("plots", spec)], texts)
    model_uri, registered = "", ""
    if main.model is not None:
        import pandas as pd

        model = _pyfunc(prep, main, weights, backend)
        schema_rows = pd.DataFrame(prep.cohort.features[prep.idx_train[:2]],
                                   columns=list(prep.cohort.feature_names))
        model_uri, registered = tracker.log_model(model, _pip_requirements(), schema_rows,
                                                  register_as=config.tracking.register_model)
    return {"metrics": metrics, "model_uri": model_uri, "registered": registered}


def _whole_gram(prep: Prepared, stores: dict[str, Any], lazies: dict[str, Any],
                weights: dict[str, float], main: Any) -> dict[str, float]:
    """Nystrom with ``full_gram``: diagnostics of the whole stored Gram, streamed with Dask
    (never in memory at once), and, where the exact SVC fits, its accuracy gap to Nystrom."""
    from qdist.assembly.nystrom import gram_moments_dask, nystrom_gap
    from qdist.planning.cost import exact_bytes

    config = prep.config
    if not config.training.nystrom.full_gram or not lazies:
        return {"diagnostics_on_landmarks_only": 1.0}
    lazy = list(lazies.values())
    if len(lazy) == 1:
        k = lazy[0]
    elif config.fusion.combine == "sum":
        total = sum(weights.values())
        k = sum(weights[b] / total * lazies[b] for b in lazies)
    else:
        return {"diagnostics_on_landmarks_only": 1.0}
    primary = prep.primary
    out = gram_moments_dask(k, _diag_labels(prep) if primary is not None else None,
                            primary.task if primary is not None else "auto")
    out["diagnostics_on_landmarks_only"] = 0.0
    n_train, n_test = prep.idx_train.size, prep.idx_test.size
    if (primary is not None and primary.task == "classification" and len(lazy) == 1
            and exact_bytes(n_train, n_test) <= config.training.exact_max_gb * 1024**3):
        from qdist.assembly import assemble

        part = prep.parts[0]
        dense = assemble(stores[part.name], part.plan, part.fingerprint)
        c = main.model.get_params().get("C") or 1.0
        gap = nystrom_gap(dense.k_train, prep.y_train, dense.k_test, prep.y_test,
                          np.arange(prep.landmarks), c, config.training.nystrom.model,
                          config.seed)
        out.update({k: v for k, v in gap.items() if k != "nystrom_landmarks"})
    return out


def _gamma_sweep(prep: Prepared, stores: dict[str, Any], metrics: dict[str, float],
                 texts: dict[str, str]) -> tuple[np.ndarray, np.ndarray, Any]:
    """Projected kernels: score every gamma by repeated CV on the training folds from the
    per-sample features in the store (no quantum work), and return the best gamma's kernels
    and the backend spec the model gets."""
    import dataclasses

    from qdist.assembly.train import cv_score
    from qdist.kernel.projected import projected_kernel_tile

    config = prep.config
    if len(prep.parts) != 1 or prep.landmarks or prep.primary is None:
        raise ConfigError("The job-file field 'backend.projected_gamma_sweep' needs one kernel "
                          "(fusion.mode concat or subregister), training.method exact and a "
                          f"target; got fusion.mode {config.fusion.mode!r}, method {prep.method!r}."
                          " Remove the sweep or change those settings.")
    store = stores[prep.parts[0].name]
    f_train, f_test = store.read("proj_train"), store.read("proj_test")
    gammas = [config.backend.projected_gamma, *config.backend.projected_gamma_sweep]
    task = config.training.task
    scores = []
    for step, g in enumerate(gammas):
        mean, std = cv_score(task, projected_kernel_tile(f_train, None, g), prep.y_train,
                             config.training, config.seed)
        scores.append((mean, std))
        metrics[f"gamma_sweep_gamma_{step}"] = g
        metrics[f"gamma_sweep_cv_mean_{step}"] = mean
    best = int(np.nanargmax([m for m, _ in scores]))
    metrics["projected_gamma_best"] = gammas[best]
    texts["gamma_sweep.md"] = "\n".join(
        ["# Projected-kernel gamma sweep (CV on the training folds, stored features)", "",
         "| gamma | CV mean | CV std |", "|---|---|---|",
         *(f"| {g:g}{' (best)' if i == best else ''} | {m:.3f} | {s:.3f} |"
           for i, (g, (m, s)) in enumerate(zip(gammas, scores, strict=True)))]) + "\n"
    g = gammas[best]
    return (projected_kernel_tile(f_train, None, g), projected_kernel_tile(f_test, f_train, g),
            dataclasses.replace(config.backend, projected_gamma=g, projected_gamma_sweep=()))


def _pyfunc(prep: Prepared, result: Any, weights: dict[str, float], backend: Any) -> Any:
    """The primary target's model as a pyfunc holding only the support vectors' encodings."""
    from sklearn.kernel_ridge import KernelRidge

    from qdist.tracking.model import KernelComponent, QuantumKernelModel

    config = prep.config
    support = result.support
    components = [KernelComponent(p.name, p.qpy.tobytes(), p.columns,
                                  prep.x_train[support][:, p.columns]) for p in prep.parts]
    ridge = isinstance(result.model, KernelRidge)  # its fitted object keeps the training kernel
    return QuantumKernelModel(
        prep.preprocessor, list(prep.cohort.feature_names), components, backend,
        task=result.task, estimator=None if ridge else result.model, support=support,
        n_train=prep.idx_train.size, class_names=result.class_names,
        calibrator=result.calibrator,
        dual_coef=np.asarray(result.model.dual_coef_).ravel() if ridge else None,
        weights=weights or None, combine=config.fusion.combine, projection=result.projection,
        qpu=config.qpu if config.backend.kind == "qpu" else None)


def _comparison_markdown(prep: Prepared, metrics: dict[str, float], results: dict[str, Any]) -> str:
    """Quantum and classical metrics side by side, one table per target."""
    from qdist.assembly.train import comparison_rows

    lines = [f"# {prep.config.name}: quantum kernel vs classical baselines", ""]
    for name, res in results.items():
        is_primary = name in ("", prep.config.data.label_column)
        cols, rows = comparison_rows(metrics, res.task, "" if is_primary else f"{name}/")
        title = name or "(no target)"
        scoring = f"; CV: {res.cv_scoring}, {prep.config.training.cv_folds} folds x " \
                  f"{prep.config.training.cv_repeats} repeats" if res.cv_scoring else ""
        lines += [f"## {title} ({res.task}{scoring})", "",
                  "| model | " + " | ".join(cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        lines += ["| " + model + " | " + " | ".join(f"{v:.3f}" for v in vals) + " |"
                  for model, vals in rows]
        lines.append("")
    return "\n".join(lines)


def _strata_csv(prep: Prepared, result: Any, k_test: np.ndarray) -> str:
    """Clustering: each sample's stratum, by pseudonymous id (test samples assigned)."""
    from qdist.assembly.train import assign_to_strata

    ids = prep.cohort.sample_ids
    test = assign_to_strata(k_test, result.assignments, prep.config.training.n_clusters)
    rows = [f"{ids[i]},train,{c}" for i, c in zip(prep.idx_train, result.assignments, strict=True)]
    rows += [f"{ids[i]},test,{c}" for i, c in zip(prep.idx_test, test, strict=True)]
    return "sample_id,split,stratum\n" + "\n".join(rows) + "\n"


def _pip_requirements() -> list[str]:
    v = versions()
    return [f"{name}=={v[name]}" for name in ("qiskit", "scikit-learn", "numpy", "mlflow")
            if v[name] != "not installed"] + ["pandas"]
