"""Bandwidth sweeps: one nested MLflow run per input scaling under a parent that compares them."""

from __future__ import annotations

import pytest

from qdist.api import run_job

from .conftest import small_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def test_sweep_runs_nested_points_and_picks_the_best_by_cv(tmp_path):
    from mlflow.tracking import MlflowClient

    job = small_job(tmp_path, feature_map={"kind": "zz", "qubits": 3, "reps": 2,
                                           "bandwidth_sweep": [0.05, 0.4, 1.5]},
                    training={"c_grid": [1.0, 10.0], "cv_folds": 3, "cv_repeats": 1})
    result = run_job(job)
    points = result.sweep
    assert [p["bandwidth"] for p in points] == [0.05, 0.4, 1.5]
    best = max(points, key=lambda p: p["cv_mean"])
    assert result.store == best["store"] and result.metrics["cv_mean"] == best["cv_mean"]
    # a narrower kernel as the input scaling grows: the off-diagonal mean falls
    assert points[0]["kernel_offdiag_mean"] > points[2]["kernel_offdiag_mean"]

    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.mlflow_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {c.info.run_id for c in children} == {p["mlflow_run_id"] for p in points}
    assert {c.data.params["feature_map.bandwidth"] for c in children} == {"0.05", "0.4", "1.5"}
    history = client.get_metric_history(parent.info.run_id, "sweep_bandwidth")
    assert [h.value for h in sorted(history, key=lambda h: h.step)] == [0.05, 0.4, 1.5]
    assert parent.data.metrics["best_bandwidth"] == best["bandwidth"]
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "sweep.md" in names

    again = run_job(job)  # every point resumes from its own store
    assert again.tiles_computed == 0 and [p["cv_mean"] for p in again.sweep] == \
        [p["cv_mean"] for p in points]


def test_bad_sweep_values_are_refused():
    from qdist.config import config_from_dict
    from qdist.errors import ConfigError

    with pytest.raises(ConfigError, match=r"feature_map.bandwidth_sweep.*\[0.1, 0.1\]"):
        config_from_dict({"feature_map": {"bandwidth_sweep": [0.1, 0.1]}})
