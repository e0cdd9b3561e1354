"""The only package that imports ray: tile workers, the runner and Ray Jobs submission."""

from qdist.orchestration.runner import RunStats, run_tiles

__all__ = ["RunStats", "run_tiles"]
