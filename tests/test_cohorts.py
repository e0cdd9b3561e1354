"""Multi-omics cohorts on disk (one table per block, one table, AnnData, MuData), the missing-data
policy, per-block preprocessing without leakage, and the fusion encodings against Statevector."""

from __future__ import annotations

import dataclasses

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from qiskit.quantum_info import Statevector

from qdist.config import (
    BlockSpec,
    DataSpec,
    FeatureMapSpec,
    FusionSpec,
    MissingSpec,
    PreprocessSpec,
    RunConfig,
    SyntheticSpec,
    TrainingSpec,
)
from qdist.data import load_cohort
from qdist.errors import ConfigError, DataError
from qdist.kernel.feature_maps import build_feature_map, build_subregister_map, kernel_circuits
from qdist.kernel.fusion import alignment_weights, combine_kernels
from qdist.pipeline import prepare

BLOCKS = {"expression": 9, "methylation": 6, "clinical": 3}


@pytest.fixture(scope="module")
def omics():
    """A synthetic multi-omics cohort as raw frames: per block, raw ids, and the targets."""
    spec = DataSpec(synthetic=SyntheticSpec(n_samples=48, blocks=BLOCKS, n_latent=2, n_classes=3))
    c = load_cohort(spec, seed=5)
    ids = [f"MRN-{i:04d}" for i in range(c.n_samples)]
    frames = {}
    for b in c.block_names:
        cols = c.block_columns(b)
        frames[b] = pd.DataFrame(c.features[:, cols], columns=[c.feature_names[i] for i in cols])
        frames[b].insert(0, "pid", ids)
    targets = pd.DataFrame({"pid": ids, "subtype": [f"T{v}" for v in c.targets["label"]]})
    return c, frames, targets


def _write(df: pd.DataFrame, path) -> str:
    if str(path).endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif str(path).endswith(".tsv"):
        df.to_csv(path, sep="\t", index=False)
    else:
        df.to_csv(path, index=False)
    return str(path)


def _tables_spec(tmp_path, frames, targets, **kw) -> DataSpec:
    suffix = {"expression": ".parquet", "methylation": ".tsv", "clinical": ".csv"}
    tables = {b: _write(f, tmp_path / f"{b}{suffix[b]}") for b, f in frames.items()}
    return DataSpec(source="tables", tables=tables, id_column="pid", label_column="subtype",
                    targets_path=_write(targets, tmp_path / "targets.csv"), **kw)


def _assert_same_cohort(c, ref):
    order = np.argsort(c.feature_names)
    ref_order = np.argsort(ref.feature_names)
    np.testing.assert_allclose(c.features[:, order], ref.features[:, ref_order])
    assert c.block_names == ref.block_names
    assert all(s.startswith("s-") for s in c.sample_ids) and len(set(c.sample_ids)) == c.n_samples
    assert [f"T{v}" for v in ref.targets["label"]] == list(c.targets["subtype"])


def test_one_table_per_block_in_three_formats(tmp_path, omics):
    ref, frames, targets = omics
    c = load_cohort(_tables_spec(tmp_path, frames, targets), seed=0)
    _assert_same_cohort(c, ref)
    assert c.primary == "subtype" and c.label_names == ("T0", "T1", "T2")


def test_targets_found_in_a_block_table(tmp_path, omics):
    ref, frames, targets = omics
    clinical = frames["clinical"].merge(targets, on="pid")
    spec = DataSpec(source="tables", id_column="pid", label_column="subtype",
                    tables={"expression": _write(frames["expression"], tmp_path / "e.csv"),
                            "methylation": _write(frames["methylation"], tmp_path / "m.csv"),
                            "clinical": _write(clinical, tmp_path / "c.csv")})
    c = load_cohort(spec, seed=0)
    assert "subtype" not in c.feature_names  # a target is never a feature
    _assert_same_cohort(c, ref)


def test_anndata_and_mudata(tmp_path, omics):
    ref, frames, targets = omics
    obs = pd.DataFrame({"subtype": pd.Categorical(targets["subtype"]),
                        **{c: frames["clinical"][c].to_numpy() for c in frames["clinical"].columns[1:]}},
                       index=pd.Index(frames["clinical"]["pid"], name="pid"))

    def adata(block):
        f = frames[block]
        return ad.AnnData(X=f.iloc[:, 1:].to_numpy(), obs=obs[["subtype"]].copy(),
                          var=pd.DataFrame(index=list(f.columns[1:])))

    path = tmp_path / "expr.h5ad"
    a = adata("expression")
    a.obs = obs.copy()
    a.write_h5ad(path)
    spec = DataSpec(source="anndata", path=str(path), label_column="subtype",
                    anndata_block="expression", obs_features=tuple(frames["clinical"].columns[1:]))
    c = load_cohort(spec, seed=0)
    assert c.block_names == ("clinical", "expression") and c.features.shape == (48, 12)
    np.testing.assert_allclose(c.features[:, 3:], frames["expression"].iloc[:, 1:].to_numpy())
    assert list(c.targets["subtype"]) == list(targets["subtype"])

    mpath = tmp_path / "cohort.h5mu"
    mdata = md.MuData({"expression": adata("expression"), "methylation": adata("methylation")})
    mdata.obs["subtype"] = obs["subtype"].astype(str).to_numpy()
    for col in frames["clinical"].columns[1:]:
        mdata.obs[col] = obs[col].to_numpy()
    mdata.write(mpath)
    spec = DataSpec(source="mudata", path=str(mpath), label_column="subtype",
                    obs_features=tuple(frames["clinical"].columns[1:]))
    _assert_same_cohort(load_cohort(spec, seed=0), ref)


def _drop_rows(frame, rows):
    return frame.drop(index=rows).reset_index(drop=True)


def test_absent_samples_error_counts_and_points_at_rows(tmp_path, omics):
    _, frames, targets = omics
    frames = dict(frames, methylation=_drop_rows(frames["methylation"], [3, 10, 11]))
    with pytest.raises(DataError, match=r"3 of 48 sample\(s\) are absent .*methylation: 3.*rows 4, "
                                        r"11, 12 of .* data\.missing\.samples") as err:
        load_cohort(_tables_spec(tmp_path, frames, targets), seed=0)
    assert "MRN" not in str(err.value)  # raw identifiers never reach an error
    kept = load_cohort(_tables_spec(tmp_path, frames, targets,
                                    missing=MissingSpec(samples="intersect")), seed=0)
    assert kept.n_samples == 45 and not np.isnan(kept.features).any()
    imputed = load_cohort(_tables_spec(tmp_path, frames, targets,
                                       missing=MissingSpec(samples="impute")), seed=0)
    assert imputed.n_samples == 48
    assert np.isnan(imputed.features).sum() == 3 * BLOCKS["methylation"]


def test_missing_values_duplicates_and_targets_policies(tmp_path, omics):
    _, frames, targets = omics
    expr = frames["expression"].copy()
    expr.iloc[[2, 7], 3] = np.nan
    holes = dict(frames, expression=expr)
    with pytest.raises(DataError, match=r"2 missing feature value\(s\) in 2 sample\(s\)"):
        load_cohort(_tables_spec(tmp_path, holes, targets), seed=0)
    dropped = load_cohort(_tables_spec(tmp_path, holes, targets, missing=MissingSpec(values="drop")),
                          seed=0)
    assert dropped.n_samples == 46

    dup = dict(frames, clinical=pd.concat([frames["clinical"], frames["clinical"].iloc[[5]]],
                                          ignore_index=True))
    with pytest.raises(DataError, match=r"1 duplicated id\(s\) \(rows 6, 49\)"):
        load_cohort(_tables_spec(tmp_path, dup, targets), seed=0)
    first = load_cohort(_tables_spec(tmp_path, dup, targets, missing=MissingSpec(duplicates="first")),
                        seed=0)
    assert first.n_samples == 48
    two = frames["clinical"].iloc[[5]].copy()
    two.iloc[0, 1:] = two.iloc[0, 1:] + 2.0
    avg = dict(frames, clinical=pd.concat([frames["clinical"], two], ignore_index=True))
    mean = load_cohort(_tables_spec(tmp_path, avg, targets, missing=MissingSpec(duplicates="mean")),
                       seed=0)
    col = mean.feature_names.index(frames["clinical"].columns[1])
    assert mean.features[5, col] == pytest.approx(frames["clinical"].iloc[5, 1] + 1.0)

    gap = targets.assign(subtype=[None, *list(targets["subtype"][1:])])
    with pytest.raises(DataError, match=r"1 of 48 sample\(s\) have no value for target 'subtype'"):
        load_cohort(_tables_spec(tmp_path, frames, gap), seed=0)
    assert load_cohort(_tables_spec(tmp_path, frames, gap, missing=MissingSpec(targets="drop")),
                       seed=0).n_samples == 47


def test_bad_block_settings_name_the_field(tmp_path, omics):
    _, frames, targets = omics
    with pytest.raises(ConfigError, match=r"preprocess.blocks.*feature_map.qubits=4.*\{'a': 1, 'b': 2\}"):
        RunConfig(feature_map=FeatureMapSpec(qubits=4),
                  preprocess=PreprocessSpec(blocks={"a": BlockSpec(qubits=1), "b": BlockSpec(qubits=2)}))
    cfg = RunConfig(data=_tables_spec(tmp_path, frames, targets), feature_map=FeatureMapSpec(qubits=3),
                    preprocess=PreprocessSpec(blocks={"expression": BlockSpec(qubits=2),
                                                      "proteins": BlockSpec(qubits=1)}),
                    training=TrainingSpec(cv_folds=2))
    with pytest.raises(DataError, match=r"unknown block\(s\) \['proteins'\].*leaves out "
                                        r"\['clinical', 'methylation'\]"):
        prepare(cfg)


def _block_config(tmp_path, frames, targets, fusion="concat", **kw):
    return RunConfig(
        data=_tables_spec(tmp_path, frames, targets, **kw),
        feature_map=FeatureMapSpec(qubits=5, reps=1, bandwidth=0.5),
        preprocess=PreprocessSpec(blocks={
            "expression": BlockSpec(qubits=2, log1p=False, variance_top=5),
            "methylation": BlockSpec(qubits=2),
            "clinical": BlockSpec(qubits=1, reduction="pca")}),
        fusion=FusionSpec(mode=fusion), training=TrainingSpec(cv_folds=2))


def test_preprocessing_is_fitted_on_training_samples_only(tmp_path, omics):
    _, frames, targets = omics
    (tmp_path / "a").mkdir()
    base = prepare(_block_config(tmp_path / "a", frames, targets))
    test_rows = base.idx_test
    poisoned = {b: f.copy() for b, f in frames.items()}
    for f in poisoned.values():  # wild values (and holes) in the held-out samples only
        f.iloc[test_rows, 1:] = f.iloc[test_rows, 1:] * 1000.0 + 500.0
    poisoned["methylation"].iloc[test_rows[:2], 2] = np.nan
    (tmp_path / "b").mkdir()
    after = prepare(_block_config(tmp_path / "b", poisoned, targets,
                                  missing=MissingSpec(values="impute_median")))
    np.testing.assert_array_equal(after.idx_train, base.idx_train)
    np.testing.assert_allclose(after.x_train, base.x_train, atol=1e-12)
    np.testing.assert_allclose(after.f_train, base.f_train, atol=1e-12)
    for u, v in zip(after.preprocessor.units_, base.preprocessor.units_, strict=True):
        np.testing.assert_allclose(u.scaler_.mean_, v.scaler_.mean_)
        np.testing.assert_array_equal(u.keep_, v.keep_)
    units = {u.name: u for u in after.preprocessor.units_}
    medians = units["methylation"].imputer_.statistics_
    train_meth = poisoned["methylation"].iloc[after.idx_train, 1:].to_numpy()
    np.testing.assert_allclose(medians, np.median(train_meth, axis=0))
    assert not np.allclose(after.x_test, base.x_test)  # the test samples did change
    assert base.preprocessor.parts == {"clinical": slice(0, 1), "expression": slice(1, 3),
                                       "methylation": slice(3, 5)}
    assert units["expression"].keep_.size == 5  # the variance filter kept the top 5


def _oracle(circuit, x, y=None):
    sx = np.array([Statevector(circuit.assign_parameters(r)).data for r in x])
    sy = sx if y is None else np.array([Statevector(circuit.assign_parameters(r)).data for r in y])
    return np.abs(sx.conj() @ sy.T) ** 2


@pytest.mark.parametrize("kind", ["zz", "pauli"])
def test_subregister_map_matches_statevector_and_reduces_to_a_product(kind):
    from qdist.api import compute_gram

    spec = FeatureMapSpec(kind=kind, qubits=5, reps=2, paulis=("Z", "YY"))
    parts = {"a": slice(0, 2), "b": slice(2, 5)}
    x = np.random.default_rng(7).uniform(0, np.pi, (7, 5))
    crossed = build_subregister_map(spec, parts, cross_layers=1)
    np.testing.assert_allclose(compute_gram(x, feature_map=crossed), _oracle(crossed, x), atol=1e-10)
    plain = build_subregister_map(spec, parts, cross_layers=0)
    product = (_oracle(build_feature_map(dataclasses.replace(spec, qubits=2)), x[:, :2]) *
               _oracle(build_feature_map(dataclasses.replace(spec, qubits=3)), x[:, 2:]))
    np.testing.assert_allclose(compute_gram(x, feature_map=plain), product, atol=1e-10)
    assert not np.allclose(_oracle(crossed, x), product)  # the cross layer entangles the blocks


def test_multiple_kernels_combine_per_block_oracles():
    spec = FeatureMapSpec(qubits=4, reps=2)
    parts = {"a": slice(0, 1), "b": slice(1, 4)}
    circuits = kernel_circuits(spec, FusionSpec(mode="multiple_kernel"), parts)
    assert [(n, c.num_qubits, cols) for n, c, cols in circuits] == [("a", 1, slice(0, 1)),
                                                                     ("b", 3, slice(1, 4))]
    x = np.random.default_rng(8).uniform(0, np.pi, (6, 4))
    ks = {n: _oracle(c, x[:, cols]) for n, c, cols in circuits}
    total = combine_kernels(ks, {"a": 1.0, "b": 3.0}, "sum")
    np.testing.assert_allclose(total, 0.25 * ks["a"] + 0.75 * ks["b"])
    np.testing.assert_allclose(np.diag(total), 1.0)
    np.testing.assert_allclose(combine_kernels(ks, {"a": 1.0, "b": 1.0}, "product"), ks["a"] * ks["b"])


def test_alignment_weights_favour_the_informative_block():
    rng = np.random.default_rng(9)
    y = np.repeat([0, 1], 30)
    signal = np.where(y[:, None] == y[None, :], 0.9, 0.2) + 0.05 * rng.random((60, 60))
    noise = rng.random((60, 60))
    w = alignment_weights({"signal": (signal + signal.T) / 2, "noise": (noise + noise.T) / 2}, y,
                          "classification")
    assert w["signal"] > 0.9 and sum(w.values()) == pytest.approx(1.0)
    assert alignment_weights({"a": signal, "b": noise}, None, "clustering") == {"a": 0.5, "b": 0.5}
