"""qdist: distributed, tiled, resumable quantum-kernel computation for patient cohorts.

Notebook API::

    import qdist
    result = qdist.run_job("jobs/demo.yaml", out="runs/demo")
    view = qdist.open_store(result.store)
    K = view.k_train.compute()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qdist.config import RunConfig, load_config
from qdist.errors import QdistError

__version__ = "0.1.0"

__all__ = ["RunConfig", "load_config", "QdistError", "run_job", "open_store", "compute_gram",
           "__version__"]

if TYPE_CHECKING:
    from qdist.api import compute_gram, open_store, run_job


def __getattr__(name: str) -> Any:
    if name in ("run_job", "open_store", "compute_gram"):
        from qdist import api

        return getattr(api, name)
    raise AttributeError(f"module 'qdist' has no attribute {name!r}")
