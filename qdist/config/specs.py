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

from qdist.config.cohort_specs import (
    TASKS,
    BlockSpec,
    DataSpec,
    FusionSpec,
    MissingSpec,
    PreprocessSpec,
    SyntheticSpec,
)
from qdist.config.fields import fail

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
    "NystromSpec",
    "TrainingSpec",
    "OutputSpec",
    "TrackingSpec",
    "RunConfig",
    "TASKS",
    "fail",
]

MAX_STATE_QUBITS = 30
"""Largest register of the state-vector backends."""
MAX_MPS_QUBITS = 1000
"""Largest register any backend is asked for (matrix-product states)."""


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
    bandwidth_sweep: tuple[float, ...] = ()
    """Run the job once per bandwidth in this list (``bandwidth`` is then ignored), each as a
    nested MLflow run under one parent that compares them; empty: no sweep."""

    def __post_init__(self) -> None:
        if any(not 0.0 < b < math.inf for b in self.bandwidth_sweep) or \
                len(set(self.bandwidth_sweep)) != len(self.bandwidth_sweep):
            raise fail("feature_map.bandwidth_sweep", "distinct finite floats > 0",
                        list(self.bandwidth_sweep), "Use e.g. [0.05, 0.1, 0.2, 0.5].")
        if not 1 <= self.qubits <= MAX_MPS_QUBITS:
            raise fail("feature_map.qubits", f"an integer in [1, {MAX_MPS_QUBITS}]", self.qubits,
                        "Lower the qubit count.")
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

    kind: Literal["batched", "statevector", "aer", "mps", "qpu"] = "batched"
    """``batched``: qdist's engine, a block of samples at once (NumPy; CuPy on GPU);
    ``statevector``: qiskit.quantum_info per sample; ``aer``: Aer statevector with parameter
    binding; ``mps``: matrix-product states (many qubits, nearest-neighbour entanglement);
    ``qpu``: shots of compute-uncompute circuits, configured in the ``qpu`` section."""
    device: Literal["CPU", "GPU"] = "CPU"
    """``GPU``: the batched engine on CuPy, or Aer with qiskit-aer-gpu."""
    precision: Literal["double", "single"] = "double"
    """Amplitudes and overlaps in complex128 (``double``) or complex64 (``single``: about twice
    as fast; kernel entries then carry an absolute error of about 2e-6 up to 12 qubits, growing
    like ``sqrt(2^q)``: 2.4e-5 measured at 20; see :mod:`qdist.kernel.tiles`)."""

    kernel: Literal["fidelity", "projected"] = "fidelity"
    """``fidelity``: ``|<phi(x)|phi(x')>|^2``; ``projected``: ``exp(-gamma sum_k ||rho_k(x) -
    rho_k(x')||_F^2)`` over one-qubit reduced density matrices (Huang et al. 2021), from
    per-sample features stored in the run's store."""
    projected_gamma: float = 1.0
    """``projected``: the RBF width gamma."""
    projected_gamma_sweep: tuple[float, ...] = ()
    """``projected``: more gammas to score by CV from the stored per-sample features (no new
    quantum work); the best one trains the model."""
    max_bond: int = 64
    """``mps``: largest bond dimension kept (the per-sample truncation error is recorded)."""
    cutoff: float = 1e-16
    """``mps``: largest summed squared singular values dropped at one split."""

    def __post_init__(self) -> None:
        if not 0.0 < self.projected_gamma < math.inf or any(
                not 0.0 < g < math.inf for g in self.projected_gamma_sweep):
            raise fail("backend.projected_gamma", "floats in (0, inf) (with projected_gamma_sweep)",
                        [self.projected_gamma, *self.projected_gamma_sweep], "Use e.g. 1.0.")
        if self.kernel == "projected" and self.kind == "qpu":
            raise fail("backend.kernel", "'fidelity' on a QPU backend (projected kernels from "
                        "measured Bloch vectors are not built yet)", self.kernel,
                        "Use a state backend (batched, mps, ...) for projected kernels.")
        if self.max_bond < 1:
            raise fail("backend.max_bond", "an integer >= 1", self.max_bond, "Use e.g. 64.")
        if not 0.0 <= self.cutoff < 1.0:
            raise fail("backend.cutoff", "a float in [0, 1)", self.cutoff, "Use 1e-16.")

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
    simulator_threads: int = 0
    """``aer`` and ``fake`` simulate inside the queue actor, which reserves this many Ray CPUs
    and gives the simulator as many threads; 0: every CPU of the largest node that is free."""

    def __post_init__(self) -> None:
        if self.simulator_threads < 0:
            raise fail("qpu.simulator_threads", "an integer >= 0", self.simulator_threads,
                       "Use 0 to take the free CPUs of a node, or the number of threads to use.")
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
    """Ray tile workers. Default: one per CPU (GPU) the cluster has when the tiles start. When
    set, that many are asked for even if the cluster cannot place them yet: they join as nodes
    arrive (an autoscaler adds them for the pending workers)."""
    max_retries: int = 3
    """Times a failed tile (an error, or its worker died) is retried before the run stops."""
    worker_memory_gb: float = 4.0
    """Memory each tile worker may use for states, overlaps and tiles (GiB); the planner refuses
    a tile size that does not fit and sizes the state cache to it."""
    cache: str | None = None
    """A kernel-cache folder shared by jobs (:mod:`qdist.storage.kernel_cache`): tiles are keyed
    by the feature map and the samples' circuit parameters, so samples seen before cost nothing
    (a grown cohort computes only its new rows and columns). Exact fidelity kernels on state
    backends; combine with ``training.split: hash`` and ``preprocess.frozen_from`` so that old
    patients keep their split and encoding."""

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
class NystromSpec:
    """The Nystrom path: m landmark columns instead of the whole Gram."""

    landmarks: int = 1000
    """Landmarks m (rounded up to whole tiles): only the n x m tiles of ``K(train, landmarks)``
    and ``K(test, landmarks)`` are computed."""
    sampling: Literal["uniform", "leverage"] = "uniform"
    """``uniform``: m training samples drawn at random; ``leverage``: drawn by approximate ridge
    leverage scores from a pilot of m/2 uniform columns computed in the driver (state backends)."""
    model: Literal["linear_svc", "logreg", "ridge"] = "linear_svc"
    """Linear model on the Nystrom features (C from ``training.c_grid`` by CV); regression always
    uses ridge."""
    full_gram: bool = False
    """Compute every tile anyway: diagnostics then cover the whole Gram (out of core), and, when
    the exact SVC fits, its accuracy gap to the Nystrom model is reported."""

    def __post_init__(self) -> None:
        if self.landmarks < 2:
            raise fail("training.nystrom.landmarks", "an integer >= 2", self.landmarks,
                        "Use e.g. 1000.")


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
    split: Literal["stratified", "hash"] = "stratified"
    """``stratified``: a seeded stratified split; ``hash``: a sample is held out when the keyed
    hash of its pseudonymous id falls under ``test_fraction``, so it keeps its side as the
    cohort grows (needs ``QDIST_PSEUDONYM_KEY``, which makes the pseudonyms stable)."""
    method: Literal["auto", "exact", "nystrom"] = "auto"
    """``exact``: the whole Gram and a kernel SVC/SVR; ``nystrom``: landmark columns and a linear
    model; ``auto``: exact while the Gram fits in ``exact_max_gb``, Nystrom beyond."""
    exact_max_gb: float = 4.0
    """Memory the exact path may take for the training Gram and its copies (planner limit)."""
    nystrom: NystromSpec = field(default_factory=NystromSpec)

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
        if not 0.0 < self.exact_max_gb < math.inf:
            raise fail("training.exact_max_gb", "a number > 0", self.exact_max_gb, "Use e.g. 4.")
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
        if self.feature_map.qubits > MAX_STATE_QUBITS and self.backend.kind not in ("mps", "qpu"):
            raise fail("feature_map.qubits", f"at most {MAX_STATE_QUBITS} for backend.kind "
                        f"{self.backend.kind!r} (a state vector of 2^q amplitudes)",
                        self.feature_map.qubits, "Use backend.kind: mps for more qubits, or "
                        "lower the qubit count.")
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


