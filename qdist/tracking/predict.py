"""Scoring new patients with a logged qdist model (``qdist predict``).

Input: a table (CSV, TSV, Parquet) with the training feature columns, an AnnData file (``.h5ad``:
``X`` columns by ``var_names``, plus ``obs`` columns) or a MuData file (``.h5mu``: every
modality's columns side by side, joined on the sample). The model (an MLflow pyfunc,
:class:`qdist.tracking.model.QuantumKernelModel`) applies the fitted preprocessing, encodes the
samples and computes the kernel against its support vectors only. Identifiers in the input are
replaced by the same keyed pseudonyms as on training input (``QDIST_PSEUDONYM_KEY``); raw ids are
never written out.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from qdist.data.pseudonym import pseudonymize
from qdist.data.table import read_frame
from qdist.errors import DataError

__all__ = ["predict_file", "read_patients"]


def read_patients(path: Path, id_column: str = "sample_id") -> pd.DataFrame:
    """New patients as one wide frame: a table as is; AnnData/MuData as features by name, with
    ``obs`` columns and the sample id in ``id_column``."""
    suffix = path.suffix.lower()
    if suffix not in (".h5ad", ".h5mu"):
        return read_frame(path, "the input")
    from qdist.config import DataSpec
    from qdist.data.readers import read_anndata_frame, read_mudata_frames

    spec = DataSpec(source="anndata" if suffix == ".h5ad" else "mudata", path=str(path),
                    id_column=id_column, label_column=None)
    if suffix == ".h5ad":
        feats, obs = read_anndata_frame(path, spec)
        frames = [feats]
    else:
        mods, obs = read_mudata_frames(path, spec)
        frames = list(mods.values())
    wide = pd.concat([*frames, obs.drop(columns=[c for c in obs.columns
                                                 if any(c in f.columns for f in frames)])], axis=1)
    wide = wide.loc[~wide.index.duplicated()]
    return wide.drop(columns=[id_column], errors="ignore").rename_axis(id_column).reset_index()


def predict_file(model_uri: str, path: str | Path, *, out: str | Path | None = None,
                 id_column: str = "sample_id", tracking_uri: str | None = None) -> pd.DataFrame:
    """Predictions for every row of the table at ``path``; written to ``out`` when given
    (``.csv``, ``.tsv`` or ``.parquet``). Columns: ``sample_id`` (pseudonymous, when the input
    has ``id_column``), ``prediction`` and ``decision``."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    frame = read_patients(Path(path), id_column)
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
