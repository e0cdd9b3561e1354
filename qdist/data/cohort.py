"""The in-memory cohort and the one entry point that loads it from a :class:`DataSpec`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qdist.config import DataSpec
from qdist.errors import DataError

__all__ = ["Cohort", "load_cohort", "validate_cohort"]


@dataclass(frozen=True)
class Cohort:
    """Samples x features with a binary phenotype and pseudonymous sample ids."""

    features: np.ndarray
    """``(n, d)`` float64 raw features."""
    labels: np.ndarray
    """``(n,)`` int labels in {0, 1}."""
    sample_ids: np.ndarray
    """``(n,)`` pseudonymous ids (never the input's identifiers)."""
    feature_names: tuple[str, ...]
    """Column names of ``features``."""
    blocks: tuple[str, ...]
    """Omics block of each feature (``table`` for a single user table)."""
    label_names: tuple[str, ...] = ("0", "1")
    """Original label values, by encoded label."""

    @property
    def n_samples(self) -> int:
        return int(self.features.shape[0])


def validate_cohort(cohort: Cohort, min_per_class: int = 2) -> None:
    """Refuse a cohort that cannot be trained on, naming the problem and the fix."""
    x = cohort.features
    if x.ndim != 2 or x.shape[1] == 0:
        raise DataError(f"The cohort has no feature columns (shape {x.shape}). "
                        "Set data.feature_columns or check the table.")
    bad = ~np.isfinite(x)
    if bad.any():
        rows, cols = np.nonzero(bad)
        names = sorted({cohort.feature_names[c] for c in cols})[:5]
        raise DataError(
            f"The cohort has {int(bad.sum())} NaN or infinite feature value(s) in column(s) "
            f"{names} (first at sample {cohort.sample_ids[rows[0]]}). Impute or drop them before "
            "running qdist."
        )
    classes, counts = np.unique(cohort.labels, return_counts=True)
    if classes.size < 2:
        raise DataError(
            f"The label column has a single class ({cohort.label_names[int(classes[0])]!r} for all "
            f"{cohort.n_samples} samples); a classifier needs two. Check data.label_column."
        )
    if counts.min() < min_per_class:
        raise DataError(
            f"The rarest class has {int(counts.min())} sample(s); at least {min_per_class} per "
            "class are needed for the split and cross-validation. Add samples or lower "
            "training.cv_folds."
        )


def load_cohort(spec: DataSpec, seed: int) -> Cohort:
    """Load (or generate) the cohort ``spec`` describes, pseudonymised and validated."""
    if spec.source == "synthetic":
        from qdist.data.synthetic import make_cohort

        cohort = make_cohort(spec.synthetic, seed)
    else:
        from qdist.data.table import read_table

        cohort = read_table(spec)
    validate_cohort(cohort)
    return cohort
