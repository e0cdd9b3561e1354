"""Pure QPU maths: depolarizing mitigation, PSD repair, the shot budget and QPU tile sizing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdist.errors import PlanError
from qdist.kernel.mitigation import (
    clip_psd,
    clip_psd_joint,
    depolarizing_mitigation,
    survival_from_diagonal,
)
from qdist.planning import make_plan
from qdist.planning.qpu import EXECUTION_LIMIT, check_budget, max_qpu_tile, qpu_budget


def _exact_gram(n=12, q=4, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, 2**q)) + 1j * rng.normal(size=(n, 2**q))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    return np.abs(s.conj() @ s.T) ** 2


def test_depolarizing_mitigation_inverts_the_model():
    q = 4
    k = _exact_gram(q=q)
    lam = np.linspace(0.6, 0.95, k.shape[0])
    pair = np.sqrt(np.outer(lam, lam))
    noisy = pair * k + (1 - pair) * 2.0**-q
    recovered_lam = survival_from_diagonal(np.diag(noisy), q)
    np.testing.assert_allclose(recovered_lam, lam, atol=1e-12)
    np.testing.assert_allclose(depolarizing_mitigation(noisy, recovered_lam, recovered_lam, q), k,
                               atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), noise=st.floats(0.01, 0.3))
def test_clip_psd_is_psd_and_no_farther_than_needed(seed, noise):
    k = _exact_gram(seed=seed)
    rng = np.random.default_rng(seed)
    e = rng.normal(scale=noise, size=k.shape)
    noisy = k + 0.5 * (e + e.T)
    fixed, clipped = clip_psd(noisy)
    assert np.linalg.eigvalsh(fixed).min() > -1e-10
    np.testing.assert_allclose(fixed, fixed.T, atol=0)
    # the clipped matrix is the Frobenius-nearest PSD one: no farther than the exact PSD kernel
    assert np.linalg.norm(fixed - noisy) <= np.linalg.norm(k - noisy) + 1e-9
    assert clipped == int(np.sum(np.linalg.eigvalsh(0.5 * (noisy + noisy.T)) < 0))


def test_clip_psd_joint_keeps_psd_matrix_and_test_rows():
    k = _exact_gram(n=10)
    rows = _exact_gram(n=14)[10:, :10]
    train, test, clipped = clip_psd_joint(k, rows)
    assert clipped == 0
    np.testing.assert_allclose(train, k, atol=1e-12)
    np.testing.assert_allclose(test, rows, atol=1e-10)


@pytest.mark.parametrize(("shots", "edge"), [(1, 3162), (1024, 98), (4096, 49), (100_000, 10)])
def test_qpu_tile_fits_the_execution_limit(shots, edge):
    assert max_qpu_tile(shots) == edge
    assert edge * edge * shots <= EXECUTION_LIMIT < (edge + 1) ** 2 * shots


def test_budget_counts_and_refusal():
    plan = make_plan(10, 4, 4, 0)  # train blocks 4,4,2 ; test block 4
    budget = qpu_budget(plan, shots=100)
    # diagonal tiles: 4*3/2 + 4*3/2 + 2*1/2 = 13 pairs; off-diagonal train: 16+8+8 = 32; test 40
    assert budget["circuits"] == 13 + 32 + 40
    assert budget["shots_total"] == 8500 and budget["jobs"] == len(plan.tiles)
    check_budget(budget, 8500)
    with pytest.raises(PlanError, match=r"needs 8,500 shots .* qpu.max_shots_total=8,499"):
        check_budget(budget, 8499)
    with pytest.raises(PlanError, match="qpu.shots"):
        max_qpu_tile(0)
