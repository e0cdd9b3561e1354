"""The only package that imports ray: tile workers, the runner and (later) job submission."""

from qdist.orchestration.runner import RunStats, run_tiles

__all__ = ["RunStats", "run_tiles"]
