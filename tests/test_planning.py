"""The tile plan covers each train entry (i <= j) and each test entry exactly once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdist.errors import PlanError
from qdist.planning import make_plan
from qdist.planning.plan import Tile


@settings(max_examples=80, deadline=None)
@given(n_train=st.integers(2, 90), n_test=st.integers(0, 40), size=st.integers(1, 100),
       seed=st.integers(0, 2**31))
def test_exact_cover(n_train, n_test, size, seed):
    plan = make_plan(n_train, n_test, size, seed)
    train = np.zeros((n_train, n_train), dtype=int)
    test = np.zeros((n_test, n_train), dtype=int)
    for t in plan.tiles:
        assert t.row_block <= t.col_block or t.matrix == "k_test"
        target = train if t.matrix == "k_train" else test
        target[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]] += 1
        assert t.shape[0] <= size and t.shape[1] <= size
        assert Tile.from_dict(t.to_dict()) == t
    upper = np.triu_indices(n_train)
    assert (train[upper] == 1).all()
    # entries strictly below the diagonal are covered only inside diagonal tiles
    for t in plan.tiles:
        if t.matrix == "k_train" and not t.diagonal:
            assert t.rows[1] <= t.cols[0]
    assert (test == 1).all()
    assert plan.summary()["tiles_total"] == len(plan.tiles)


def test_seeds_are_per_tile_and_reproducible():
    a = make_plan(100, 30, 16, seed=5)
    b = make_plan(100, 30, 16, seed=5)
    c = make_plan(100, 30, 16, seed=6)
    assert [t.seed for t in a.tiles] == [t.seed for t in b.tiles]
    assert len({t.seed for t in a.tiles}) == len(a.tiles)
    assert [t.seed for t in a.tiles] != [t.seed for t in c.tiles]


@pytest.mark.parametrize(("n_train", "n_test", "size"), [(1, 5, 4), (10, -1, 4), (10, 2, 0)])
def test_bad_plans_refused(n_train, n_test, size):
    with pytest.raises(PlanError):
        make_plan(n_train, n_test, size, 0)
