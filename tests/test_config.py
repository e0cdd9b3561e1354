"""Job files -> validated, frozen RunConfig: defaults, layering, and clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from qdist.config import RunConfig, config_from_dict, load_config
from qdist.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_demo_job_loads_and_is_frozen():
    cfg = load_config(REPO / "jobs" / "demo.yaml")
    assert cfg.feature_map.kind == "zz" and cfg.feature_map.qubits == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("tree", "needle"),
    [
        ({"feature_map": {"qubitz": 4}}, "qubitz"),
        ({"colour": "red"}, "colour"),
        ({"feature_map": {"qubits": "six"}}, "feature_map.qubits"),
        ({"feature_map": {"qubits": 4.5}}, "feature_map.qubits"),
        ({"feature_map": {"kind": "iqp"}}, "feature_map.kind"),
        ({"feature_map": {"bandwidth": -1.0}}, "feature_map.bandwidth"),
        ({"training": {"c_grid": []}}, "training.c_grid"),
        ({"training": {"c_grid": "1,2"}}, "training.c_grid"),
        ({"training": {"test_fraction": 1.5}}, "training.test_fraction"),
        ({"tiles": {"size": 0}}, "tiles.size"),
        ({"preprocess": {"standardize": "yes"}}, "preprocess.standardize"),
        ({"data": {"source": "table"}}, "data.path"),
        ({"data": {"synthetic": {"blocks": {"rna": 0}}}}, "data.synthetic.blocks"),
        ({"feature_map": {"kind": "pauli", "paulis": ["ZQ"]}}, "feature_map.paulis"),
        ({"feature_map": "zz"}, "feature_map"),
    ],
)
def test_bad_values_name_the_field(tree, needle):
    with pytest.raises(ConfigError) as info:
        config_from_dict(tree)
    assert needle in str(info.value)


def test_unknown_key_lists_known_keys():
    with pytest.raises(ConfigError, match="Known keys") as info:
        config_from_dict({"tiles": {"sise": 8}})
    assert "'size'" in str(info.value)


def test_malformed_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("feature_map:\n  qubits: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_non_mapping_job(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_missing_job_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_layers_file_env_flags(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"feature_map": {"qubits": 4}, "output": {"dir": "a"}}))
    env = {"QDIST_FEATURE_MAP__QUBITS": "5", "QDIST_OUTPUT__DIR": "b", "UNRELATED": "x"}
    cfg = load_config(job, overrides={"output.dir": "c"}, environ=env)
    assert cfg.feature_map.qubits == 5  # env beats file
    assert cfg.output.dir == "c"  # flags beat env


def test_env_override_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="feature_map.qubits"):
        load_config({}, environ={"QDIST_FEATURE_MAP__QUBITS": "many"})


def test_relative_data_path_resolves_against_job_file(tmp_path):
    job = tmp_path / "sub" / "job.yaml"
    job.parent.mkdir()
    job.write_text(yaml.safe_dump({"data": {"source": "table", "path": "cohort.csv"}}))
    assert load_config(job, environ={}).data.path == str(job.parent / "cohort.csv")


@settings(max_examples=40, deadline=None)
@given(
    qubits=st.integers(1, 30),
    reps=st.integers(1, 5),
    kind=st.sampled_from(["zz", "z", "pauli"]),
    bandwidth=st.floats(0.01, 10.0),
    size=st.integers(1, 4096),
    c_grid=st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=5),
    workers=st.one_of(st.none(), st.integers(1, 64)),
)
def test_round_trip(qubits, reps, kind, bandwidth, size, c_grid, workers):
    cfg = config_from_dict({
        "feature_map": {"kind": kind, "qubits": qubits, "reps": reps, "bandwidth": bandwidth},
        "tiles": {"size": size, "workers": workers},
        "training": {"c_grid": c_grid},
    })
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert yaml.safe_load(yaml.safe_dump(cfg.to_dict())) == cfg.to_dict()


def test_flat_params_cover_every_field():
    flat = RunConfig().flat()
    assert flat["feature_map.qubits"] == "6"
    assert "data.synthetic.blocks" in flat and "training.c_grid" in flat
    assert all(isinstance(v, str) for v in flat.values())


@pytest.mark.parametrize("path", sorted((REPO / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_job_file_is_valid(path):
    load_config(path, environ={})


def test_negative_simulator_threads_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"qpu.simulator_threads.*-2.*Use 0"):
        config_from_dict({"backend": {"kind": "qpu"}, "qpu": {"simulator_threads": -2}})
