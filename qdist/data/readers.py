"""Cohorts from files: one table, one table per block, AnnData (``.h5ad``) or MuData (``.h5mu``).

Every source becomes the same thing before any policy is applied: per block, a feature table
indexed by the input's sample id, and a table of targets. :func:`_join` then applies
``data.missing`` (duplicated ids, samples absent from some blocks, missing values, missing
targets) in that order, joins the blocks on the id (blocks in name order, samples in order of
first appearance) and pseudonymises it. Errors count the
problem and point at rows of the input file, never at a raw identifier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qdist.config import DataSpec, MissingSpec
from qdist.data.cohort import Cohort
from qdist.data.pseudonym import pseudonymize
from qdist.data.table import read_frame
from qdist.errors import DataError

__all__ = ["read_cohort", "read_anndata_frame", "read_mudata_frames"]

log = logging.getLogger(__name__)


@dataclass
class _Block:
    name: str
    source: str
    """File name, for messages."""
    frame: pd.DataFrame
    """Feature columns only; index: the input's sample id; row order as in the file."""


def read_cohort(spec: DataSpec) -> Cohort:
    """Read the cohort of a ``table``, ``tables``, ``anndata`` or ``mudata`` source."""
    wanted = [t for t in (spec.label_column, *spec.extra_targets) if t is not None]
    if spec.source == "table":
        assert spec.path is not None  # DataSpec guarantees it
        df = read_frame(Path(spec.path), "data.path")
        blocks = [_from_table("table", Path(spec.path).name, df, spec, wanted, spec.feature_columns)]
        targets = _targets_from([(Path(spec.path).name, df)], spec, wanted)
    elif spec.source == "tables":
        raw = [(name, Path(path), read_frame(Path(path), f"data.tables.{name}"))
               for name, path in sorted(spec.tables.items())]
        blocks = [_from_table(name, path.name, df, spec, wanted, None) for name, path, df in raw]
        sources = [(path.name, df) for _, path, df in raw]
        if spec.targets_path:
            p = Path(spec.targets_path)
            sources = [(p.name, read_frame(p, "data.targets_path"))]
        targets = _targets_from(sources, spec, wanted)
    elif spec.source == "anndata":
        assert spec.path is not None
        feats, obs = read_anndata_frame(Path(spec.path), spec)
        name = Path(spec.path).name
        blocks = [_Block(spec.anndata_block, name, feats)]
        blocks += _obs_block(obs, spec, name)
        targets = _obs_targets(obs, wanted, name)
    else:
        assert spec.path is not None
        mods, obs = read_mudata_frames(Path(spec.path), spec)
        name = Path(spec.path).name
        blocks = [_Block(mod, f"{name}:{mod}", frame) for mod, frame in mods.items()]
        blocks += _obs_block(obs, spec, name)
        targets = _obs_targets(obs, wanted, name)
    # blocks in name order whatever the source, as for the synthetic cohort
    return _join(sorted(blocks, key=lambda b: b.name), targets, spec, wanted)


# ------------------------------------------------------------------------------------ sources
def _from_table(block: str, source: str, df: pd.DataFrame, spec: DataSpec, wanted: list[str],
                columns: tuple[str, ...] | None) -> _Block:
    field = "data.id_column"
    if spec.id_column not in df.columns:
        raise DataError(f"{field}={spec.id_column!r} is not a column of {source}; columns are "
                        f"{_some(df.columns)}. Set {field} to the id column (the same in every "
                        "table).")
    if columns is not None:
        absent = [c for c in columns if c not in df.columns]
        if absent:
            raise DataError(f"data.feature_columns names {absent[:5]}, which are not columns of "
                            f"{source}. Fix the names.")
        feature_cols = list(columns)
    else:
        feature_cols = [c for c in df.columns if c != spec.id_column and c not in wanted]
    frame = df[feature_cols].copy()
    frame.index = pd.Index(df[spec.id_column].to_numpy(), name="id")
    return _Block(block, source, frame)


def _targets_from(sources: list[tuple[str, pd.DataFrame]], spec: DataSpec,
                  wanted: list[str]) -> pd.DataFrame:
    """The target columns, each from the first source that has it."""
    out = {}
    for t in wanted:
        where = [(name, df) for name, df in sources if t in df.columns]
        if not where:
            cols = sorted({c for _, df in sources for c in df.columns} - {spec.id_column})
            field = "data.label_column" if t == spec.label_column else "data.extra_targets"
            raise DataError(f"{field} names {t!r}, which is not a column of "
                            f"{', '.join(n for n, _ in sources)}; columns are {_some(cols)}. "
                            f"Set {field} to the right column" +
                            (", or data.targets_path to the table that has it." if len(sources) > 1
                             or spec.source == "tables" else "."))
        name, df = where[0]
        if spec.id_column not in df.columns:
            raise DataError(f"data.id_column={spec.id_column!r} is not a column of {name}. Every "
                            "table needs the id column.")
        col = df[[spec.id_column, t]].set_index(spec.id_column)[t]
        dup = col.index.duplicated(keep=False)
        if dup.any():
            if spec.missing.duplicates == "error":
                raise DataError(f"{name} has {int(col.index.duplicated().sum())} duplicated id(s) "
                                f"(rows {_rows(np.flatnonzero(dup))}). Deduplicate it, or set "
                                "data.missing.duplicates: first (or mean).")
            col = _dedupe_target(col, t, name, spec.missing)
        out[t] = col
    return pd.DataFrame(out)


def _dedupe_target(col: pd.Series, name: str, source: str, policy: MissingSpec) -> pd.Series:
    if policy.duplicates == "mean":
        disagree = col.groupby(level=0).nunique(dropna=True) > 1
        if disagree.any():
            raise DataError(f"Target {name!r} in {source} has {int(disagree.sum())} duplicated "
                            "id(s) whose rows disagree on it, so they cannot be averaged. Fix "
                            "those rows or use data.missing.duplicates: first.")
    return col[~col.index.duplicated(keep="first")]


def read_anndata_frame(path: Path, spec: DataSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An ``.h5ad`` file's ``X`` (or ``layer``) as a frame indexed by sample id, and its ``obs``."""
    import anndata as ad

    adata = _read_h5(path, ad.read_h5ad)
    return _adata_frame(adata, spec, path.name), _obs_frame(adata.obs, spec, path.name)


def read_mudata_frames(path: Path, spec: DataSpec) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """An ``.h5mu`` file: one frame per modality (sorted by name) and the global ``obs``."""
    import mudata as md

    mdata = _read_h5(path, md.read_h5mu)
    mods = {m: _adata_frame(mdata.mod[m], spec, f"{path.name}:{m}") for m in sorted(mdata.mod)}
    return mods, _obs_frame(mdata.obs, spec, path.name)


def _read_h5(path: Path, reader: object) -> object:
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r} does not exist. Check the path.")
    try:
        return reader(path)  # type: ignore[operator]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path.name} cannot be read as {path.suffix}: {exc}. Check that the file "
                        "is complete and was written by anndata/mudata.") from exc


def _adata_frame(adata: object, spec: DataSpec, source: str) -> pd.DataFrame:
    if spec.layer is not None:
        if spec.layer not in adata.layers:  # type: ignore[attr-defined]
            raise DataError(f"data.layer={spec.layer!r} is not a layer of {source}; layers are "
                            f"{sorted(adata.layers)}. Fix data.layer or set it to null for X.")  # type: ignore[attr-defined]
        x = adata.layers[spec.layer]  # type: ignore[attr-defined]
    else:
        x = adata.X  # type: ignore[attr-defined]
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    ids = _obs_ids(adata.obs, spec)  # type: ignore[attr-defined]
    return pd.DataFrame(np.asarray(x, dtype=np.float64),
                        columns=[str(v) for v in adata.var_names],  # type: ignore[attr-defined]
                        index=pd.Index(ids, name="id"))


def _obs_ids(obs: pd.DataFrame, spec: DataSpec) -> np.ndarray:
    if spec.id_column in obs.columns:
        return obs[spec.id_column].astype(str).to_numpy()
    return np.asarray(obs.index.astype(str))


def _obs_frame(obs: pd.DataFrame, spec: DataSpec, source: str) -> pd.DataFrame:
    frame = obs.copy()
    frame.index = pd.Index(_obs_ids(obs, spec), name="id")
    return frame


def _obs_block(obs: pd.DataFrame, spec: DataSpec, source: str) -> list[_Block]:
    if not spec.obs_features:
        return []
    absent = [c for c in spec.obs_features if c not in obs.columns]
    if absent:
        raise DataError(f"data.obs_features names {absent[:5]}, which are not obs columns of "
                        f"{source}; obs columns are {_some(obs.columns)}. Fix the names.")
    return [_Block("clinical", f"{source}:obs", obs[list(spec.obs_features)].copy())]


def _obs_targets(obs: pd.DataFrame, wanted: list[str], source: str) -> pd.DataFrame:
    absent = [t for t in wanted if t not in obs.columns]
    if absent:
        raise DataError(f"Target(s) {absent} are not obs columns of {source}; obs columns are "
                        f"{_some(obs.columns)}. Set data.label_column (and data.extra_targets) "
                        "to obs columns.")
    out = obs[wanted].copy()
    for t in wanted:  # categorical obs columns hold their categories, not plain values
        if isinstance(out[t].dtype, pd.CategoricalDtype):
            out[t] = out[t].astype(object)
    return out[~out.index.duplicated(keep="first")]


# --------------------------------------------------------------------------------------- join
def _join(blocks: list[_Block], targets: pd.DataFrame, spec: DataSpec, wanted: list[str]) -> Cohort:
    policy = spec.missing
    blocks = [_check_block(b, policy) for b in blocks]
    _check_names(blocks)
    ids = _sample_ids(blocks, policy)
    features, present_nan = [], []
    for b in blocks:
        frame = b.frame.reindex(ids)
        features.append(frame.to_numpy(dtype=np.float64))
        present_nan.append(b.frame.isna().reindex(ids, fill_value=False).to_numpy(dtype=bool))
    x = np.hstack(features)
    nan_in_input = np.hstack(present_nan)
    names = tuple(str(c) for b in blocks for c in b.frame.columns)
    block_of = tuple(b.name for b in blocks for _ in b.frame.columns)

    keep = np.ones(len(ids), dtype=bool)
    tvals = targets.reindex(ids)
    for t in wanted:
        missing = tvals[t].isna().to_numpy()
        if missing.any():
            if policy.targets == "error":
                raise DataError(f"{int(missing.sum())} of {len(ids)} sample(s) have no value for "
                                f"target {t!r} (absent or empty). Drop them, or set "
                                "data.missing.targets: drop.")
            log.warning("Dropping %d sample(s) without target %r (data.missing.targets: drop).",
                        int(missing.sum()), t)
            keep &= ~missing
    rows_nan = nan_in_input.any(axis=1) & keep
    if rows_nan.any():
        cols = sorted({names[c] for c in np.flatnonzero(nan_in_input[rows_nan].any(axis=0))})
        if policy.values == "error":
            raise DataError(
                f"{int(nan_in_input[keep].sum())} missing feature value(s) in {int(rows_nan.sum())} "
                f"sample(s), in column(s) {cols[:5]}{'...' if len(cols) > 5 else ''}. Impute them "
                "before running qdist, or set data.missing.values: drop, impute_mean or "
                "impute_median.")
        if policy.values == "drop":
            log.warning("Dropping %d sample(s) with missing values (data.missing.values: drop).",
                        int(rows_nan.sum()))
            keep &= ~rows_nan
    if not keep.all():
        x, ids = x[keep], ids[keep]
        tvals = tvals[keep]
    if len(ids) == 0:
        raise DataError("No samples are left after applying data.missing. Relax the policy or "
                        "fix the input.")
    return Cohort(features=x, sample_ids=pseudonymize(ids.tolist()), feature_names=names,
                  blocks=block_of, targets={t: tvals[t].to_numpy() for t in wanted},
                  primary=spec.label_column)


def _check_block(b: _Block, policy: MissingSpec) -> _Block:
    frame = b.frame
    if frame.shape[1] == 0:
        raise DataError(f"Block {b.name!r} ({b.source}) has no feature columns. Check the table, "
                        "or leave the block out.")
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        example = frame[non_numeric[0]].dropna().astype(str).head(1).tolist()
        raise DataError(f"Feature column(s) {non_numeric[:5]} of {b.source} are not numeric (e.g. "
                        f"{example}). Encode them as numbers, or leave them out (a target column "
                        "belongs in data.label_column or data.extra_targets).")
    inf = np.isinf(frame.to_numpy(dtype=np.float64))
    if inf.any():
        raise DataError(f"{b.source} has {int(inf.sum())} infinite value(s) in column(s) "
                        f"{sorted({str(frame.columns[c]) for c in np.nonzero(inf)[1]})[:5]}. "
                        "Replace them with finite values or NaN.")
    dup = frame.index.duplicated(keep=False)
    if dup.any():
        n_dup = int(frame.index.duplicated().sum())
        if policy.duplicates == "error":
            raise DataError(f"{b.source} has {n_dup} duplicated id(s) (rows "
                            f"{_rows(np.flatnonzero(dup))}); every sample needs a unique id. "
                            "Deduplicate the table, or set data.missing.duplicates: first (keep "
                            "the first row) or mean (average the rows).")
        log.warning("%s: %d duplicated id(s) resolved by data.missing.duplicates=%s.", b.source,
                    n_dup, policy.duplicates)
        if policy.duplicates == "first":
            frame = frame[~frame.index.duplicated(keep="first")]
        else:
            order = pd.unique(frame.index)
            frame = frame.groupby(level=0, sort=False).mean().reindex(order)
    return _Block(b.name, b.source, frame)


def _check_names(blocks: list[_Block]) -> None:
    seen: dict[str, str] = {}
    for b in blocks:
        for c in b.frame.columns:
            if str(c) in seen and seen[str(c)] != b.name:
                raise DataError(f"Feature {str(c)!r} is in block {seen[str(c)]!r} and in block "
                                f"{b.name!r}; feature names must be unique across blocks (a "
                                "model scores new patients by column name). Rename one of them.")
            seen[str(c)] = b.name


def _sample_ids(blocks: list[_Block], policy: MissingSpec) -> np.ndarray:
    """Samples by first appearance over the blocks (in block order), after the absence policy."""
    union = pd.Index(pd.unique(np.concatenate([b.frame.index.to_numpy() for b in blocks])))
    if len(blocks) == 1:
        return union.to_numpy()
    absent = {b.name: union.difference(b.frame.index) for b in blocks}
    n_absent = {k: len(v) for k, v in absent.items() if len(v)}
    if not n_absent:
        return union.to_numpy()
    if policy.samples == "error":
        worst = max(n_absent, key=n_absent.__getitem__)
        where = next(b for b in blocks if b.name != worst and
                     b.frame.index.isin(absent[worst]).any())
        rows = np.flatnonzero(where.frame.index.isin(absent[worst]))
        raise DataError(
            f"{len(set().union(*map(set, absent.values())))} of {len(union)} sample(s) are absent "
            f"from some blocks ({', '.join(f'{k}: {v}' for k, v in n_absent.items())} missing); "
            f"e.g. rows {_rows(rows)} of {where.source} have no {worst!r} data. Add the data, or "
            "set data.missing.samples: intersect (keep samples present in every block) or impute.")
    if policy.samples == "intersect":
        common = union
        for b in blocks:
            common = common.intersection(b.frame.index, sort=False)
        log.warning("data.missing.samples=intersect: keeping %d of %d samples (absent: %s).",
                    len(common), len(union), n_absent)
        return union[union.isin(common)].to_numpy()
    log.warning("data.missing.samples=impute: %s sample(s) absent per block will be imputed.",
                n_absent)
    return union.to_numpy()


def _rows(positions: np.ndarray, k: int = 5) -> str:
    """1-based data-row numbers (header excluded) for messages."""
    shown = ", ".join(str(int(p) + 1) for p in positions[:k])
    return shown + (", ..." if len(positions) > k else "")


def _some(columns: object, k: int = 10) -> str:
    cols = [str(c) for c in columns]  # type: ignore[attr-defined]
    return str(cols[:k]) + ("..." if len(cols) > k else "")
