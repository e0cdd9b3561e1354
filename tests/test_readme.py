"""Every example in the README runs, and its job-file reference is a valid job file."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from qdist.config import config_from_dict, load_config

from .conftest import REPO

README = (REPO / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_readme_has_examples():
    assert len(PYTHON_BLOCKS) >= 2 and YAML_BLOCKS


def test_yaml_reference_is_a_valid_job_and_matches_the_demo():
    documented = config_from_dict(yaml.safe_load(YAML_BLOCKS[0]))
    assert documented == load_config(REPO / "jobs" / "demo.yaml", environ={})


@pytest.mark.parametrize("index", range(1, len(YAML_BLOCKS)))
def test_other_yaml_examples_are_valid_job_fragments(index):
    config_from_dict(yaml.safe_load(YAML_BLOCKS[index]))


@pytest.mark.integration
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_example_runs(tmp_path, index):
    (tmp_path / "jobs").symlink_to(REPO / "jobs")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run([sys.executable, "-c", PYTHON_BLOCKS[index]], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
