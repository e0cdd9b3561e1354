"""Cohorts: the synthetic generator, the table loader, pseudonymisation and bad-input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qdist.config import DataSpec, FeatureMapSpec, PreprocessSpec, SyntheticSpec
from qdist.data import Preprocessor, load_cohort
from qdist.errors import DataError


def test_synthetic_cohort_shape_blocks_and_determinism():
    spec = DataSpec(synthetic=SyntheticSpec(n_samples=50, blocks={"a": 7, "b": 3}, n_latent=2))
    c1, c2 = load_cohort(spec, seed=1), load_cohort(spec, seed=1)
    assert c1.features.shape == (50, 10)
    assert c1.blocks == ("a",) * 7 + ("b",) * 3
    swapped = DataSpec(synthetic=SyntheticSpec(n_samples=50, blocks={"b": 3, "a": 7}, n_latent=2))
    np.testing.assert_array_equal(load_cohort(swapped, seed=1).features, c1.features)
    assert set(np.unique(c1.labels)) == {0, 1}
    np.testing.assert_array_equal(c1.features, c2.features)
    assert not np.array_equal(c1.features, load_cohort(spec, seed=2).features)


def test_synthetic_blocks_share_latent_factors():
    spec = DataSpec(synthetic=SyntheticSpec(n_samples=400, blocks={"a": 30, "b": 30}, noise=0.3))
    c = load_cohort(spec, seed=0)
    a, b = c.features[:, :30], c.features[:, 30:]
    cross = np.corrcoef(a.T, b.T)[:30, 30:]
    assert np.abs(cross).max() > 0.5  # blocks correlate through the shared factors


def test_ids_are_pseudonymous():
    c = load_cohort(DataSpec(), seed=0)
    assert all(s.startswith("s-") and "patient" not in s for s in c.sample_ids)
    assert len(set(c.sample_ids)) == c.n_samples


def test_pseudonym_key_from_environment(monkeypatch, tmp_path):
    df = pd.DataFrame({"sample_id": ["MRN-1", "MRN-2", "MRN-3", "MRN-4"], "label": [0, 1, 0, 1],
                       "f1": [1.0, 2.0, 3.0, 4.0]})
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    monkeypatch.setenv("QDIST_PSEUDONYM_KEY", "k1")
    a = load_cohort(DataSpec(source="table", path=str(path)), 0).sample_ids
    b = load_cohort(DataSpec(source="table", path=str(path)), 0).sample_ids
    monkeypatch.setenv("QDIST_PSEUDONYM_KEY", "k2")
    c = load_cohort(DataSpec(source="table", path=str(path)), 0).sample_ids
    assert list(a) == list(b) and list(a) != list(c)
    assert not any("MRN" in s for s in a)


def _table(tmp_path, df, name="cohort.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(path)
    elif name.endswith(".tsv"):
        df.to_csv(path, sep="\t", index=False)
    else:
        df.to_csv(path, index=False)
    return DataSpec(source="table", path=str(path), id_column="pid", label_column="status")


def _frame(n=12):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"pid": [f"P{i}" for i in range(n)],
                         "status": ["case", "control"] * (n // 2),
                         **{f"g{k}": rng.normal(size=n) for k in range(4)}})


@pytest.mark.parametrize("name", ["cohort.csv", "cohort.tsv", "cohort.parquet"])
def test_table_formats(tmp_path, name):
    c = load_cohort(_table(tmp_path, _frame(), name), seed=0)
    assert c.features.shape == (12, 4)
    assert c.label_names == ("case", "control")
    assert c.feature_names == ("g0", "g1", "g2", "g3")


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda df: df.assign(g1=["x"] * len(df)), "not numeric"),
        (lambda df: df.assign(g2=[np.nan] + [1.0] * (len(df) - 1)), "1 missing feature value"),
        (lambda df: df.assign(status=["case"] * len(df)), "single class"),
        (lambda df: df.drop(columns=["status"]), "data.label_column"),
        (lambda df: df.assign(pid=["same"] * len(df)), "duplicated"),
        (lambda df: df.assign(status=["a"] * 11 + ["b"]), "Class 'b' of target 'status' has 1"),
    ],
)
def test_bad_tables_name_the_problem(tmp_path, mutate, needle):
    with pytest.raises(DataError, match=needle):
        _prepare(_table(tmp_path, mutate(_frame())))


def _prepare(spec):
    from qdist.config import RunConfig, TrainingSpec
    from qdist.pipeline import prepare

    return prepare(RunConfig(data=spec, feature_map=FeatureMapSpec(qubits=2),
                             training=TrainingSpec(cv_folds=2)))


def test_multiclass_labels_are_encoded_in_sorted_order(tmp_path):
    prep = _prepare(_table(tmp_path, _frame().assign(status=["b", "c", "a"] * 4)))
    assert prep.primary.class_names == ("a", "b", "c")
    assert sorted(np.unique(prep.y_train)) == [0, 1, 2]


def test_preprocess_fits_on_train_and_scales_to_angles():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 10))
    pre = Preprocessor(PreprocessSpec(), FeatureMapSpec(qubits=3, bandwidth=0.5)).fit(x[:30])
    xt = pre.transform(x[:30])
    assert xt.shape == (30, 3)
    assert xt.min() == pytest.approx(0.0) and xt.max() == pytest.approx(0.5 * np.pi)
    assert pre.transform(x[30:]).shape == (10, 3)


def test_preprocess_none_needs_matching_width():
    with pytest.raises(DataError, match="feature_map.qubits"):
        Preprocessor(PreprocessSpec(reduction="none"), FeatureMapSpec(qubits=3)).fit(
            np.ones((10, 5)))
