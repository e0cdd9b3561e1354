"""Ray tile workers write the store; results are independent of tile size and worker count, and
equal the oracle evaluated on what the store itself holds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit_machine_learning.kernels import FidelityStatevectorKernel

from qdist.api import open_store
from qdist.assembly import assemble
from qdist.config import config_from_dict
from qdist.errors import TileError
from qdist.events import TileCompleted
from qdist.orchestration import run_tiles
from qdist.pipeline import _store_arrays, prepare
from qdist.planning import make_plan
from qdist.storage import GramStore

from .conftest import small_job

pytestmark = pytest.mark.usefixtures("ray_session")


def _run(tmp_path, job, tile_size=None, workers=None, name="s.zarr"):
    if tile_size is not None:
        job = {**job, "tiles": {"size": tile_size, "workers": workers}}
    cfg = config_from_dict(job)
    prep = prepare(cfg)
    location = str(tmp_path / name)
    store = GramStore.create(location, _store_arrays(prep), prep.plan.tile_size,
                             {"fingerprint": prep.fingerprint})
    events = []
    stats = run_tiles(store.missing(prep.plan), location, cfg.backend, workers=cfg.tiles.workers,
                      callbacks=[events.append])
    return prep, store, stats, events


@pytest.mark.parametrize("kind", ["zz", "z", "pauli"])
def test_store_matches_oracle_on_stored_inputs(tmp_path, kind):
    fm = {"kind": kind, "qubits": 3, "reps": 2, "paulis": ["Z", "YY", "XZ"]}
    prep, store, stats, events = _run(tmp_path, small_job(tmp_path, feature_map=fm))
    assert stats.tiles_computed == len(prep.plan.tiles)
    assert [e.done for e in events if isinstance(e, TileCompleted)] == list(
        range(1, len(prep.plan.tiles) + 1))
    view = open_store(store.location)
    oracle = FidelityStatevectorKernel(feature_map=view.feature_map)
    np.testing.assert_allclose(view.k_train.compute(), oracle.evaluate(view.x_train),
                               atol=1e-10, rtol=0)
    np.testing.assert_allclose(view.k_test.compute(), oracle.evaluate(view.x_test, view.x_train),
                               atol=1e-10, rtol=0)


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tile_size=st.integers(3, 50), workers=st.integers(1, 2))
def test_tile_size_and_workers_do_not_change_the_matrices(tmp_path_factory, tile_size, workers):
    tmp = tmp_path_factory.mktemp("prop")
    job = small_job(tmp, data={"source": "synthetic",
                               "synthetic": {"n_samples": 40, "blocks": {"a": 6}}})
    ref_prep, ref_store, _, _ = _run(tmp, job, tile_size=40, workers=1, name="ref.zarr")
    prep, store, _, _ = _run(tmp, job, tile_size=tile_size, workers=workers)
    a = assemble(ref_store, ref_prep.plan)
    b = assemble(store, prep.plan)
    np.testing.assert_allclose(b.k_train, a.k_train, atol=1e-13, rtol=0)
    np.testing.assert_allclose(b.k_test, a.k_test, atol=1e-13, rtol=0)


@pytest.mark.parametrize("kind", ["aer", "statevector"])
def test_backends_on_ray_agree_with_batched(tmp_path, kind):
    job = small_job(tmp_path)
    _, ref_store, _, _ = _run(tmp_path, job, name="batched.zarr")
    prep, store, _, _ = _run(tmp_path, {**job, "backend": {"kind": kind}}, name=f"{kind}.zarr")
    np.testing.assert_allclose(assemble(store, prep.plan).k_train,
                               assemble(ref_store, prep.plan).k_train, atol=1e-10)


def test_failing_tile_names_the_tile(tmp_path):
    job = small_job(tmp_path)
    cfg = config_from_dict(job)
    prep = prepare(cfg)
    location = str(tmp_path / "s.zarr")
    GramStore.create(location, _store_arrays(prep), prep.plan.tile_size, {"fingerprint": "x"})
    bad_plan = make_plan(prep.plan.n_train + 5, prep.plan.n_test, prep.plan.tile_size, 0)
    last = [t for t in bad_plan.tiles if t.matrix == "k_train"][-1]  # rows beyond the data
    with pytest.raises(TileError, match=last.key.replace(".", r"\.")):
        run_tiles([last], location, cfg.backend, workers=1)


def test_prepare_is_deterministic(tmp_path):
    """The same job prepared twice has the same fingerprint (a resume must recognise its store)."""
    cfg = config_from_dict(small_job(tmp_path))
    a, b = prepare(cfg), prepare(cfg)
    assert a.fingerprint == b.fingerprint
    np.testing.assert_array_equal(a.x_train, b.x_train)
    other = config_from_dict(small_job(tmp_path, feature_map={"kind": "zz", "qubits": 3,
                                                              "reps": 3}))
    assert prepare(other).fingerprint != a.fingerprint


@pytest.mark.parametrize(("device", "store_name", "needle"), [
    # no node has a GPU: the workers wait to be placed until the start timeout
    ("GPU", "s.zarr", r"none of the 2 tile workers started within 3 s; each needs .*'num_gpus': 1"),
    # placed, but a worker cannot be built: its store is not where it looks (as when the output
    # folder is not shared with the worker nodes); the cause is named
    ("CPU", "elsewhere.zarr", r"No tile worker could start: .*elsewhere\.zarr"),
])
def test_workers_that_cannot_start_stop_the_run_with_the_reason(tmp_path, device, store_name,
                                                                  needle):
    from qdist.config import BackendSpec

    cfg = config_from_dict(small_job(tmp_path))
    prep = prepare(cfg)
    store = GramStore.create(str(tmp_path / "s.zarr"), _store_arrays(prep), prep.plan.tile_size,
                             {"fingerprint": prep.fingerprint})
    with pytest.raises(TileError, match=needle):
        run_tiles(store.missing(prep.plan), str(tmp_path / store_name),
                  BackendSpec(device=device), workers=2, start_timeout=3)
    assert len(store.missing(prep.plan)) == len(prep.plan.tiles)  # nothing written
