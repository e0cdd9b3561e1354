"""Incremental cohorts in a job: a split that does not move when patients are added, a
preprocessing fitted once and reused, and the tiles taken from the shared kernel cache
(:mod:`qdist.storage.kernel_cache`), which computes only what it has not seen.

With ``training.split: hash``, ``preprocess.frozen_from`` and ``tiles.cache``, a cohort grown by
new patients keeps every old patient's side of the split and circuit parameters, so the cache
already holds every tile among old patients and computes only the new rows and columns.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from qdist.errors import ConfigError, DataError
from qdist.events import TileStats

__all__ = ["hash_split", "save_preprocessor", "load_preprocessor", "check_cache", "tiles_from_cache"]

log = logging.getLogger(__name__)

PREPROCESSOR_FILE = "preprocessor.pkl"


def hash_split(sample_ids: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: a sample is held out when the hash of its (keyed) pseudonymous
    id falls under ``test_fraction``, independently of every other sample."""
    if not os.environ.get("QDIST_PSEUDONYM_KEY"):
        raise ConfigError("The job-file field 'training.split' must be 'stratified' unless "
                          "QDIST_PSEUDONYM_KEY is set; got 'hash'. Without the key the pseudonyms, "
                          "and so the split, change from run to run. Set the variable.")
    draws = np.array([int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:8], "big")
                      for i in sample_ids], dtype=np.float64) / 2.0**64
    test = draws < test_fraction
    return np.flatnonzero(~test), np.flatnonzero(test)


def save_preprocessor(out_dir: Path, preprocessor: Any, feature_names: tuple[str, ...],
                      blocks: tuple[str, ...]) -> None:
    """Keep the fitted preprocessing beside the store, for ``preprocess.frozen_from``."""
    with open(out_dir / PREPROCESSOR_FILE, "wb") as fh:
        pickle.dump({"preprocessor": preprocessor, "feature_names": feature_names,
                     "blocks": blocks}, fh)


def load_preprocessor(folder: str, feature_names: tuple[str, ...], blocks: tuple[str, ...]) -> Any:
    """The preprocessing an earlier run fitted, checked against this cohort's columns."""
    path = Path(folder) / PREPROCESSOR_FILE
    if not path.is_file():
        raise ConfigError(f"The job-file field 'preprocess.frozen_from' must be an earlier run's "
                          f"output folder holding {PREPROCESSOR_FILE}; got {folder!r}, which has "
                          "none. Run the first job without it, then point here at its --out.")
    with open(path, "rb") as fh:
        saved = pickle.load(fh)  # a file qdist wrote in the user's own output folder
    if tuple(saved["feature_names"]) != feature_names or tuple(saved["blocks"]) != blocks:
        raise DataError(f"preprocess.frozen_from={folder!r} was fitted on other feature columns "
                        f"({len(saved['feature_names'])} in blocks {sorted(set(saved['blocks']))}; "
                        f"this cohort has {len(feature_names)} in {sorted(set(blocks))}). Use the "
                        "same columns, or fit the preprocessing again (remove frozen_from).")
    return saved["preprocessor"]


def check_cache(config: Any, method: str) -> None:
    """``tiles.cache`` holds exact fidelity kernels of state backends; refuse anything else."""
    b = config.backend
    if config.tiles.cache and (b.kind == "qpu" or b.kernel != "fidelity" or method != "exact"):
        raise ConfigError(
            f"The job-file field 'tiles.cache' needs an exact fidelity kernel on a state backend; "
            f"got backend.kind {b.kind!r}, backend.kernel {b.kernel!r}, training method "
            f"{method!r}. Remove tiles.cache, or use those settings.")


def tiles_from_cache(x_train: np.ndarray, x_test: np.ndarray, circuit: Any, store: Any,
                     missing: list[Any], config: Any, address: str | None,
                     callbacks: Any) -> TileStats:
    """Fill the run's missing tiles from the kernel cache, computing in it only the tiles it has
    not seen; the run's store then assembles as usual."""
    from qdist.api import cached_gram

    if not missing:
        return TileStats()
    x_all = np.vstack([x_train, x_test])
    k, stats = cached_gram(x_all, circuit, config.tiles.cache, backend=config.backend,
                           tile_size=config.tiles.size, workers=config.tiles.workers,
                           address=address, worker_memory_gb=config.tiles.worker_memory_gb,
                           callbacks=callbacks)
    n = x_train.shape[0]
    for tile in missing:
        (r0, r1), (c0, c1) = tile.rows, tile.cols
        rows = slice(r0, r1) if tile.matrix == "k_train" else slice(n + r0, n + r1)
        store.write_tile(tile, k[rows, c0:c1])
    log.info("kernel cache %s: %d tile(s) computed, %d reused", stats.cache, stats.tiles_computed,
             stats.tiles_needed - stats.tiles_computed)
    return TileStats(tiles_computed=stats.tiles_computed,
                    entries_computed=int(k.size) if stats.tiles_computed else 0,
                    seconds=stats.seconds,
                    tiles_reused=stats.tiles_needed - stats.tiles_computed)
