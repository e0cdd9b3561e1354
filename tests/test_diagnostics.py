"""Kernel diagnostics: alignment for binary, multi-class and regression targets, the geometric
difference of Huang et al. on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import rbf_kernel

from qdist.errors import DataError
from qdist.kernel.diagnostics import (
    geometric_difference,
    kernel_diagnostics,
    kernel_target_alignment,
    rbf_gram,
    target_factors,
)


def psd(n: int, seed: int, rank: int | None = None) -> np.ndarray:
    """A random kernel-like matrix: PSD, unit diagonal."""
    a = np.random.default_rng(seed).normal(size=(n, rank or n))
    k = a @ a.T
    d = np.sqrt(np.diag(k))
    return k / np.outer(d, d)


def explicit_alignment(k, t, centered=False):
    if centered:
        h = np.eye(len(k)) - 1.0 / len(k)
        k, t = h @ k @ h, h @ t @ h
    return np.sum(k * t) / (np.linalg.norm(k) * np.linalg.norm(t))


def test_binary_alignment_is_unchanged_and_keys_stay():
    k = psd(30, 0)
    y = np.random.default_rng(1).integers(0, 2, 30)
    s = np.where(y > 0, 1.0, -1.0)
    diag, eig = kernel_diagnostics(k, y)
    assert diag["kernel_target_alignment"] == pytest.approx(
        np.sum(k * np.outer(s, s)) / (np.linalg.norm(k) * 30), abs=1e-12)
    assert {"kernel_offdiag_mean", "kernel_offdiag_var", "kernel_min_eigenvalue",
            "kernel_effective_dimension", "kernel_concentrated"} <= diag.keys()
    np.testing.assert_allclose(eig, np.sort(np.linalg.eigvalsh(k))[::-1])
    assert "geometric_difference" not in diag


@pytest.mark.parametrize("centered", [False, True])
def test_multiclass_and_regression_alignment_match_explicit_targets(centered):
    k = psd(25, 2)
    rng = np.random.default_rng(3)
    labels = rng.choice(np.array(["a", "b", "c"]), 25)
    c = 3
    t = np.where(labels[:, None] == labels[None, :], 1.0, -1.0 / (c - 1))
    assert kernel_target_alignment(k, labels, centered=centered) == pytest.approx(
        explicit_alignment(k, t, centered), abs=1e-12)
    y = rng.normal(size=25)
    yc = y - y.mean()
    assert kernel_target_alignment(k, y, centered=centered) == pytest.approx(
        explicit_alignment(k, np.outer(yc, yc), centered), abs=1e-12)
    f, w = target_factors(labels)
    np.testing.assert_allclose(f @ np.diag(w) @ f.T, t, atol=1e-12)


def test_ideal_kernel_has_centred_alignment_one():
    labels = np.repeat([0, 1, 2, 3], 5)
    ideal = (labels[:, None] == labels[None, :]).astype(float)
    assert kernel_target_alignment(ideal, labels, centered=True) == pytest.approx(1.0, abs=1e-12)
    assert kernel_target_alignment(ideal, labels) < 1.0  # uncentred: the constant part differs


def test_one_class_is_refused():
    with pytest.raises(DataError, match="two classes"):
        kernel_target_alignment(np.eye(3), np.array([1, 1, 1]))


def test_geometric_difference_of_a_kernel_with_itself():
    k = psd(20, 4)
    assert geometric_difference(k, k, ridge=0.0) == pytest.approx(1.0, abs=1e-8)
    lam = np.linalg.eigvalsh(k * 20 / np.trace(k))
    for ridge in (1e-3, 0.1, 1.0):  # sqrt(||K (K + l)^-2 K||) = max c / (c + l)
        assert geometric_difference(k, k, ridge) == pytest.approx(
            np.max(lam / (lam + ridge)), rel=1e-10)


def test_geometric_difference_commuting_case_and_scaling():
    c = np.array([2.0, 1.0, 0.5, 0.5])  # trace 4 = n
    q = np.array([0.5, 0.5, 1.0, 2.0])
    g = geometric_difference(np.diag(c), np.diag(q), ridge=0.0)
    assert g == pytest.approx(np.sqrt(np.max(q / c)), rel=1e-12)  # sqrt(4)
    assert geometric_difference(3.0 * np.diag(c), 0.2 * np.diag(q), ridge=0.0) == pytest.approx(g)
    assert geometric_difference(np.diag(q), np.diag(c), ridge=0.0) == pytest.approx(2.0)


def test_geometric_difference_is_at_least_one_and_regularisation_lowers_it():
    kc, kq = psd(15, 5), psd(15, 6)
    exact = geometric_difference(kc, kq, ridge=0.0)
    assert exact >= 1.0
    assert geometric_difference(kc, kq, ridge=1e-2) < exact
    low_rank = psd(15, 7, rank=3)
    assert geometric_difference(low_rank, kq, ridge=0.0) == float("inf")
    assert np.isfinite(geometric_difference(low_rank, kq, ridge=1e-3))
    with pytest.raises(DataError, match="shape"):
        geometric_difference(kc, kq[:3, :3])


def test_rbf_gram_matches_scikit_learn_and_diagnostics_report_g():
    f = np.random.default_rng(8).normal(size=(12, 4))
    gamma = 1.0 / (4 * f.var())
    np.testing.assert_allclose(rbf_gram(f), rbf_kernel(f, gamma=gamma), atol=1e-12)
    kq = psd(12, 9)
    diag, _ = kernel_diagnostics(kq, np.arange(12) % 2, k_classical=rbf_gram(f), ridge=1e-2)
    assert diag["geometric_difference"] == pytest.approx(
        geometric_difference(rbf_gram(f), kq, ridge=1e-2))
