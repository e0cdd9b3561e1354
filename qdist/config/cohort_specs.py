"""The cohort side of a job: where the data comes from, the missing-data policy, per-block
preprocessing and how blocks are fused (re-exported by :mod:`qdist.config.specs`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from qdist.config.fields import fail

__all__ = ["SyntheticSpec", "TASKS", "MissingSpec", "DataSpec", "BlockSpec", "PreprocessSpec",
           "FusionSpec"]


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    """A synthetic multi-omics cohort (see :func:`qdist.data.synthetic.make_cohort`)."""

    n_samples: int = 240
    """Number of patients."""
    blocks: dict[str, int] = field(
        default_factory=lambda: {"expression": 200, "methylation": 120, "proteins": 40, "clinical": 6}
    )
    """Omics block name -> number of features in that block."""
    n_latent: int = 4
    """Shared latent factors that drive every block and the phenotype."""
    noise: float = 1.0
    """Standard deviation of the per-feature noise."""
    class_balance: float = 0.5
    """Fraction of samples with phenotype 1 (binary ``label`` only)."""
    n_classes: int = 2
    """Classes of the ``label`` target (3 or more: subtypes cut at score quantiles). The cohort
    also has a continuous ``response`` target (e.g. drug response) for regression."""

    def __post_init__(self) -> None:
        if self.n_samples < 4:
            raise fail("data.synthetic.n_samples", "an integer >= 4", self.n_samples,
                        "Ask for more samples.")
        if not self.blocks or any(w < 1 for w in self.blocks.values()):
            raise fail("data.synthetic.blocks", "a non-empty mapping of block name to width >= 1",
                        self.blocks, "Give every omics block at least one feature.")
        if self.n_latent < 1:
            raise fail("data.synthetic.n_latent", "an integer >= 1", self.n_latent,
                        "Use at least one latent factor.")
        if not 0.0 <= self.noise < math.inf:
            raise fail("data.synthetic.noise", "a finite float >= 0", self.noise,
                        "Use e.g. 1.0.")
        if not 0.05 <= self.class_balance <= 0.95:
            raise fail("data.synthetic.class_balance", "a float in [0.05, 0.95]",
                        self.class_balance, "Use e.g. 0.5.")
        if not 2 <= self.n_classes <= self.n_samples // 2:
            raise fail("data.synthetic.n_classes", "an integer in [2, n_samples / 2]",
                        self.n_classes, "Use e.g. 2 or 3.")


TASKS = ("classification", "regression")
"""Supervised tasks a target can have (``training.task`` also allows ``clustering``)."""


@dataclass(frozen=True, slots=True)
class MissingSpec:
    """What to do with incomplete input. Every default is a clear error that counts and names the
    problem; the other choices are explicit, and imputation is fitted on the training split only."""

    samples: Literal["error", "intersect", "impute"] = "error"
    """Samples present in some blocks but not others: ``error``; ``intersect`` keeps only samples
    present in every block; ``impute`` keeps them all and imputes their absent blocks (see
    ``values`` for how; ``impute_median`` when ``values`` is ``error`` or ``drop``)."""
    values: Literal["error", "drop", "impute_mean", "impute_median"] = "error"
    """Missing (NaN) feature values: ``error``; ``drop`` the samples that have any; or impute
    them per feature with the training split's mean or median."""
    duplicates: Literal["error", "first", "mean"] = "error"
    """Ids that occur more than once in a table: ``error``; keep the ``first`` row; or average the
    rows (``mean``; targets must then agree)."""
    targets: Literal["error", "drop"] = "error"
    """Samples without a value for a target: ``error``, or ``drop`` those samples."""


@dataclass(frozen=True, slots=True)
class DataSpec:
    """Where the cohort comes from: samples with pseudonymous ids, one or more omics blocks and
    clinical variables, and one or more targets."""

    source: Literal["synthetic", "table", "tables", "anndata", "mudata"] = "synthetic"
    """``synthetic`` generates a cohort; ``table`` reads one table (``path``: CSV, TSV or Parquet);
    ``tables`` reads one table per block (``tables``) joined on ``id_column``; ``anndata`` reads an
    ``.h5ad`` file (``path``); ``mudata`` reads an ``.h5mu`` file, one block per modality."""
    path: str | None = None
    """The file for ``table``, ``anndata`` and ``mudata``; relative paths are relative to the job
    file."""
    tables: dict[str, str] = field(default_factory=dict)
    """``tables`` source: block name -> table path (CSV, TSV or Parquet), each with ``id_column``."""
    targets_path: str | None = None
    """``tables`` source: an optional table of targets (with ``id_column``); by default the targets
    are looked up in the block tables."""
    id_column: str = "sample_id"
    """Column holding the sample identifier; it is replaced by a pseudonymous id on input. For
    AnnData/MuData: an ``obs`` column, or the ``obs_names`` when no such column exists."""
    label_column: str | None = "label"
    """The primary target column (a class for classification, a number for regression; optional
    for clustering, where it only scores the clusters)."""
    extra_targets: dict[str, Literal["classification", "regression"]] = field(default_factory=dict)
    """More target columns, each with its task, trained on the same Gram and split."""
    feature_columns: tuple[str, ...] | None = None
    """``table`` source: feature columns to use; default every column but the id and targets."""
    obs_features: tuple[str, ...] = ()
    """AnnData/MuData: numeric ``obs`` columns used as a ``clinical`` block."""
    layer: str | None = None
    """AnnData: read this layer instead of ``X``."""
    anndata_block: str = "rna"
    """AnnData: the block name of its ``X`` (or ``layer``) features."""
    missing: MissingSpec = field(default_factory=MissingSpec)
    """Policy for absent samples, missing values, duplicated ids and missing targets."""
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    """Parameters of the synthetic cohort."""

    def __post_init__(self) -> None:
        if self.source in ("table", "anndata", "mudata") and not self.path:
            raise fail("data.path", f"a file when data.source is {self.source!r}", self.path,
                        "Set data.path, or use data.source: synthetic.")
        if self.source == "tables" and not self.tables:
            raise fail("data.tables", "a mapping of block name to table path when data.source is "
                        "'tables'", self.tables, "List each omics block's table, e.g. "
                        "{expression: expr.csv, clinical: clin.csv}.")
        if self.label_column is not None and self.label_column in self.extra_targets:
            raise fail("data.extra_targets", "targets other than data.label_column",
                        dict(self.extra_targets), f"Remove {self.label_column!r} from it.")


@dataclass(frozen=True, slots=True)
class BlockSpec:
    """Preprocessing of one omics block (fitted on the training split only) and its qubits."""

    qubits: int = 1
    """The block's share of the qubit budget: components kept after reduction (the block's
    sub-register under ``fusion.mode: subregister``, its own register under ``multiple_kernel``)."""
    log1p: bool = False
    """Apply ``log(1 + x)`` first (counts, intensities); needs values > -1."""
    variance_top: int | None = None
    """Keep the features with the largest training-split variance (this many), before scaling."""
    standardize: bool = True
    """Centre and scale every feature to unit variance."""
    reduction: Literal["pca", "none"] = "pca"
    """``pca`` to ``qubits`` components; ``none`` needs exactly ``qubits`` features."""

    def __post_init__(self) -> None:
        if self.qubits < 1:
            raise fail("preprocess.blocks.<block>.qubits", "an integer >= 1", self.qubits,
                        "Give every block at least one qubit, or leave the block out.")
        if self.variance_top is not None and self.variance_top < 1:
            raise fail("preprocess.blocks.<block>.variance_top", "an integer >= 1 or null",
                        self.variance_top, "Use e.g. 500, or null to keep every feature.")


@dataclass(frozen=True, slots=True)
class PreprocessSpec:
    """Turning raw features into circuit parameters (fitted on the training split only)."""

    standardize: bool = True
    """Centre and scale every feature to unit variance before reduction."""
    reduction: Literal["pca", "none"] = "pca"
    """``pca`` reduces to ``feature_map.qubits`` components; ``none`` needs exactly that many features."""
    log1p: bool = False
    """Apply ``log(1 + x)`` to every feature first (when ``blocks`` is empty)."""
    variance_top: int | None = None
    """Keep this many highest-variance features first (when ``blocks`` is empty)."""
    angle_range: float = math.pi
    """Features are min-max scaled to ``[0, angle_range]`` on the training split."""
    frozen_from: str | None = None
    """Reuse the preprocessing fitted by an earlier run (its output folder, which holds
    ``preprocessor.pkl``) instead of fitting it again: old samples then keep their encoding when
    the cohort grows. The earlier run's feature columns must match."""
    blocks: dict[str, BlockSpec] = field(default_factory=dict)
    """Per-block preprocessing and qubit shares (block name -> settings). Empty: one pipeline over
    all features, or, for ``fusion`` modes other than ``concat``, default settings with the qubits
    shared out evenly. When given, it must name every block and its ``qubits`` must add up to
    ``feature_map.qubits``."""

    def __post_init__(self) -> None:
        if not 0.0 < self.angle_range <= 4 * math.pi:
            raise fail("preprocess.angle_range", "a float in (0, 4*pi]", self.angle_range,
                        "Use pi (the default).")
        if self.variance_top is not None and self.variance_top < 1:
            raise fail("preprocess.variance_top", "an integer >= 1 or null", self.variance_top,
                        "Use e.g. 500, or null to keep every feature.")


@dataclass(frozen=True, slots=True)
class FusionSpec:
    """How omics blocks are combined in the quantum kernel."""

    mode: Literal["concat", "subregister", "multiple_kernel"] = "concat"
    """``concat``: all blocks' components on one register and one feature map (a); ``subregister``:
    each block's feature map on its own qubits, then ``cross_layers`` entangling layers between
    neighbouring blocks (b); ``multiple_kernel``: one kernel per block on its own register,
    combined by ``combine`` with ``weights`` (c)."""
    cross_layers: int = 1
    """``subregister``: layers of cross-block ZZ interactions (0 gives the product of the blocks'
    kernels)."""
    combine: Literal["sum", "product"] = "sum"
    """``multiple_kernel``: ``sum`` gives ``K = sum_b w_b K_b`` (weights normalised to sum 1);
    ``product`` gives ``K = prod_b K_b ** w_b``."""
    weights: dict[str, float] = field(default_factory=dict)
    """``multiple_kernel``: block -> weight. Empty: chosen by kernel-target alignment on the
    training split (``w_b`` proportional to the positive part of each block's centred alignment)."""

    def __post_init__(self) -> None:
        if self.cross_layers < 0:
            raise fail("fusion.cross_layers", "an integer >= 0", self.cross_layers, "Use 1.")
        bad = {k: v for k, v in self.weights.items() if not 0.0 <= v < math.inf}
        if bad or (self.weights and sum(self.weights.values()) <= 0):
            raise fail("fusion.weights", "a mapping of block -> weight >= 0, not all zero",
                        dict(self.weights), "Use e.g. {expression: 0.7, clinical: 0.3}, or leave "
                        "it empty to choose weights by kernel-target alignment.")
