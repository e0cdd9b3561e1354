"""Bandwidth sweeps: one job per input scaling ``c``, each a nested MLflow run under a parent run
that compares them.

Every point is an ordinary run (its own store under ``<out>/bandwidth-<c>``, so it resumes like
any run) with ``feature_map.bandwidth = c``. The parent logs, per point (``step`` = its index), the
bandwidth, the CV score, the test score and the off-diagonal variance of the kernel (whose
collapse at large ``c`` is exponential concentration), a ``sweep.md`` table, and the best
bandwidth by mean CV score, chosen on the training folds only, never on the test split.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qdist.config import RunConfig
from qdist.events import Callback

__all__ = ["run_sweep"]

_TEST_SCORE = {"classification": "test_roc_auc", "regression": "test_r2", "clustering": "test_ari"}


def run_sweep(config: RunConfig, job_text: str, address: str | None,
              callbacks: Sequence[Callback] = ()) -> Any:
    """Run the job once per ``feature_map.bandwidth_sweep`` value; return the best point's
    :class:`~qdist.pipeline.RunResult` with every point in ``sweep``."""
    from qdist.pipeline import run_job
    from qdist.storage.location import is_remote
    from qdist.tracking import MlflowTracker, default_tracking_uri

    started = time.perf_counter()
    out = config.output.dir.rstrip("/")
    remote = is_remote(out)
    if not remote:
        Path(out).mkdir(parents=True, exist_ok=True)
    uri = config.tracking.uri or default_tracking_uri(Path(out))
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    tracker = MlflowTracker(uri, config.tracking.experiment,
                            Path(out) / "mlartifacts" if local and not remote else None)
    values = config.feature_map.bandwidth_sweep
    parent = tracker.start(f"{config.name}-bandwidth-sweep", config.flat(),
                           {"qdist.sweep": "bandwidth"})
    task = config.training.task
    points, results = [], []
    try:
        for step, c in enumerate(values):
            point = dataclasses.replace(
                config, feature_map=dataclasses.replace(config.feature_map, bandwidth=c,
                                                        bandwidth_sweep=()),
                output=dataclasses.replace(config.output, dir=f"{out}/bandwidth-{c:g}"),
                tracking=dataclasses.replace(config.tracking, uri=uri))
            result = run_job(point, address=address, callbacks=callbacks, nested=True)
            m = result.metrics
            row = {"bandwidth": c, "cv_mean": m.get("cv_mean", float("nan")),
                   "cv_std": m.get("cv_std", float("nan")),
                   "test_score": m.get(_TEST_SCORE[task], float("nan")),
                   "kernel_offdiag_mean": m["kernel_offdiag_mean"],
                   "kernel_offdiag_var": m["kernel_offdiag_var"],
                   "kernel_concentrated": m["kernel_concentrated"],
                   "mlflow_run_id": result.mlflow_run_id, "store": result.store}
            points.append(row)
            results.append(result)
            tracker.log_metrics({"sweep_bandwidth": c, "sweep_cv_mean": row["cv_mean"],
                                 "sweep_test_score": row["test_score"],
                                 "sweep_kernel_offdiag_var": row["kernel_offdiag_var"]}, step=step)
        scored = [i for i, p in enumerate(points) if p["cv_mean"] == p["cv_mean"]]
        best = max(scored, key=lambda i: points[i]["cv_mean"]) if scored else 0
        tracker.log_metrics({"best_bandwidth": points[best]["bandwidth"],
                             "best_cv_mean": points[best]["cv_mean"],
                             "best_test_score": points[best]["test_score"]})
        tracker.log_artifacts([], {"sweep.md": _table(points, best, task, job_text)})
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end()
    return dataclasses.replace(results[best], mlflow_run_id=parent, sweep=points,
                               seconds=time.perf_counter() - started)


def _table(points: list[dict[str, Any]], best: int, task: str, job_text: str) -> str:
    lines = ["# Bandwidth sweep", "",
             f"Best by mean CV score (training folds only): bandwidth {points[best]['bandwidth']:g}.",
             "", f"| bandwidth | CV mean | CV std | {_TEST_SCORE[task]} | off-diagonal variance |",
             "|---|---|---|---|---|"]
    lines += [f"| {p['bandwidth']:g}{' (best)' if i == best else ''} | {p['cv_mean']:.3f} | "
              f"{p['cv_std']:.3f} | {p['test_score']:.3f} | {p['kernel_offdiag_var']:.3g}"
              f"{' (concentrated)' if p['kernel_concentrated'] else ''} |"
              for i, p in enumerate(points)]
    return "\n".join([*lines, "", "Job file:", "", "```", job_text.strip(), "```", ""])
