"""Kernel diagnostics: is the kernel informative, or has it concentrated?

- Off-diagonal mean and variance: for expressive maps both shrink exponentially with the qubit
  count (Thanasilp et al.); a variance near zero means a flat kernel.
- Kernel-target alignment ``A = <K, yy^T>_F / (||K||_F ||yy^T||_F)`` with labels in {-1, +1}.
- Eigen-spectrum (``eigh``, the matrix is symmetric) and the effective dimension
  ``(sum l)^2 / sum l^2`` (participation ratio of the eigenvalues).
"""

from __future__ import annotations

import numpy as np

__all__ = ["kernel_diagnostics", "CONCENTRATION_VARIANCE"]

CONCENTRATION_VARIANCE = 1e-4
"""Off-diagonal variance below which the kernel is reported as concentrated."""


def kernel_diagnostics(k: np.ndarray, y: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Scalar diagnostics of a symmetric Gram ``k`` with binary labels ``y``, and its eigenvalues
    in descending order."""
    n = k.shape[0]
    off = k[~np.eye(n, dtype=bool)]
    s = np.where(np.asarray(y) > 0, 1.0, -1.0)
    target = np.outer(s, s)
    alignment = float(np.sum(k * target) / (np.linalg.norm(k) * np.linalg.norm(target)))
    eig = np.linalg.eigvalsh(k)[::-1]
    pos = np.clip(eig, 0.0, None)
    eff_dim = float(pos.sum() ** 2 / np.sum(pos**2)) if pos.any() else 0.0
    return {
        "kernel_offdiag_mean": float(off.mean()),
        "kernel_offdiag_var": float(off.var()),
        "kernel_target_alignment": alignment,
        "kernel_min_eigenvalue": float(eig[-1]),
        "kernel_effective_dimension": eff_dim,
        "kernel_concentrated": float(off.var() < CONCENTRATION_VARIANCE),
    }, eig
