"""Preprocessing fitted on the training split only: per omics block, impute, ``log1p``, keep the
highest-variance features, standardise and reduce to the block's qubits; then scale every
component to angles ``[0, angle_range]`` and multiply by the bandwidth.

The result (``transform``) is the circuit-parameter matrix stored as ``x_train``/``x_test``, the
blocks' components side by side in block order (``parts`` says which columns, i.e. which qubits,
belong to which block). ``features`` (before angle scaling) feeds the classical baselines.

Without ``preprocess.blocks`` and with ``fusion.mode: concat`` there is one pipeline over all
features (the block structure is ignored); otherwise one per block.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from qdist.config import BlockSpec, FeatureMapSpec, FusionSpec, PreprocessSpec
from qdist.errors import DataError

__all__ = ["Preprocessor", "qubit_shares"]


def qubit_shares(spec: PreprocessSpec, fusion: FusionSpec, qubits: int,
                 blocks: Sequence[str]) -> dict[str, BlockSpec]:
    """Block -> settings (with its qubits), or ``{}`` for one pipeline over all features."""
    if spec.blocks:
        unknown = sorted(set(spec.blocks) - set(blocks))
        absent = [b for b in blocks if b not in spec.blocks]
        if unknown or absent:
            raise DataError(
                f"preprocess.blocks must name exactly the cohort's blocks {list(blocks)}; "
                + (f"it names unknown block(s) {unknown}" if unknown else "")
                + ("; " if unknown and absent else "")
                + (f"it leaves out {absent}" if absent else "")
                + ". Add or rename the entries (their qubits must add up to feature_map.qubits).")
        return {b: spec.blocks[b] for b in blocks}
    if fusion.mode == "concat":
        return {}
    if qubits < len(blocks):
        raise DataError(f"fusion.mode {fusion.mode!r} gives each of the {len(blocks)} blocks "
                        f"{list(blocks)} at least one qubit, but feature_map.qubits={qubits}. "
                        f"Raise feature_map.qubits to {len(blocks)} or more.")
    base, extra = divmod(qubits, len(blocks))
    return {b: BlockSpec(qubits=base + (i < extra), log1p=spec.log1p, variance_top=spec.variance_top,
                         standardize=spec.standardize, reduction=spec.reduction)
            for i, b in enumerate(blocks)}


class _Unit:
    """One block's pipeline: impute -> log1p -> variance filter -> scale -> reduce -> angles."""

    def __init__(self, name: str, columns: np.ndarray, spec: BlockSpec, impute: str | None) -> None:
        self.name, self.columns, self.spec, self.impute = name, columns, spec, impute

    def fit(self, x: np.ndarray) -> np.ndarray:
        s, q, where = self.spec, self.spec.qubits, self._where()
        x = x[:, self.columns]
        if np.isnan(x).any() and self.impute is None:
            raise DataError(f"{where}: missing values reached preprocessing. Set "
                            "data.missing.values to drop, impute_mean or impute_median.")
        self.imputer_ = (SimpleImputer(strategy=self.impute, keep_empty_features=True).fit(x)
                         if self.impute else None)
        x = self._clean(x, fitting=True)
        var = x.var(axis=0)
        if s.variance_top is not None and s.variance_top < x.shape[1]:
            self.keep_ = np.sort(np.argsort(var, kind="stable")[::-1][: s.variance_top])
        else:
            self.keep_ = np.arange(x.shape[1])
        x = x[:, self.keep_]
        self.scaler_ = StandardScaler(with_mean=s.standardize, with_std=s.standardize)
        z = self.scaler_.fit_transform(x)
        if s.reduction == "pca":
            if min(z.shape) < q:
                raise DataError(
                    f"{where}: PCA to {q} component(s) needs at least {q} training samples and "
                    f"features; got {z.shape[0]} samples x {z.shape[1]} features. Lower "
                    f"{self._qubits_field()}, or add data.")
            self.pca_: PCA | None = PCA(n_components=q, svd_solver="full").fit(z)
            z = self.pca_.transform(z)
        else:
            if z.shape[1] != q:
                raise DataError(
                    f"{where}: reduction is 'none', so its {z.shape[1]} feature(s) must equal its "
                    f"{q} qubit(s). Set {self._qubits_field()}: {z.shape[1]}, or use reduction: "
                    "pca.")
            self.pca_ = None
        self.min_ = z.min(axis=0)
        span = z.max(axis=0) - self.min_
        self.span_ = np.where(span > 0, span, 1.0)
        return z

    def _qubits_field(self) -> str:
        return "feature_map.qubits" if self.name == "*" else f"preprocess.blocks.{self.name}.qubits"

    def _where(self) -> str:
        return "preprocess" if self.name == "*" else f"preprocess.blocks.{self.name}"

    def _clean(self, x: np.ndarray, fitting: bool = False) -> np.ndarray:
        if self.imputer_ is not None:
            x = self.imputer_.transform(x)
        elif np.isnan(x).any():
            raise DataError(f"{self._where()}: {int(np.isnan(x).sum())} missing value(s) in the "
                            "input, and the model was trained without imputation. Fill them in.")
        if self.spec.log1p:
            if (x <= -1).any():
                raise DataError(f"{self._where()}.log1p is on, but {int((x <= -1).sum())} value(s) "
                                "are <= -1 (log1p needs counts or intensities > -1). Turn log1p "
                                "off for this block or fix the values.")
            x = np.log1p(x)
        return x

    def features(self, x: np.ndarray) -> np.ndarray:
        z = self.scaler_.transform(self._clean(x[:, self.columns])[:, self.keep_])
        return self.pca_.transform(z) if self.pca_ is not None else z


class Preprocessor:
    """Maps raw features to circuit parameters; ``fit`` on training samples only.

    ``blocks`` gives each feature's block (default: one block); ``impute`` is the imputation
    strategy (``mean``/``median``) when the missing-data policy keeps NaNs, else ``None``.
    """

    def __init__(self, spec: PreprocessSpec, feature_map: FeatureMapSpec,
                 fusion: FusionSpec | None = None, blocks: Sequence[str] | None = None,
                 impute: str | None = None) -> None:
        self.spec = spec
        self.feature_map = feature_map
        self.fusion = fusion or FusionSpec()
        self.blocks = tuple(blocks) if blocks is not None else None
        self.impute = impute

    def fit(self, x: np.ndarray) -> Preprocessor:
        block_of = np.asarray(self.blocks if self.blocks is not None else ("*",) * x.shape[1])
        names = tuple(dict.fromkeys(block_of.tolist()))
        shares = qubit_shares(self.spec, self.fusion, self.feature_map.qubits, names)
        if shares:
            self.units_ = [_Unit(b, np.flatnonzero(block_of == b), shares[b], self.impute)
                           for b in names]
        else:
            whole = BlockSpec(qubits=self.feature_map.qubits, log1p=self.spec.log1p,
                              variance_top=self.spec.variance_top,
                              standardize=self.spec.standardize, reduction=self.spec.reduction)
            self.units_ = [_Unit("*", np.arange(x.shape[1]), whole, self.impute)]
        for unit in self.units_:
            unit.fit(x)
        return self

    @property
    def parts(self) -> dict[str, slice]:
        """Block -> its columns of ``transform``'s output (its qubits); ``*`` for one pipeline."""
        out, start = {}, 0
        for unit in self.units_:
            out[unit.name] = slice(start, start + unit.spec.qubits)
            start += unit.spec.qubits
        return out

    def features(self, x: np.ndarray) -> np.ndarray:
        """Imputed, filtered, standardised and reduced features, before angle scaling."""
        x = np.asarray(x, dtype=np.float64)
        return np.hstack([u.features(x) for u in self.units_])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Circuit parameters ``bandwidth * angle_range * (z - min) / span``."""
        x = np.asarray(x, dtype=np.float64)
        unit = np.hstack([(u.features(x) - u.min_) / u.span_ for u in self.units_])
        return self.feature_map.bandwidth * self.spec.angle_range * unit
