"""The model lifecycle end to end: a real cohort (scikit-learn's breast-cancer data) tracked on a
real MLflow server, registered, loaded by URI in a fresh process and scored against its support
vectors only; multi-omics fusion with several tasks on one Gram; clustering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qdist.api import open_store, run_job
from qdist.storage import GramStore

from .conftest import small_job
from .test_mlflow_server import mlflow_server_at

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow-lifecycle")
    with mlflow_server_at(tmp, str(tmp / "artifacts")) as url:
        yield url


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory):
    from sklearn.datasets import load_breast_cancer

    tmp = tmp_path_factory.mktemp("bc")
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"])
    frame.insert(0, "mrn", [f"MRN-{i:05d}" for i in range(len(frame))])
    frame["diagnosis"] = np.asarray(data.target_names)[data.target.to_numpy()]
    frame.to_csv(tmp / "cohort.csv", index=False)
    return tmp, frame


def test_real_cohort_on_a_server_registered_and_scored_in_a_fresh_process(server, breast_cancer,
                                                                          tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    tmp, frame = breast_cancer
    job = small_job(tmp_path, data={"source": "table", "path": str(tmp / "cohort.csv"),
                                    "id_column": "mrn", "label_column": "diagnosis"},
                    feature_map={"kind": "zz", "qubits": 4, "reps": 1, "bandwidth": 0.3},
                    tiles={"size": 128, "workers": 2},
                    training={"c_grid": [0.1, 1.0, 10.0], "cv_folds": 3, "cv_repeats": 2},
                    tracking={"uri": server, "experiment": "lifecycle",
                              "register_model": "qdist-breast-cancer"})
    result = run_job(job)
    m = result.metrics
    assert result.registered_model == "qdist-breast-cancer/1"
    assert m["test_roc_auc"] > 0.9 and m["rbf_test_roc_auc"] > 0.9  # a real, learnable cohort
    assert m["cv_std"] > 0 and m["logreg_cv_std"] > 0

    client = MlflowClient(server)
    run = client.get_run(result.mlflow_run_id)
    texts = " ".join([*run.data.params.values(), *run.data.tags.values()])
    assert "MRN" not in texts
    raw_values = {f"{v:.6g}" for v in frame.iloc[:5, 1:-1].to_numpy().ravel()}
    assert not raw_values & set(run.data.params.values())  # no raw feature in the params
    cmp = Path(client.download_artifacts(run.info.run_id, "comparison.md", str(tmp_path)))
    table = cmp.read_text()
    assert "| quantum kernel |" in table and "| baseline: logistic regression |" in table

    # new patients: the held-out rows, scored by the registered model in a fresh process
    view = open_store(result.store)
    test_rows = frame.iloc[_rows_of(frame, view.sample_ids_test, "mrn")]
    test_rows.drop(columns=["diagnosis"]).to_parquet(tmp_path / "new.parquet")
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({server!r})\n"
        "m = mlflow.pyfunc.load_model('models:/qdist-breast-cancer/1')\n"
        f"out = m.predict(pd.read_parquet({str(tmp_path / 'new.parquet')!r}))\n"
        f"out.to_parquet({str(tmp_path / 'fresh.parquet')!r})\n"
        "py = m.unwrap_python_model()\n"
        "print(json.dumps({'evals': py.kernel_evaluations, 'support': py.n_support,"
        " 'n_train': py.n_train}))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    fresh = pd.read_parquet(tmp_path / "fresh.parquet")
    n_new = len(test_rows)
    assert info["evals"] == n_new * info["support"] and info["support"] < info["n_train"]

    # the in-process reference: the same estimator on the full K(test, train) from the store
    mlflow.set_tracking_uri(server)
    model = mlflow.pyfunc.load_model(result.model_uri).unwrap_python_model()
    k_test = np.asarray(view.k_test)
    np.testing.assert_allclose(fresh["decision"], model.estimator.decision_function(k_test),
                               atol=1e-9)
    expected = np.asarray(model.class_names)[model.estimator.predict(k_test)]
    assert list(fresh["prediction"]) == list(expected)
    assert np.mean(fresh["prediction"].to_numpy() == test_rows["diagnosis"].to_numpy()) == \
        pytest.approx(m["test_accuracy"])


def _rows_of(frame: pd.DataFrame, pseudonyms: np.ndarray, id_column: str) -> list[int]:
    from qdist.data.pseudonym import pseudonymize

    index = {p: i for i, p in enumerate(pseudonymize(frame[id_column].tolist()))}
    return [index[p] for p in pseudonyms]


def _multiomics(tmp_path: Path, **sections):
    job = small_job(
        tmp_path,
        data={"source": "synthetic", "label_column": "label",
              "extra_targets": {"response": "regression"},
              "synthetic": {"n_samples": 72, "blocks": {"rna": 10, "prot": 6, "clin": 3},
                            "n_latent": 2, "n_classes": 3}},
        feature_map={"kind": "zz", "qubits": 4, "reps": 1, "bandwidth": 0.5},
        preprocess={"blocks": {"rna": {"qubits": 2, "variance_top": 8},
                               "prot": {"qubits": 1}, "clin": {"qubits": 1}}},
        training={"c_grid": [1.0, 10.0], "cv_folds": 3, "cv_repeats": 1})
    job.update(sections)
    return job


def test_multiple_kernels_multiclass_and_regression_on_one_gram(tmp_path):
    import mlflow

    job = _multiomics(tmp_path, fusion={"mode": "multiple_kernel", "combine": "sum"})
    result = run_job(job)
    m = result.metrics
    assert result.targets == {"label": "classification", "response": "regression"}
    weights = [m[f"fusion_weight_{b}"] for b in ("clin", "prot", "rna")]
    assert sum(weights) == pytest.approx(1.0) and all(w >= 0 for w in weights)
    assert {"test_balanced_accuracy", "rbf_test_balanced_accuracy", "response/test_r2",
            "response/rbf_test_r2", "response/ridge_test_r2", "response/cv_std"} <= set(m)
    from qdist.planning import make_plan

    per_block = len(make_plan(result.n_train, result.n_test, 16, 0).tiles)
    assert result.tiles_total == 3 * per_block  # one plan per block kernel
    stores = sorted(p.name for p in Path(result.out_dir).glob("store-*.zarr"))
    assert stores == ["store-clin.zarr", "store-prot.zarr", "store-rna.zarr"]
    for name in stores:  # each store's completion record counts its own kernel's tiles
        done = GramStore.open(str(Path(result.out_dir) / name)).attrs["completion"]
        assert done["tiles_computed_last_run"] == done["tiles_total"] == per_block
        assert sum(done["nodes_last_run"].values()) == per_block

    # the combined kernel the model uses is the weighted sum of the stored block kernels
    views = {b: open_store(Path(result.out_dir) / f"store-{b}.zarr") for b in ("clin", "prot", "rna")}
    k_test = sum(m[f"fusion_weight_{b}"] * np.asarray(v.k_test) for b, v in views.items())
    mlflow.set_tracking_uri(result.tracking_uri)
    model = mlflow.pyfunc.load_model(result.model_uri).unwrap_python_model()
    from qdist.config import config_from_dict
    from qdist.pipeline import prepare

    prep = prepare(config_from_dict(job))
    raw = pd.DataFrame(prep.cohort.features[prep.idx_test], columns=prep.cohort.feature_names)
    out = model.predict(None, raw)
    assert [c for c in out.columns if c.startswith("probability_")] == \
        ["probability_0", "probability_1", "probability_2"]
    expected = model.estimator.predict(k_test)
    assert list(out["prediction"]) == [model.class_names[c] for c in expected]
    assert model.kernel_evaluations == 3 * len(raw) * model.n_support

    again = run_job(job)  # every block store resumes
    assert again.tiles_computed == 0 and again.metrics["test_accuracy"] == m["test_accuracy"]


def test_subregister_clustering_logs_strata(tmp_path):
    from mlflow.tracking import MlflowClient

    job = _multiomics(tmp_path, fusion={"mode": "subregister", "cross_layers": 1},
                      training={"task": "clustering", "n_clusters": 3, "cv_folds": 3})
    job["data"].pop("extra_targets")
    result = run_job(job)
    assert result.model_uri == "" and result.task == "clustering"
    m = result.metrics
    assert {"silhouette", "train_ari", "test_ari", "rbf_train_ari", "kmeans_train_ari"} <= set(m)
    client = MlflowClient(result.tracking_uri)
    strata = Path(client.download_artifacts(result.mlflow_run_id, "strata.csv", str(tmp_path)))
    table = pd.read_csv(strata)
    assert len(table) == 72 and set(table["stratum"]) <= {0, 1, 2}
    assert table["sample_id"].str.startswith("s-").all()


def test_kernel_ridge_regression_model_uses_every_training_sample(tmp_path):
    import mlflow

    job = _multiomics(tmp_path, training={"task": "regression", "regressor": "kernel_ridge",
                                          "c_grid": [1.0, 10.0], "cv_folds": 3, "cv_repeats": 1})
    job["data"] = {**job["data"], "label_column": "response", "extra_targets": {}}
    result = run_job(job)
    assert {"test_r2", "rbf_test_r2", "forest_test_r2", "cv_mean"} <= set(result.metrics)
    mlflow.set_tracking_uri(result.tracking_uri)
    model = mlflow.pyfunc.load_model(result.model_uri).unwrap_python_model()
    assert model.estimator is None and model.n_support == result.n_train  # no K_train inside
    view = open_store(result.store)
    from qdist.config import config_from_dict
    from qdist.pipeline import prepare

    prep = prepare(config_from_dict(job))
    raw = pd.DataFrame(prep.cohort.features[prep.idx_test], columns=prep.cohort.feature_names)
    np.testing.assert_allclose(model.predict(None, raw)["prediction"],
                               np.asarray(view.k_test) @ model.dual_coef, atol=1e-9)


def test_anndata_cohort_end_to_end_and_new_patients_from_h5ad(tmp_path):
    import anndata as ad

    from qdist.tracking.predict import predict_file

    rng = np.random.default_rng(4)
    x = rng.normal(size=(70, 8))
    obs = pd.DataFrame({"response": np.where(x[:, 0] + x[:, 1] > 0, "yes", "no"),
                        "age": rng.normal(60, 8, size=70)},
                       index=pd.Index([f"MRN-{i:03d}" for i in range(70)]))
    var = pd.DataFrame(index=[f"gene{i}" for i in range(8)])
    ad.AnnData(X=x[:60], obs=obs.iloc[:60], var=var).write_h5ad(tmp_path / "cohort.h5ad")
    ad.AnnData(X=x[60:], obs=obs.iloc[60:].drop(columns=["response"]),
               var=var).write_h5ad(tmp_path / "new.h5ad")
    job = small_job(tmp_path, data={"source": "anndata", "path": str(tmp_path / "cohort.h5ad"),
                                    "label_column": "response", "obs_features": ["age"]},
                    training={"c_grid": [1.0, 10.0], "cv_folds": 3, "cv_repeats": 1})
    result = run_job(job)
    assert result.n_train + result.n_test == 60 and "rbf_test_accuracy" in result.metrics
    pred = predict_file(result.model_uri, tmp_path / "new.h5ad", id_column="mrn",
                        tracking_uri=result.tracking_uri)
    assert len(pred) == 10 and set(pred["prediction"]) <= {"no", "yes"}
    assert pred["sample_id"].str.startswith("s-").all()  # pseudonyms, not the obs names
    table = pd.DataFrame(x[60:], columns=list(var.index)).assign(age=obs["age"].to_numpy()[60:])
    table.insert(0, "mrn", list(obs.index[60:]))
    table.to_csv(tmp_path / "new.csv", index=False)
    same = predict_file(result.model_uri, tmp_path / "new.csv", id_column="mrn",
                        tracking_uri=result.tracking_uri)
    pd.testing.assert_frame_equal(pred, same)  # the same patients from either format
