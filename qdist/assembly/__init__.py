"""Dask assembly of the stored tiles, kernel checks, and training with scikit-learn."""

from qdist.assembly.assemble import AssembledKernels, assemble, gram_arrays
from qdist.assembly.train import TrainingResult, train_task

__all__ = ["AssembledKernels", "assemble", "gram_arrays", "TrainingResult", "train_task"]
