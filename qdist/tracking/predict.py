"""Scoring new patients with a logged qdist model (``qdist predict``).

The model (an MLflow pyfunc, :class:`qdist.tracking.model.QuantumKernelModel`) takes the raw
feature columns it was trained on, applies the fitted preprocessing, encodes the samples and
computes the kernel against its support vectors only. Identifiers in the input are replaced by
the same keyed pseudonyms as on training input (``QDIST_PSEUDONYM_KEY``); raw ids are never
written out.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from qdist.data.pseudonym import pseudonymize
from qdist.data.table import read_frame
from qdist.errors import DataError

__all__ = ["predict_file"]


def predict_file(model_uri: str, path: str | Path, *, out: str | Path | None = None,
                 id_column: str = "sample_id", tracking_uri: str | None = None) -> pd.DataFrame:
    """Predictions for every row of the table at ``path``; written to ``out`` when given
    (``.csv``, ``.tsv`` or ``.parquet``). Columns: ``sample_id`` (pseudonymous, when the input
    has ``id_column``), ``prediction`` and ``decision``."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    frame = read_frame(Path(path))
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # MLflow raises several types for a bad URI or an unreachable store
        raise DataError(f"Cannot load the model {model_uri!r}: {exc}. Give the model URI that "
                        "'qdist run' printed, and --tracking-uri of the store that holds it.") \
            from exc
    try:
        result = model.predict(frame)
    except ValueError as exc:
        raise DataError(f"{Path(path).name} does not fit the model: {exc}") from exc
    if id_column in frame.columns:
        result.insert(0, "sample_id", pseudonymize(frame[id_column].tolist()))
    if out is not None:
        target = Path(out)
        if target.suffix.lower() in (".parquet", ".pq"):
            result.to_parquet(target, index=False)
        else:
            result.to_csv(target, index=False, sep="\t" if target.suffix.lower() == ".tsv" else ",")
    return result
