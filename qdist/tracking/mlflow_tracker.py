"""MLflow as one callback on run events, plus the end-of-run logging of results and model."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from qdist.events import Event, RunFinished, TileCompleted

__all__ = ["MlflowTracker", "default_tracking_uri"]

log = logging.getLogger(__name__)

_METRIC_EVERY_S = 2.0


def default_tracking_uri(out_dir: Path) -> str:
    """Local SQLite MLflow store under the output folder."""
    return f"sqlite:///{(out_dir / 'mlflow.db').resolve()}"


class MlflowTracker:
    """One MLflow run per job; logs live tile progress and the final results."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_dir: Path | None) -> None:
        self.tracking_uri = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            location = artifact_dir.resolve().as_uri() if artifact_dir is not None else None
            exp_id = mlflow.create_experiment(experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        self.experiment_id = exp_id
        self.run_id: str | None = None
        self._last_metric = 0.0

    def start(self, run_name: str, params: Mapping[str, str], tags: Mapping[str, str],
              nested: bool = False) -> str:
        """Start the run (``nested``: as a child of the active run, e.g. one point of a sweep)."""
        run = mlflow.start_run(experiment_id=self.experiment_id, run_name=run_name,
                               tags=dict(tags), nested=nested)
        self.run_id = run.info.run_id
        mlflow.log_params(dict(params))
        return self.run_id

    def __call__(self, event: Event) -> None:
        if isinstance(event, TileCompleted):
            now = time.monotonic()
            if event.done == event.total or now - self._last_metric >= _METRIC_EVERY_S:
                self._last_metric = now
                rate = event.done / event.elapsed if event.elapsed > 0 else 0.0
                mlflow.log_metrics({
                    "tiles_done": event.done,
                    "tiles_per_second": rate,
                    "eta_seconds": (event.total - event.done) / rate if rate else 0.0,
                }, step=event.done)
        elif isinstance(event, RunFinished):
            mlflow.log_metrics({k: v for k, v in event.metrics.items() if np.isfinite(v)})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite ``metrics`` to the active run."""
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)}, step=step)

    def log_artifacts(self, files: Sequence[tuple[str, Path]], texts: Mapping[str, str]) -> None:
        """Log ``(artifact folder, file)`` pairs and small text files by name."""
        for artifact_dir, path in files:
            mlflow.log_artifact(str(path), artifact_path=artifact_dir or None)
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in texts.items():
                p = Path(tmp) / name
                p.write_text(text)
                mlflow.log_artifact(str(p))

    def log_model(self, model: Any, pip_requirements: list[str], schema_rows: Any,
                  register_as: str | None = None) -> tuple[str, str]:
        """Log the pyfunc ``model`` with qdist's own code alongside, so it loads anywhere; with
        ``register_as``, also register it in the model registry. Returns the model URI and
        ``name/version`` (or ``""``).

        ``schema_rows`` (a few input rows) only shape the signature; no data is logged.
        """
        from mlflow.models import infer_signature

        import qdist

        # the output example is built, not predicted: predicting could submit QPU jobs
        signature = infer_signature(schema_rows, model.output_example(len(schema_rows)))
        with warnings.catch_warnings():
            # MLflow nags for an input example; logging one would copy patient rows into it
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pyfunc.log_model(name="model", python_model=model,
                                           pip_requirements=pip_requirements, signature=signature,
                                           code_paths=[str(Path(qdist.__file__).parent)])
        registered = ""
        if register_as:
            version = mlflow.register_model(str(info.model_uri), register_as)
            registered = f"{version.name}/{version.version}"
            log.info("Registered the model as %s (models:/%s/%s).", registered, version.name,
                     version.version)
        return str(info.model_uri), registered

    def end(self, status: str = "FINISHED") -> None:
        mlflow.end_run(status=status)
