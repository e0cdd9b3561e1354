"""The cohort side of preparing a job: every target encoded for its task, the train/test split
(stratified, or by id hash for growing cohorts), and the imputation the missing-data policy asks
for. Called by :func:`qdist.pipeline.prepare`.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from qdist.config import RunConfig
from qdist.data.cohort import Cohort, Target, check_classes
from qdist.errors import DataError
from qdist.incremental import hash_split

__all__ = ["encode_targets", "split", "impute_strategy"]


def encode_targets(config: RunConfig, cohort: Cohort) -> dict[str, Target]:
    """Encode the primary target for the task and every extra target for its own."""
    out: dict[str, Target] = {}
    primary = config.data.label_column
    if primary is not None:
        task = "classification" if config.training.task == "clustering" else config.training.task
        out[primary] = cohort.target(primary, task)
    for name, task in config.data.extra_targets.items():
        out[name] = cohort.target(name, task)
    for t in out.values():
        if t.task == "classification" and not (t.name == primary and
                                               config.training.task == "clustering"):
            check_classes(t, 2)
    return out


def split(config: RunConfig, cohort: Cohort,
           targets: dict[str, Target]) -> tuple[np.ndarray, np.ndarray]:
    n = cohort.n_samples
    if config.training.split == "hash":
        idx_train, idx_test = hash_split(cohort.sample_ids, config.training.test_fraction)
        n_test = idx_test.size
    else:
        n_test = round(config.training.test_fraction * n)
    folds = config.training.cv_folds
    if n_test < 2 or n - n_test < 2 * folds:
        raise DataError(
            f"The cohort has {n} samples: with training.test_fraction="
            f"{config.training.test_fraction} that leaves {n - n_test} to train and {n_test} to "
            f"test, too few for training.cv_folds={folds}. Add samples, or lower cv_folds.")
    if config.training.split == "hash":
        return idx_train, idx_test
    primary = targets.get(config.data.label_column or "")
    stratify = primary.values if primary is not None and primary.task == "classification" else None
    idx_train, idx_test = train_test_split(np.arange(n), test_size=n_test, stratify=stratify,
                                           random_state=config.seed)
    return np.sort(idx_train), np.sort(idx_test)


def impute_strategy(config: RunConfig) -> str | None:
    values, samples = config.data.missing.values, config.data.missing.samples
    if values.startswith("impute_"):
        return values.removeprefix("impute_")
    return "median" if samples == "impute" else None
