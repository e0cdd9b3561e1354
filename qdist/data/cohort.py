"""The in-memory cohort and the one entry point that loads it from a :class:`DataSpec`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from qdist.config import DataSpec
from qdist.errors import DataError

__all__ = ["Cohort", "Target", "load_cohort", "encode_target"]


@dataclass(frozen=True)
class Target:
    """One target of a cohort, encoded for its task."""

    name: str
    task: str
    """``classification`` or ``regression``."""
    values: np.ndarray
    """``(n,)``: int class codes (classification) or float64 (regression)."""
    class_names: tuple[str, ...] = ()
    """Original class values by code (classification)."""


@dataclass(frozen=True)
class Cohort:
    """Samples x features in omics blocks, with pseudonymous ids and raw targets."""

    features: np.ndarray
    """``(n, d)`` float64 raw features; NaN only where the missing-data policy imputes."""
    sample_ids: np.ndarray
    """``(n,)`` pseudonymous ids (never the input's identifiers)."""
    feature_names: tuple[str, ...]
    """Column names of ``features``."""
    blocks: tuple[str, ...]
    """Omics block of each feature (``table`` for a single user table)."""
    targets: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Raw target values by column name (numbers or strings)."""
    primary: str | None = None
    """The target ``data.label_column`` names (``None``: unsupervised)."""

    @property
    def n_samples(self) -> int:
        return int(self.features.shape[0])

    @property
    def block_names(self) -> tuple[str, ...]:
        """Blocks in column order, each once."""
        return tuple(dict.fromkeys(self.blocks))

    def block_columns(self, block: str) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.blocks) == block)

    @property
    def labels(self) -> np.ndarray:
        """The primary target as class codes."""
        return self.target(self.primary or "", "classification").values

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.target(self.primary or "", "classification").class_names

    def target(self, name: str, task: str) -> Target:
        if name not in self.targets:
            raise DataError(f"The cohort has no target {name!r}; its targets are "
                            f"{sorted(self.targets)}. Check data.label_column / "
                            "data.extra_targets.")
        return encode_target(name, self.targets[name], task)

    def subset(self, rows: np.ndarray) -> Cohort:
        """The cohort restricted to ``rows`` (indices or a boolean mask)."""
        return Cohort(self.features[rows], self.sample_ids[rows], self.feature_names, self.blocks,
                      {k: v[rows] for k, v in self.targets.items()}, self.primary)


def encode_target(name: str, raw: np.ndarray, task: str) -> Target:
    """Encode ``raw`` for ``task``: classes as codes in sorted order, or floats."""
    raw = np.asarray(raw)
    if task == "regression":
        try:
            values = raw.astype(np.float64)
        except (TypeError, ValueError):
            example = next((v for v in raw if not _is_number(v)), raw[0])
            raise DataError(f"Target {name!r} is not numeric (e.g. {example!r}); regression "
                            "needs numbers. Use training.task: classification, or fix the "
                            "column.") from None
        if not np.isfinite(values).all():
            raise DataError(f"Target {name!r} has {int((~np.isfinite(values)).sum())} missing or "
                            "infinite value(s). Drop them or set data.missing.targets: drop.")
        return Target(name, task, values)
    classes = sorted({_plain(v) for v in raw.tolist()}, key=str)
    codes = {v: i for i, v in enumerate(classes)}
    return Target(name, "classification",
                  np.asarray([codes[_plain(v)] for v in raw.tolist()], dtype=np.int64),
                  tuple(str(c) for c in classes))


def _plain(v: object) -> object:
    # 1 and 1.0 are the same class; so are a numpy scalar and its Python value
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _is_number(v: object) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def check_classes(target: Target, min_per_class: int, folds_field: str = "training.cv_folds") -> None:
    """Refuse a classification target that cannot be split and cross-validated."""
    counts = np.bincount(target.values, minlength=len(target.class_names))
    if len(target.class_names) < 2:
        raise DataError(
            f"Target {target.name!r} has a single class ({target.class_names[0]!r} for all "
            f"{target.values.size} samples); a classifier needs two. Check data.label_column.")
    if counts.min() < min_per_class:
        rare = target.class_names[int(counts.argmin())]
        raise DataError(
            f"Class {rare!r} of target {target.name!r} has {int(counts.min())} sample(s); at least "
            f"{min_per_class} per class are needed for the split and cross-validation. Add "
            f"samples, merge rare classes, or lower {folds_field}.")


def load_cohort(spec: DataSpec, seed: int) -> Cohort:
    """Load (or generate) the cohort ``spec`` describes, pseudonymised, with its policies applied."""
    if spec.source == "synthetic":
        from qdist.data.synthetic import make_cohort

        cohort = make_cohort(spec.synthetic, seed)
        wanted = [t for t in (spec.label_column, *spec.extra_targets) if t is not None]
        missing = [t for t in wanted if t not in cohort.targets]
        if missing:
            raise DataError(f"The synthetic cohort has targets {sorted(cohort.targets)}, not "
                            f"{missing}. Set data.label_column to one of them.")
        return Cohort(cohort.features, cohort.sample_ids, cohort.feature_names, cohort.blocks,
                      {t: cohort.targets[t] for t in wanted}, spec.label_column)
    from qdist.data.readers import read_cohort

    return read_cohort(spec)
