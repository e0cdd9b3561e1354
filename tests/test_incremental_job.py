"""A growing cohort as jobs: the same patients keep their split and encoding, and the shared
kernel cache computes only the tiles of the new patients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qdist.api import open_store, run_job
from qdist.errors import ConfigError

from .conftest import small_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def _cohort(tmp_path, n):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(110, 6))
    df = pd.DataFrame(x, columns=[f"g{i}" for i in range(6)])
    df.insert(0, "mrn", [f"MRN-{i:04d}" for i in range(110)])
    df["label"] = (x[:, 0] + x[:, 1] ** 2 > 0.8).astype(int)
    path = tmp_path / f"cohort{n}.csv"
    df.iloc[:n].to_csv(path, index=False)
    return str(path)


def test_grown_cohort_computes_only_the_new_tiles(tmp_path, monkeypatch):
    monkeypatch.setenv("QDIST_PSEUDONYM_KEY", "test-key")

    def job(n, out, **extra):
        base = small_job(tmp_path, data={"source": "table", "path": _cohort(tmp_path, n),
                                         "id_column": "mrn"},
                         tiles={"size": 16, "workers": 2, **extra.pop("tiles", {})},
                         training={"split": "hash", "c_grid": [1.0], "cv_folds": 3,
                                   "cv_repeats": 1})
        base["output"] = {"dir": str(tmp_path / out)}
        base.update(extra)
        return base

    cache = str(tmp_path / "cache")
    first = run_job(job(100, "first", tiles={"cache": cache}))
    assert first.tiles_computed == 28  # 100 samples, edge 16: 7 blocks, 7 * 8 / 2 tiles
    grown = run_job(job(110, "grown", tiles={"cache": cache},
                        preprocess={"frozen_from": str(tmp_path / "first")}))
    # the 10 new samples fill the short last block: its 7 tiles, nothing else
    assert grown.tiles_computed == 7 and grown.metrics["cache_tiles_reused"] == 21
    old = set(open_store(first.store).sample_ids_train)
    assert old <= set(open_store(grown.store).sample_ids_train)  # nobody changed sides

    scratch = run_job(job(110, "scratch", preprocess={"frozen_from": str(tmp_path / "first")}))
    a, b = open_store(grown.store), open_store(scratch.store)
    np.testing.assert_allclose(np.asarray(a.k_train), np.asarray(b.k_train), atol=1e-12)
    np.testing.assert_allclose(np.asarray(a.k_test), np.asarray(b.k_test), atol=1e-12)


def test_cache_and_hash_split_refuse_what_they_cannot_do(tmp_path, monkeypatch):
    from qdist.config import config_from_dict
    from qdist.pipeline import prepare

    monkeypatch.delenv("QDIST_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ConfigError, match="QDIST_PSEUDONYM_KEY"):
        prepare(config_from_dict(small_job(tmp_path, training={"split": "hash", "cv_folds": 3})))
    with pytest.raises(ConfigError, match=r"tiles.cache.*backend.kernel 'projected'"):
        prepare(config_from_dict(small_job(tmp_path, tiles={"cache": str(tmp_path / "c")},
                                           backend={"kernel": "projected"})))
    with pytest.raises(ConfigError, match="preprocess.frozen_from"):
        prepare(config_from_dict(small_job(tmp_path, preprocess={"frozen_from": str(tmp_path)})))
