"""Projected quantum kernels (Huang et al., Nat. Commun. 12, 2631 (2021)).

Each sample is reduced to its one-qubit reduced density matrices ``rho_k(x)``, k = 0..q-1, and
the kernel is a classical RBF between them:

    k(x, x') = exp(-gamma * sum_k || rho_k(x) - rho_k(x') ||_F^2).

With the Bloch vector ``r_k = (<X_k>, <Y_k>, <Z_k>)``, ``rho_k = (I + r_k . sigma) / 2`` and
``|| rho_k - rho'_k ||_F^2 = |r_k - r'_k|^2 / 2``, so the per-sample feature vector
``f(x) = (r_0, ..., r_{q-1}) / sqrt 2`` (length 3q, :func:`projected_features`) turns the sum
into a squared Euclidean distance. The quantum work is O(n) (one state, or 3q expectation
values measured in the X, Y and Z bases, per sample); every tile and every bandwidth ``gamma``
after that is classical: store ``f`` once, then :func:`squared_distance_tile` and
:func:`projected_kernel_tile` for any ``gamma`` without new quantum work.

From states (:func:`one_qubit_rdms`): for a block of states ``(n, 2**q)`` in Qiskit's
little-endian order, view each state as ``psi[a, s, b]`` with ``s`` the bit of qubit k; then
``rho_k[s, t] = sum_{a, b} psi[a, s, b] conj(psi[a, t, b])``: ``O(n 2**q)`` per qubit,
vectorised over the samples, ``O(n q 2**q)`` in all.

The module is pure (numpy); array work on the states also runs on CuPy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qdist.errors import DataError
from qdist.kernel.tiles import to_numpy

__all__ = ["one_qubit_rdms", "bloch_vectors", "projected_features", "squared_distance_tile",
           "projected_kernel_tile"]


def one_qubit_rdms(states: Any) -> np.ndarray:
    """One-qubit reduced density matrices ``(n, q, 2, 2)`` (complex128) of ``(n, 2**q)`` states."""
    n, dim = states.shape
    q = int(dim).bit_length() - 1
    if dim != 1 << q or q < 1:
        raise DataError(f"states must have 2**q columns; got shape {tuple(states.shape)}.")
    out = np.empty((n, q, 2, 2), dtype=np.complex128)
    for k in range(q):
        psi = states.reshape(n, dim >> (k + 1), 2, 1 << k)
        zero, one = psi[:, :, 0, :], psi[:, :, 1, :]
        p0 = to_numpy((zero.real**2 + zero.imag**2).sum(axis=(1, 2)))
        p1 = to_numpy((one.real**2 + one.imag**2).sum(axis=(1, 2)))
        c = to_numpy((zero * one.conj()).sum(axis=(1, 2)))
        out[:, k, 0, 0], out[:, k, 1, 1], out[:, k, 0, 1], out[:, k, 1, 0] = p0, p1, c, c.conj()
    return out


def bloch_vectors(rdms: np.ndarray) -> np.ndarray:
    """``(n, q, 3)`` Bloch vectors ``(<X>, <Y>, <Z>)`` of one-qubit density matrices
    ``(n, q, 2, 2)``: ``<X> = 2 Re rho_01``, ``<Y> = -2 Im rho_01``, ``<Z> = rho_00 - rho_11``."""
    r01 = rdms[..., 0, 1]
    return np.stack([2.0 * r01.real, -2.0 * r01.imag, (rdms[..., 0, 0] - rdms[..., 1, 1]).real],
                    axis=-1)


def projected_features(rdms_or_bloch: np.ndarray) -> np.ndarray:
    """Per-sample features ``(n, 3q)`` whose squared Euclidean distance is
    ``sum_k ||rho_k - rho'_k||_F^2``; takes RDMs ``(n, q, 2, 2)`` or Bloch vectors ``(n, q, 3)``
    (measured expectation values, e.g. from a QPU)."""
    arr = np.asarray(rdms_or_bloch)
    if arr.ndim == 4 and arr.shape[2:] == (2, 2):
        arr = bloch_vectors(arr)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f"Expected RDMs (n, q, 2, 2) or Bloch vectors (n, q, 3); got shape "
                        f"{arr.shape}.")
    return np.ascontiguousarray(arr.reshape(arr.shape[0], -1) / np.sqrt(2.0), dtype=np.float64)


def squared_distance_tile(fa: np.ndarray, fb: np.ndarray | None = None) -> np.ndarray:
    """``D[i, j] = ||fa_i - fb_j||^2`` (float64, >= 0); ``fb=None``: symmetric, zero diagonal.

    Computed as ``|a|^2 + |b|^2 - 2 a.b`` (one GEMM). The cancellation error is about
    ``1e-16 * (|a|^2 + |b|^2)``, and ``|f|^2 <= q/2``, so entries are exact to ~1e-14 * q.
    """
    fb_ = fa if fb is None else fb
    d = (fa * fa).sum(axis=1)[:, None] + (fb_ * fb_).sum(axis=1)[None, :] - 2.0 * (fa @ fb_.T)
    np.maximum(d, 0.0, out=d)
    if fb is None:
        d = 0.5 * (d + d.T)
        np.fill_diagonal(d, 0.0)
    return d


def projected_kernel_tile(fa: np.ndarray, fb: np.ndarray | None = None, gamma: float = 1.0,
                          distances: np.ndarray | None = None) -> np.ndarray:
    """``exp(-gamma * ||fa_i - fb_j||^2)``; pass ``distances`` (from
    :func:`squared_distance_tile`) to sweep ``gamma`` without recomputing them."""
    if not gamma > 0.0:
        raise DataError(f"The projected kernel's gamma must be a float in (0, inf). Got {gamma} "
                        "instead.")
    d = squared_distance_tile(fa, fb) if distances is None else distances
    return np.exp(-gamma * d)
