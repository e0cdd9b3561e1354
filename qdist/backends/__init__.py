"""Per-sample state backends, built by one lazily-importing factory."""

from qdist.backends.base import StateBackend
from qdist.backends.factory import make_backend

__all__ = ["StateBackend", "make_backend"]
