"""The trained model as an MLflow pyfunc.

It holds the fitted preprocessing, the feature map (QPY), the encoded features of the support
vectors only, the dual coefficients and the intercept. At predict time it encodes the new
samples, computes the cross-kernel ``K(new, support vectors)`` with the same engine, and returns
``decision = K @ dual_coef + intercept`` and the predicted label. Note that a kernel model
carries its support vectors' (preprocessed) features: treat it as patient data.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from qdist.backends import make_backend
from qdist.backends.factory import make_qpu_sampler
from qdist.config import BackendSpec, QpuSpec
from qdist.data.preprocess import Preprocessor
from qdist.kernel.feature_maps import circuit_from_qpy
from qdist.kernel.tiles import fidelity_tile

__all__ = ["QuantumKernelModel"]


class QuantumKernelModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A fitted quantum-kernel SVC that computes only the cross-kernel to its support vectors."""

    def __init__(self, preprocessor: Preprocessor, feature_names: list[str], qpy: bytes,
                 backend: BackendSpec, support_x: np.ndarray, dual_coef: np.ndarray,
                 intercept: float, label_names: list[str], qpu: QpuSpec | None = None) -> None:
        self.preprocessor = preprocessor
        self.feature_names = feature_names
        self.qpy = qpy
        self.backend = backend
        self.qpu = qpu
        self.support_x = support_x
        self.dual_coef = dual_coef
        self.intercept = intercept
        self.label_names = label_names
        self._engine: Any = None
        self._support_states: np.ndarray | None = None

    def _ready(self) -> None:
        if self._engine is not None:
            return
        circuit = circuit_from_qpy(self.qpy)
        if self.backend.kind == "qpu":  # the same shot estimator the model was trained with
            self._engine = make_qpu_sampler(circuit, self.qpu or QpuSpec(), seed=0)
        else:
            self._engine = make_backend(self.backend, circuit)
            self._support_states = self._engine.states(self.support_x)

    def load_context(self, context: Any) -> None:
        self._ready()

    def _qpu_cross_kernel(self, x: np.ndarray) -> np.ndarray:
        """``K(x, support vectors)`` from shots: one job per row chunk under the job limit."""
        from qdist.planning.qpu import EXECUTION_LIMIT

        sampler, m = self._engine, self.support_x.shape[0]
        step = max(1, EXECUTION_LIMIT // (m * sampler.shots))
        out = np.empty((x.shape[0], m))
        for r0 in range(0, x.shape[0], step):
            rows = x[r0:r0 + step]
            pairs = sampler.pairs((0, rows.shape[0]), (0, m), False)
            job = sampler.submit([sampler.make_pub(rows, self.support_x, pairs)], r0)
            out[r0:r0 + step] = sampler.tile_values(sampler.result(job)[0], pairs,
                                                    (rows.shape[0], m), False)[0]
        return out

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        self._ready()
        x = self.preprocessor.transform(np.asarray(features, dtype=np.float64))
        if self.backend.kind == "qpu":
            k = self._qpu_cross_kernel(x)
        else:
            k = fidelity_tile(self._engine.states(x), self._support_states)
        return np.asarray(k @ self.dual_coef + self.intercept)

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN201
        """``model_input``: a DataFrame with the training feature columns, or an array in that
        column order. Returns a DataFrame with ``prediction`` (label) and ``decision``."""
        # left unannotated on purpose: MLflow turns annotations into a schema it then enforces
        if isinstance(model_input, pd.DataFrame):
            missing = [c for c in self.feature_names if c not in model_input.columns]
            if missing:
                raise ValueError(f"Input lacks feature columns {missing[:5]}; the model needs "
                                 f"{len(self.feature_names)} columns named as in training.")
            features = model_input[self.feature_names].to_numpy(dtype=np.float64)
        else:
            features = np.asarray(model_input, dtype=np.float64)
        decision = self.decision_function(features)
        labels = np.asarray(self.label_names)[(decision > 0).astype(int)]
        return pd.DataFrame({"prediction": labels, "decision": decision})

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_engine"] = None
        state["_support_states"] = None
        return state
