"""Multiple kernel learning over omics blocks: one kernel per block, combined.

``sum``: ``K = sum_b w_b K_b`` with the weights normalised to sum 1 (a convex combination of
fidelity kernels is a valid kernel with unit diagonal). ``product``: ``K = prod_b K_b ** w_b``,
elementwise (unit weights give the kernel of the blocks' tensor-product state). Weights are given
in the job file or chosen by centred kernel-target alignment on the training split (Cortes,
Mohri & Rostamizadeh 2012): ``w_b`` proportional to the positive part of each block's alignment,
equal weights when no block aligns (or there is no target).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from qdist.kernel.diagnostics import kernel_target_alignment

__all__ = ["alignment_weights", "combine_kernels"]


def alignment_weights(k_trains: Mapping[str, np.ndarray], y: np.ndarray | None,
                      task: str) -> dict[str, float]:
    """Block weights (summing to 1) from each block kernel's centred alignment to the target."""
    names = list(k_trains)
    if y is None or task == "clustering":
        return {b: 1.0 / len(names) for b in names}
    raw = np.array([max(kernel_target_alignment(k_trains[b], y, task, centered=True), 0.0)
                    for b in names])
    if raw.sum() <= 0:
        raw = np.ones(len(names))
    return dict(zip(names, (raw / raw.sum()).tolist(), strict=True))


def combine_kernels(kernels: Mapping[str, np.ndarray], weights: Mapping[str, float],
                    mode: str) -> np.ndarray:
    """Combine same-shaped block kernels with ``weights`` (``sum`` or ``product``)."""
    names = list(kernels)
    if mode == "sum":
        total = sum(weights[b] for b in names)
        return sum((weights[b] / total) * np.asarray(kernels[b]) for b in names)  # type: ignore[return-value]
    out = np.ones_like(np.asarray(kernels[names[0]]), dtype=np.float64)
    for b in names:
        out *= np.clip(kernels[b], 0.0, None) ** weights[b]  # shot noise can dip below 0
    return out
