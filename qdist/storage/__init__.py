"""Zarr storage: the only package that writes Zarr."""

from qdist.storage.gram_store import DATA_ARRAYS, GramStore
from qdist.storage.kernel_cache import KernelCache

__all__ = ["GramStore", "DATA_ARRAYS", "KernelCache"]
