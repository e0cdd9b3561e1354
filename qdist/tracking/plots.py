"""Diagnostic figures: the Gram heatmap (samples ordered by label) and the eigen-spectrum."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["kernel_heatmap", "spectrum_plot"]

_MAX_HEATMAP = 600


def kernel_heatmap(k: np.ndarray, y: np.ndarray, path: Path, title: str) -> Path:
    """Heatmap of ``k`` with samples sorted by label (subsampled evenly above 600 samples)."""
    order = np.argsort(y, kind="stable")
    if order.size > _MAX_HEATMAP:
        order = order[np.linspace(0, order.size - 1, _MAX_HEATMAP).astype(int)]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(k[np.ix_(order, order)], vmin=0.0, vmax=1.0, cmap="viridis",
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, label="K(x, x')")
    ax.set_title(title)
    ax.set_xlabel("train samples (sorted by label)")
    ax.set_ylabel("train samples (sorted by label)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def spectrum_plot(eigenvalues: np.ndarray, path: Path, title: str) -> Path:
    """Eigenvalues in descending order on a log scale (non-positive ones shown at the floor)."""
    ev = np.asarray(eigenvalues, dtype=float)
    floor = max(ev.max() * 1e-16, 1e-300)
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    ax.semilogy(np.arange(1, ev.size + 1), np.clip(ev, floor, None), marker=".", lw=1)
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
