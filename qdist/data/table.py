"""Reading one table (CSV, TSV or Parquet) with clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qdist.errors import DataError

__all__ = ["read_frame", "TABLE_SUFFIXES"]

TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".parquet", ".pq")


def read_frame(path: Path, field: str = "data.path") -> pd.DataFrame:
    """A CSV, TSV or Parquet file as a DataFrame; ``field`` names the job-file field in errors."""
    if not path.is_file():
        raise DataError(f"{field} {str(path)!r} does not exist. Check the path in the job file.")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".csv.gz"):
        return pd.read_csv(path)
    if suffix in (".tsv", ".tsv.gz", ".txt"):
        return pd.read_csv(path, sep="\t")
    raise DataError(f"{field} {str(path)!r} has an unsupported extension {suffix!r}; use .csv, "
                    ".tsv or .parquet (or data.source: anndata / mudata for .h5ad / .h5mu).")
