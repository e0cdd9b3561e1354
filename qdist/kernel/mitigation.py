"""Noise handling for shot-estimated kernels: depolarizing mitigation and PSD repair.

Depolarizing mitigation (global depolarizing model of the compute-uncompute circuit): with
survival probability ``l_i`` for sample ``i``'s circuits, a measured entry is
``K_hat(i, j) = l_ij K(i, j) + (1 - l_ij) / 2^q`` with ``l_ij = sqrt(l_i l_j)``. The diagonal
circuits ``U(x_i)^dagger U(x_i)`` are the identity, so ``K(i, i) = 1`` and their measured value
gives ``l_i = (K_hat(i, i) - 2^-q) / (1 - 2^-q)``; every entry is then inverted:
``K(i, j) = (K_hat(i, j) - (1 - l_ij) 2^-q) / l_ij``, clipped to [0, 1].

PSD repair: a shot-estimated Gram is symmetric but may have negative eigenvalues. Clipping them
(``eigh``, never ``eig``) gives the nearest PSD matrix in Frobenius norm. The joint option
also maps the test rows: they are expressed in the train Gram's eigenbasis and their components
along the clipped directions are dropped, so train and test stay consistent.
"""

from __future__ import annotations

import numpy as np

__all__ = ["survival_from_diagonal", "depolarizing_mitigation", "clip_psd", "clip_psd_joint"]


def survival_from_diagonal(diagonal: np.ndarray, qubits: int) -> np.ndarray:
    """Per-sample survival ``l_i`` from the measured diagonal ``K_hat(i, i)``, in (0, 1]."""
    floor = 2.0**-qubits
    lam = (np.asarray(diagonal, dtype=np.float64) - floor) / (1.0 - floor)
    return np.clip(lam, 1e-6, 1.0)


def depolarizing_mitigation(k: np.ndarray, lam_rows: np.ndarray, lam_cols: np.ndarray,
                            qubits: int) -> np.ndarray:
    """Invert global depolarizing noise entry by entry (see the module docstring)."""
    floor = 2.0**-qubits
    lam = np.sqrt(np.outer(lam_rows, lam_cols))
    return np.clip((k - (1.0 - lam) * floor) / lam, 0.0, 1.0)


def clip_psd(k: np.ndarray) -> tuple[np.ndarray, int]:
    """Nearest PSD matrix (eigenvalues clipped at 0) and the number of eigenvalues clipped."""
    sym = 0.5 * (k + k.T)
    w, v = np.linalg.eigh(sym)
    clipped = int(np.sum(w < 0))
    out = (v * np.clip(w, 0.0, None)) @ v.T
    return 0.5 * (out + out.T), clipped


def clip_psd_joint(k_train: np.ndarray, k_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Repair the train Gram and map the test rows consistently.

    With ``K_train = V diag(w) V^T``, a test row ``k`` has coordinates ``c = V^T k`` along the
    eigenvectors; components along eigenvectors whose eigenvalue was clipped to zero are dropped
    (``c_m = 0`` where ``w_m < 0``), so the test rows live in the span the repaired Gram keeps.
    """
    sym = 0.5 * (k_train + k_train.T)
    w, v = np.linalg.eigh(sym)
    keep = w >= 0
    train = (v * np.where(keep, w, 0.0)) @ v.T
    coords = k_test @ v
    test = (coords * keep) @ v.T
    return 0.5 * (train + train.T), test, int(np.sum(~keep))
