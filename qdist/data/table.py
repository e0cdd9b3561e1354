"""A user's table (CSV, TSV or Parquet): feature columns, a label column and an id column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qdist.config import DataSpec
from qdist.data.cohort import Cohort
from qdist.data.pseudonym import pseudonymize
from qdist.errors import DataError

__all__ = ["read_table", "read_frame"]


def read_frame(path: Path) -> pd.DataFrame:
    """A CSV, TSV or Parquet file as a DataFrame, with a clear error for anything else."""
    if not path.is_file():
        raise DataError(f"{str(path)!r} does not exist. Check the path.")
    return _read(path)


def _read(path: Path) -> pd.DataFrame:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".csv.gz"):
        return pd.read_csv(path)
    if suffix in (".tsv", ".tsv.gz", ".txt"):
        return pd.read_csv(path, sep="\t")
    raise DataError(f"data.path {str(path)!r} has an unsupported extension {suffix!r}; "
                    "use .csv, .tsv or .parquet.")


def read_table(spec: DataSpec) -> Cohort:
    """Read ``spec.path``; ids are pseudonymised, labels encoded 0/1 in sorted order."""
    assert spec.path is not None  # DataSpec guarantees it for source 'table'
    path = Path(spec.path)
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r} does not exist. Check the path in the job file.")
    df = _read(path)
    for field, col in (("data.id_column", spec.id_column), ("data.label_column", spec.label_column)):
        if col not in df.columns:
            raise DataError(f"{field}={col!r} is not a column of {path.name}; columns are "
                            f"{list(df.columns)[:10]}{'...' if len(df.columns) > 10 else ''}. "
                            f"Set {field} to the right column.")
    if df[spec.id_column].duplicated().any():
        dup = int(df[spec.id_column].duplicated().sum())
        raise DataError(f"data.id_column {spec.id_column!r} has {dup} duplicated id(s); every "
                        "sample needs a unique id. Deduplicate the table.")
    feature_cols = list(spec.feature_columns or [c for c in df.columns
                                                  if c not in (spec.id_column, spec.label_column)])
    missing = [c for c in feature_cols if c not in df.columns]
    if missing:
        raise DataError(f"data.feature_columns names {missing}, which are not columns of "
                        f"{path.name}. Fix the names.")
    non_numeric = [c for c in feature_cols if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        example = df[non_numeric[0]].dropna().astype(str).head(1).tolist()
        raise DataError(
            f"Feature column(s) {non_numeric[:5]} of {path.name} are not numeric (e.g. "
            f"{example}). Encode them as numbers or leave them out of data.feature_columns."
        )
    labels_raw = df[spec.label_column]
    if labels_raw.isna().any():
        raise DataError(f"data.label_column {spec.label_column!r} has "
                        f"{int(labels_raw.isna().sum())} missing label(s). Drop those samples.")
    values = sorted(labels_raw.unique().tolist(), key=str)
    if len(values) > 2:
        raise DataError(f"data.label_column {spec.label_column!r} has {len(values)} classes "
                        f"({values[:5]}); this version trains binary classifiers. Binarise it.")
    codes = {v: i for i, v in enumerate(values)}
    return Cohort(
        features=df[feature_cols].to_numpy(dtype=np.float64),
        labels=labels_raw.map(codes).to_numpy(dtype=np.int64),
        sample_ids=pseudonymize(df[spec.id_column].tolist()),
        feature_names=tuple(str(c) for c in feature_cols),
        blocks=("table",) * len(feature_cols),
        label_names=tuple(str(v) for v in values),
    )
