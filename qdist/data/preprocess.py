"""Preprocessing fitted on the training split only: standardise, reduce to the qubit count,
scale to angles ``[0, angle_range]``, multiply by the bandwidth.

The result (``transform``) is the circuit-parameter matrix stored as ``x_train``/``x_test``;
``features`` (before angle scaling) feeds the classical baseline.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from qdist.config import FeatureMapSpec, PreprocessSpec
from qdist.errors import DataError

__all__ = ["Preprocessor"]


class Preprocessor:
    """Maps raw features to circuit parameters; ``fit`` on training samples only."""

    def __init__(self, spec: PreprocessSpec, feature_map: FeatureMapSpec) -> None:
        self.spec = spec
        self.feature_map = feature_map

    def fit(self, x: np.ndarray) -> Preprocessor:
        q = self.feature_map.qubits
        self.scaler_ = StandardScaler(with_mean=self.spec.standardize, with_std=self.spec.standardize)
        z = self.scaler_.fit_transform(x)
        if self.spec.reduction == "pca":
            if min(x.shape) < q:
                raise DataError(
                    f"PCA to feature_map.qubits={q} components needs at least {q} training samples "
                    f"and features; got {x.shape[0]} samples x {x.shape[1]} features. Lower "
                    "feature_map.qubits or add data."
                )
            self.pca_: PCA | None = PCA(n_components=q, svd_solver="full").fit(z)
            z = self.pca_.transform(z)
        else:
            if x.shape[1] != q:
                raise DataError(
                    f"preprocess.reduction is 'none', so the cohort's {x.shape[1]} features must "
                    f"equal feature_map.qubits={q}. Set feature_map.qubits: {x.shape[1]} or "
                    "preprocess.reduction: pca."
                )
            self.pca_ = None
        self.min_ = z.min(axis=0)
        span = z.max(axis=0) - self.min_
        self.span_ = np.where(span > 0, span, 1.0)
        return self

    def features(self, x: np.ndarray) -> np.ndarray:
        """Standardised (and reduced) features, before angle scaling."""
        z = self.scaler_.transform(x)
        return self.pca_.transform(z) if self.pca_ is not None else z

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Circuit parameters ``bandwidth * angle_range * (z - min) / span``."""
        z = self.features(x)
        unit = (z - self.min_) / self.span_
        return self.feature_map.bandwidth * self.spec.angle_range * unit
