"""Pseudonymous sample ids: a keyed hash of the input identifier.

The key comes from ``QDIST_PSEUDONYM_KEY`` when set (so a data owner can re-link ids across
runs), otherwise from a per-process random key, so ids cannot be reversed by hashing guesses.
Raw identifiers never leave the loader.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable

import numpy as np

__all__ = ["pseudonymize"]

_PROCESS_KEY = secrets.token_bytes(32)


def _key() -> bytes:
    env = os.environ.get("QDIST_PSEUDONYM_KEY")
    return env.encode() if env else _PROCESS_KEY


def pseudonymize(ids: Iterable[object]) -> np.ndarray:
    """Map each identifier to ``s-<16 hex>`` with HMAC-SHA256 under the pseudonym key."""
    key = _key()
    out = [
        "s-" + hmac.new(key, str(i).encode(), hashlib.sha256).hexdigest()[:16] for i in ids
    ]
    return np.asarray(out, dtype=str)
