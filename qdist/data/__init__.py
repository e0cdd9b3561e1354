"""Cohorts: loaders, the synthetic multi-omics generator, pseudonymisation and preprocessing."""

from qdist.data.cohort import Cohort, load_cohort
from qdist.data.preprocess import Preprocessor

__all__ = ["Cohort", "load_cohort", "Preprocessor"]
