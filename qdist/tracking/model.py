"""The trained model as an MLflow pyfunc.

It holds the fitted preprocessing, the feature map(s) (QPY: one, or one per block under
``fusion.mode: multiple_kernel`` with the block weights), the encoded features of the support
vectors only, and the fitted estimator on the precomputed kernel (dual coefficients and
intercepts; no training kernel). At predict time it encodes the new samples, computes the
cross-kernel ``K(new, support vectors)`` with the same engine, places it in the support
vectors' columns of a kernel row (the estimator reads no other column) and returns the class
(with probabilities, when calibrated) or the value.

A kernel model carries its support vectors' preprocessed features: treat it as patient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from qdist.backends import make_backend
from qdist.backends.factory import make_qpu_sampler
from qdist.config import BackendSpec, QpuSpec
from qdist.data.preprocess import Preprocessor
from qdist.kernel.feature_maps import circuit_from_qpy
from qdist.kernel.fusion import combine_kernels
from qdist.kernel.tiles import fidelity_tile

__all__ = ["QuantumKernelModel", "KernelComponent"]


@dataclass
class KernelComponent:
    """One kernel of the model: its circuit, its parameter columns and its support vectors."""

    name: str
    qpy: bytes
    columns: slice
    support_x: np.ndarray
    """``(n_support, parameters)`` encoded features of the support vectors."""


class QuantumKernelModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A fitted quantum-kernel model that computes only the cross-kernel to its support vectors
    (or, on the Nystrom path, to its landmarks, mapped by ``projection`` to the features of a
    linear ``estimator``).

    ``estimator`` is a fitted scikit-learn SVC/SVR on a precomputed kernel of ``n_train``
    columns, or ``None`` with ``dual_coef`` for kernel ridge (whose fitted object would hold the
    whole training kernel). ``calibrator`` (optional) gives class probabilities.
    """

    def __init__(self, preprocessor: Preprocessor, feature_names: list[str],
                 components: list[KernelComponent], backend: BackendSpec, *, task: str,
                 estimator: Any, support: np.ndarray, n_train: int,
                 class_names: tuple[str, ...] = (), calibrator: Any = None,
                 dual_coef: np.ndarray | None = None, intercept: float = 0.0,
                 weights: dict[str, float] | None = None, combine: str = "sum",
                 projection: np.ndarray | None = None, qpu: QpuSpec | None = None) -> None:
        self.preprocessor = preprocessor
        self.feature_names = feature_names
        self.components = components
        self.backend = backend
        self.qpu = qpu
        self.task = task
        self.estimator = estimator
        self.calibrator = calibrator
        self.support = np.asarray(support)
        self.n_train = n_train
        self.class_names = tuple(class_names)
        self.dual_coef = dual_coef
        self.intercept = intercept
        self.weights = weights or {c.name: 1.0 for c in components}
        self.combine = combine
        self.projection = projection
        self.kernel_evaluations = 0
        """Kernel entries computed by this instance (rows x support vectors, per component)."""
        self._engines: list[Any] | None = None
        self._support_states: list[Any] = []

    @property
    def n_support(self) -> int:
        return int(self.support.size)

    def _ready(self) -> None:
        if self._engines is not None:
            return
        engines, states = [], []
        for comp in self.components:
            circuit = circuit_from_qpy(comp.qpy)
            if self.backend.kind == "qpu":  # the same shot estimator the model was trained with
                engines.append(make_qpu_sampler(circuit, self.qpu or QpuSpec(), seed=0))
            else:
                engine = make_backend(self.backend, circuit)
                engines.append(engine)
                states.append(engine.states(comp.support_x))
        self._engines, self._support_states = engines, states

    def load_context(self, context: Any) -> None:
        self._ready()

    def _qpu_cross_kernel(self, sampler: Any, x: np.ndarray, support_x: np.ndarray) -> np.ndarray:
        """``K(x, support vectors)`` from shots: one job per row chunk under the job limit."""
        from qdist.planning.qpu import EXECUTION_LIMIT

        m = support_x.shape[0]
        step = max(1, EXECUTION_LIMIT // (m * sampler.shots))
        out = np.empty((x.shape[0], m))
        for r0 in range(0, x.shape[0], step):
            rows = x[r0:r0 + step]
            pairs = sampler.pairs((0, rows.shape[0]), (0, m), False)
            job = sampler.submit([sampler.make_pub(rows, support_x, pairs)], r0)
            out[r0:r0 + step] = sampler.tile_values(sampler.result(job)[0], pairs,
                                                    (rows.shape[0], m), False)[0]
        return out

    def cross_kernel(self, features: np.ndarray) -> np.ndarray:
        """``K(new samples, support vectors)`` for raw feature rows, combined over components."""
        self._ready()
        assert self._engines is not None
        x = self.preprocessor.transform(np.asarray(features, dtype=np.float64))
        parts = {}
        for i, comp in enumerate(self.components):
            xc = x[:, comp.columns]
            if self.backend.kind == "qpu":
                parts[comp.name] = self._qpu_cross_kernel(self._engines[i], xc, comp.support_x)
            else:
                engine = self._engines[i]
                parts[comp.name] = getattr(engine, "tile", fidelity_tile)(engine.states(xc),
                                                                          self._support_states[i])
            self.kernel_evaluations += xc.shape[0] * comp.support_x.shape[0]
        if len(parts) == 1:
            return next(iter(parts.values()))
        return combine_kernels(parts, self.weights, self.combine)

    @property
    def _probabilities(self) -> Any:
        """What gives class probabilities: the calibrator, or a probabilistic linear model on
        Nystrom features; ``None`` when the model has none."""
        if self.calibrator is not None:
            return self.calibrator
        if self.projection is not None and hasattr(self.estimator, "predict_proba"):
            return self.estimator
        return None

    def _kernel_rows(self, k_support: np.ndarray) -> np.ndarray:
        rows = np.zeros((k_support.shape[0], self.n_train))
        rows[:, self.support] = k_support
        return rows

    def predict_frame(self, features: np.ndarray) -> pd.DataFrame:
        """Predictions for raw feature rows (in training column order)."""
        k = self.cross_kernel(features)
        if self.estimator is None:  # kernel ridge: every training sample is a support vector
            return pd.DataFrame({"prediction": k @ self.dual_coef + self.intercept})
        # Nystrom: a linear model on k(x, L) @ projection; else a kernel row over the train set
        rows = k @ self.projection if self.projection is not None else self._kernel_rows(k)
        if self.task == "regression":
            return pd.DataFrame({"prediction": self.estimator.predict(rows)})
        codes = self.estimator.predict(rows)
        out = pd.DataFrame({"prediction": np.asarray(self.class_names)[codes]})
        if len(self.class_names) == 2:
            out["decision"] = self.estimator.decision_function(rows)
        if self._probabilities is not None:
            proba = self._probabilities.predict_proba(rows)
            for c, name in enumerate(self.class_names):
                out[f"probability_{name}"] = proba[:, c]
        return out

    def output_example(self, n: int) -> pd.DataFrame:
        """The shape of :meth:`predict`'s output (for the MLflow signature); no data in it."""
        if self.task == "regression":
            return pd.DataFrame({"prediction": np.zeros(n)})
        names = list(self.class_names)
        out = pd.DataFrame({"prediction": [names[i % len(names)] for i in range(n)]})
        if len(names) == 2:
            out["decision"] = np.zeros(n)
        if self._probabilities is not None:
            for name in names:
                out[f"probability_{name}"] = np.zeros(n)
        return out

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN201
        """``model_input``: a DataFrame with the training feature columns, or an array in that
        column order. Returns a DataFrame with ``prediction`` (class or value), and for
        classification ``decision`` (two classes) and ``probability_<class>`` (calibrated)."""
        # left unannotated on purpose: MLflow turns annotations into a schema it then enforces
        if isinstance(model_input, pd.DataFrame):
            missing = [c for c in self.feature_names if c not in model_input.columns]
            if missing:
                raise ValueError(f"Input lacks feature columns {missing[:5]}; the model needs "
                                 f"{len(self.feature_names)} columns named as in training.")
            features = model_input[self.feature_names].to_numpy(dtype=np.float64)
        else:
            features = np.asarray(model_input, dtype=np.float64)
        return self.predict_frame(features)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_engines"] = None
        state["_support_states"] = []
        state["kernel_evaluations"] = 0
        return state
