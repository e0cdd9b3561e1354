"""Shared fixtures: environment for real Ray, a session-wide embedded Ray, small job configs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One embedded Ray for the tests that need it (2 CPUs)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def small_job(tmp: Path, **sections: Any) -> dict[str, Any]:
    """A fast job (about 60 samples, 3 qubits) as a mapping; ``sections`` override whole keys."""
    job: dict[str, Any] = {
        "name": "test",
        "seed": 3,
        "data": {"source": "synthetic",
                 "synthetic": {"n_samples": 60, "blocks": {"rna": 12, "prot": 5}, "n_latent": 2}},
        "feature_map": {"kind": "zz", "qubits": 3, "reps": 2, "bandwidth": 0.8},
        "tiles": {"size": 16, "workers": 2},
        "training": {"test_fraction": 0.25, "c_grid": [0.1, 1.0, 10.0], "cv_folds": 3,
                     "cv_repeats": 1},
        "output": {"dir": str(tmp / "out")},
    }
    job.update(sections)
    return job
