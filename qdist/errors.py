"""The qdist error hierarchy.

Every error qdist raises on purpose derives from :class:`QdistError`. Subclasses also inherit
the matching builtin, so ``except ValueError`` keeps working for callers that do not know qdist.
Messages follow one template: what was expected, what was found, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "QdistError",
    "ConfigError",
    "DataError",
    "PlanError",
    "StoreError",
    "StoreMismatchError",
    "IncompleteStoreError",
    "StoreLockedError",
    "KernelCheckError",
    "BackendError",
    "TileError",
]


class QdistError(Exception):
    """Base class of every error qdist raises on purpose."""


class ConfigError(QdistError, ValueError):
    """A job file or config value is malformed, unknown or out of range."""


class DataError(QdistError, ValueError):
    """The cohort cannot be used as given (NaN, non-numeric, too few samples, one class...)."""


class PlanError(QdistError, ValueError):
    """The tile plan cannot be built or would not fit the resources or budget."""


class StoreError(QdistError, OSError):
    """The Zarr Gram store is missing, unreadable or inconsistent."""


class StoreMismatchError(StoreError):
    """The store belongs to another job (different config or data fingerprint)."""


class IncompleteStoreError(StoreError):
    """The store is missing tiles or holds NaN where a tile should be."""


class StoreLockedError(StoreError):
    """Another live driver holds the store's lease."""


class KernelCheckError(QdistError, ArithmeticError):
    """An assembled kernel matrix violates a kernel invariant (symmetry, unit diagonal, [0, 1])."""


class BackendError(QdistError, RuntimeError):
    """A simulator or QPU backend could not be built or failed."""


class TileError(QdistError, RuntimeError):
    """A tile failed after its retry budget was spent."""
