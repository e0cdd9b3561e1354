"""The job's spec dataclasses: frozen, slotted, validated in ``__post_init__``.

Each field has a docstring; errors name the job-file field, the value found and the fix.
Secrets never live here: adapters read them from the environment.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from qdist.errors import ConfigError

__all__ = [
    "SyntheticSpec",
    "MissingSpec",
    "DataSpec",
    "BlockSpec",
    "PreprocessSpec",
    "FusionSpec",
    "FeatureMapSpec",
    "BackendSpec",
    "QpuSpec",
    "TilingSpec",
    "TrainingSpec",
    "OutputSpec",
    "TrackingSpec",
    "RunConfig",
    "TASKS",
    "fail",
]

def fail(path: str, expected: str, value: object, fix: str) -> ConfigError:
    return ConfigError(
        f"The job-file field '{path}' must be {expected}; got {value!r}. {fix}"
    )


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


@dataclass(frozen=True, slots=True)
class FeatureMapSpec:
    """The quantum feature map ``U(x)`` (Qiskit's ZZ, Z and Pauli maps)."""

    kind: Literal["zz", "z", "pauli"] = "zz"
    """Which Qiskit feature map: ``zz_feature_map``, ``z_feature_map`` or ``pauli_feature_map``."""
    qubits: int = 6
    """Number of qubits, which is also the number of circuit parameters per sample."""
    reps: int = 2
    """Repetitions of the encoding layer."""
    entanglement: Literal["linear", "full", "circular", "reverse_linear", "pairwise", "sca"] = "linear"
    """Entangling pattern of the two-qubit terms (ignored by ``z``)."""
    paulis: tuple[str, ...] = ("Z", "ZZ")
    """Pauli strings of the ``pauli`` map."""
    alpha: float = 2.0
    """Rotation prefactor of the ``zz``/``pauli`` maps."""
    bandwidth: float = 1.0
    """Input scaling factor c in (0, inf): circuit parameters are ``c * angle``.
    Values below 1 counter exponential kernel concentration (Shaydulin & Wild)."""

    def __post_init__(self) -> None:
        if not 1 <= self.qubits <= 30:
            raise fail("feature_map.qubits", "an integer in [1, 30] for statevector backends",
                        self.qubits, "Lower the qubit count.")
        if self.reps < 1:
            raise fail("feature_map.reps", "an integer >= 1", self.reps, "Use e.g. 2.")
        if not 0.0 < self.bandwidth < math.inf:
            raise fail("feature_map.bandwidth", "a finite float > 0", self.bandwidth,
                        "Use 1.0 for no scaling, or a value in (0, 1] to widen the kernel.")
        if not math.isfinite(self.alpha):
            raise fail("feature_map.alpha", "a finite float", self.alpha, "Use 2.0.")
        bad = [p for p in self.paulis if not p or set(p) - set("IXYZ")]
        if self.kind == "pauli" and (not self.paulis or bad):
            raise fail("feature_map.paulis", "a non-empty list of strings over I, X, Y, Z",
                        list(self.paulis), "Use e.g. [Z, ZZ].")


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """What computes the per-sample states."""

    kind: Literal["batched", "statevector", "aer", "qpu"] = "batched"
    """``batched``: qdist's engine, a block of samples at once (NumPy; CuPy on GPU);
    ``statevector``: qiskit.quantum_info per sample; ``aer``: Aer statevector with parameter
    binding; ``qpu``: shots of compute-uncompute circuits, configured in the ``qpu`` section."""
    device: Literal["CPU", "GPU"] = "CPU"
    """``GPU``: the batched engine on CuPy, or Aer with qiskit-aer-gpu."""
    precision: Literal["double", "single"] = "double"
    """Amplitudes and overlaps in complex128 (``double``) or complex64 (``single``: about twice
    as fast; kernel entries then carry an absolute error of about 2e-6 up to 12 qubits, growing
    like ``sqrt(2^q)``: 2.4e-5 measured at 20; see :mod:`qdist.kernel.tiles`)."""

    @property
    def itemsize(self) -> int:
        """Bytes per amplitude."""
        return 16 if self.precision == "double" else 8


@dataclass(frozen=True, slots=True)
class QpuSpec:
    """Shot-based kernels on a QPU queue (used when ``backend.kind`` is ``qpu``).

    Credentials never live here: the ``ibm`` provider reads ``QISKIT_IBM_TOKEN`` (and
    ``QISKIT_IBM_INSTANCE``, ``QISKIT_IBM_CHANNEL``) from the environment.
    """

    provider: Literal["aer", "fake", "ibm", "spool"] = "aer"
    """``aer``: Aer with shots; ``fake``: qiskit-ibm-runtime local testing mode on a fake
    backend; ``ibm``: IBM Quantum; ``spool``: a local job service (``qdist.backends.spool``)."""
    backend: str | None = None
    """Device name (``ibm``) or fake backend name (``fake``: e.g. ``fake_torino``); for ``aer``
    and ``spool`` an optional fake backend whose noise model to simulate (default noiseless)."""
    shots: int = 1024
    """Shots per kernel entry."""
    optimization_level: int = 1
    """Transpiler optimisation level of the one ISA circuit."""
    initial_layout: tuple[int, ...] | None = None
    """Physical qubits for the circuit's qubits; default: the transpiler's choice."""
    max_shots_total: int = 50_000_000
    """Budget: the run is refused before any submission if it needs more shots."""
    max_jobs_in_flight: int = 4
    """Jobs the queue actor keeps submitted at once."""
    readout_mitigation: bool = False
    """Invert per-qubit readout errors (tensored model) on every tile."""
    depolarizing_mitigation: bool = False
    """Invert global depolarizing noise using the measured diagonal (see kernel.mitigation)."""
    psd_repair: Literal["none", "train", "joint"] = "train"
    """Clip negative eigenvalues of the train Gram (``joint``: map the test rows too)."""
    spool_dir: str | None = None
    """Folder of the ``spool`` job service."""

    def __post_init__(self) -> None:
        if self.shots < 1:
            raise fail("qpu.shots", "an integer >= 1", self.shots, "Use e.g. 1024.")
        if not 0 <= self.optimization_level <= 3:
            raise fail("qpu.optimization_level", "an integer in [0, 3]",
                        self.optimization_level, "Use 1.")
        if self.max_jobs_in_flight < 1:
            raise fail("qpu.max_jobs_in_flight", "an integer >= 1", self.max_jobs_in_flight,
                        "Use e.g. 4.")
        if self.max_shots_total < 1:
            raise fail("qpu.max_shots_total", "an integer >= 1", self.max_shots_total,
                        "Set the number of shots you are prepared to spend.")
        if self.provider in ("fake", "ibm") and not self.backend:
            raise fail("qpu.backend", f"a backend name when qpu.provider is {self.provider!r}",
                       self.backend, "Set e.g. qpu.backend: fake_torino.")
        if self.provider == "spool" and not self.spool_dir:
            raise fail("qpu.spool_dir", "a folder when qpu.provider is 'spool'",
                        self.spool_dir, "Set qpu.spool_dir to the job service's folder.")


@dataclass(frozen=True, slots=True)
class TilingSpec:
    """How the Gram matrix is cut and who computes it."""

    size: int | None = None
    """Tile edge in samples: tiles are ``size x size`` (edge tiles smaller); chunk shape = tile
    shape. Default: chosen by the cost model from the sample count, qubits and worker memory."""
    workers: int | None = None
    """Ray tile workers; default: one per CPU the cluster offers."""
    max_retries: int = 3
    """Times a failed tile (an error, or its worker died) is retried before the run stops."""
    worker_memory_gb: float = 4.0
    """Memory each tile worker may use for states, overlaps and tiles (GiB); the planner refuses
    a tile size that does not fit and sizes the state cache to it."""

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 1:
            raise fail("tiles.size", "an integer >= 1 or null (automatic)", self.size,
                        "Use e.g. 64, or leave it out.")
        if self.max_retries < 0:
            raise fail("tiles.max_retries", "an integer >= 0", self.max_retries, "Use e.g. 3.")
        if not 0.0 < self.worker_memory_gb < math.inf:
            raise fail("tiles.worker_memory_gb", "a float > 0", self.worker_memory_gb,
                        "Use e.g. 4.")
        if self.workers is not None and self.workers < 1:
            raise fail("tiles.workers", "an integer >= 1 or null", self.workers,
                        "Leave it out to use every CPU.")


@dataclass(frozen=True, slots=True)
class TrainingSpec:
    """Split, task, model selection and evaluation."""

    task: Literal["classification", "regression", "clustering"] = "classification"
    """What to learn from ``data.label_column``: ``classification`` (binary or multi-class SVC),
    ``regression`` (``regressor`` on a numeric target) or ``clustering`` (patient stratification
    by spectral clustering of the kernel; the label, when given, only scores it)."""
    test_fraction: float = 0.25
    """Fraction of samples held out (stratified for classification) for evaluation."""
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    """SVC/SVR regularisation values tried by cross-validation (kernel ridge: ``alpha = 1/C``)."""
    cv_folds: int = 5
    """Folds (stratified for classification) for model selection and the reported CV scores."""
    cv_repeats: int = 3
    """Repetitions of the CV with reshuffled folds; CV scores are reported as mean and spread."""
    regressor: Literal["svr", "kernel_ridge"] = "svr"
    """Regression model on the precomputed kernel: ``svr`` (sparse: predictions use the support
    vectors only) or ``kernel_ridge`` (every training sample)."""
    probability: bool = True
    """Classification: fit Platt-scaled class probabilities too (returned by the model)."""
    n_clusters: int = 2
    """Clustering: number of patient strata."""

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise fail("training.test_fraction", "a float in (0, 1)", self.test_fraction,
                        "Use e.g. 0.25.")
        if not self.c_grid or any(not 0.0 < c < math.inf for c in self.c_grid):
            raise fail("training.c_grid", "a non-empty list of floats in (0, inf)",
                        list(self.c_grid), "Use e.g. [0.1, 1, 10].")
        if self.cv_folds < 2:
            raise fail("training.cv_folds", "an integer >= 2", self.cv_folds, "Use e.g. 5.")
        if self.cv_repeats < 1:
            raise fail("training.cv_repeats", "an integer >= 1", self.cv_repeats, "Use e.g. 3.")
        if self.n_clusters < 2:
            raise fail("training.n_clusters", "an integer >= 2", self.n_clusters, "Use e.g. 3.")


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """Where the run's files go."""

    dir: str = "runs/qdist"
    """Output folder: the Zarr store (``store.zarr``) and, by default, the MLflow store."""


@dataclass(frozen=True, slots=True)
class TrackingSpec:
    """MLflow tracking."""

    uri: str | None = None
    """Tracking URI; default ``sqlite:///<output.dir>/mlflow.db``."""
    experiment: str = "qdist"
    """MLflow experiment name."""
    register_model: str | None = None
    """Register the logged model under this name in the MLflow model registry (a new version
    per run); null: log it with the run only."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    """A whole job: every field of the job file, resolved and validated."""

    name: str = "qdist"
    """Job name (used in the MLflow run name)."""
    seed: int = 0
    """Run seed: the split, the synthetic cohort and per-tile seeds all derive from it."""
    data: DataSpec = field(default_factory=DataSpec)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    feature_map: FeatureMapSpec = field(default_factory=FeatureMapSpec)
    fusion: FusionSpec = field(default_factory=FusionSpec)
    backend: BackendSpec = field(default_factory=BackendSpec)
    qpu: QpuSpec = field(default_factory=QpuSpec)
    tiles: TilingSpec = field(default_factory=TilingSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    output: OutputSpec = field(default_factory=OutputSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)

    def __post_init__(self) -> None:
        blocks = self.preprocess.blocks
        if blocks and sum(b.qubits for b in blocks.values()) != self.feature_map.qubits:
            shares = {k: b.qubits for k, b in blocks.items()}
            raise fail("preprocess.blocks", f"qubit shares adding up to feature_map.qubits="
                        f"{self.feature_map.qubits}", shares,
                        f"Make the shares add up to {self.feature_map.qubits}, or set "
                        f"feature_map.qubits: {sum(shares.values())}.")
        if self.training.task != "clustering" and self.data.label_column is None:
            raise fail("data.label_column", f"a target column for training.task "
                        f"{self.training.task!r}", None,
                        "Name the target column, or use training.task: clustering.")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists for tuples), loadable by :func:`config_from_dict`."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; validates every field."""
        from qdist.config.loader import config_from_dict

        return config_from_dict(data)

    def flat(self) -> dict[str, str]:
        """Every field as a dotted key -> string value (MLflow params)."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and not (prefix.endswith("blocks")):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                out[prefix] = str(value)

        walk("", self.to_dict())
        return out


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


