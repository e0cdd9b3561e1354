"""The QPU path: compute-uncompute circuits, one PUB per tile, Aer / fake-backend / spool providers.

Shot-noise tolerance. With ``s`` shots an entry is estimated as ``K_hat = n_0 / s`` with
``n_0 ~ Binomial(s, K)``, so ``Var[K_hat] = K (1 - K) / s``. We accept
``|K_hat - K| <= 5 * sqrt(K (1 - K) / s) + 1e-9`` per entry (a 5-sigma bound: with seeded
simulators the test is deterministic, and a fresh seed would fail it with probability < 1e-5 per
entry). Two independent estimates differ with variance ``2 K (1 - K) / s``.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from qiskit.circuit.library import zz_feature_map
from qiskit.quantum_info import Statevector

from qdist.backends.qpu import QpuTileSampler, compute_uncompute
from qdist.backends.qpu_circuits import pub_values
from qdist.backends.qpu_providers import IbmCredentials
from qdist.backends.qpu_shots import PubShots
from qdist.backends.spool import SpoolClient
from qdist.errors import BackendError, TileError

REPO = Path(__file__).resolve().parents[1]
FM = zz_feature_map(3, reps=1)
X = np.random.default_rng(1).uniform(0.0, 1.2, size=(9, 3))
_S = np.array([Statevector(FM.assign_parameters(row)).data for row in X])
K = np.abs(_S.conj() @ _S.T) ** 2  # exact kernel, the oracle


def binomial_ok(k_hat: np.ndarray, k: np.ndarray, shots: int) -> bool:
    """``|K_hat - K| <= 5 sqrt(K (1 - K) / s) + 1e-9`` for every entry."""
    return bool(np.all(np.abs(k_hat - k) <= 5 * np.sqrt(k * (1 - k) / shots) + 1e-9))


def run_tile(sampler: QpuTileSampler, rows: tuple[int, int], cols: tuple[int, int], diagonal: bool,
             seed: int = 7) -> tuple[np.ndarray, np.ndarray, str]:
    pairs = sampler.pairs(rows, cols, diagonal)
    pub = sampler.make_pub(X[rows[0]:rows[1]], X[cols[0]:cols[1]], pairs)
    job_id = sampler.submit([pub], seed)
    result = sampler.result(job_id)
    assert len(result) == 1 and len(result[0]) == len(pairs)  # one PUB, the shots of every pair
    values, shots = sampler.tile_values(result[0], pairs, (rows[1] - rows[0], cols[1] - cols[0]), diagonal)
    return values, shots, job_id


# -- pure pieces -----------------------------------------------------------------------------
def test_compute_uncompute_zero_probability_is_the_kernel() -> None:
    cu = compute_uncompute(FM)
    assert [p.name for p in cu.parameters] == ["x[0]", "x[1]", "x[2]", "y[0]", "y[1]", "y[2]"]
    assert cu.count_ops()["measure"] == 3
    bare = cu.remove_final_measurements(inplace=False)
    for i, j in [(0, 1), (2, 7), (4, 4)]:
        p0 = abs(Statevector(bare.assign_parameters(np.r_[X[i], X[j]])).data[0]) ** 2
        assert p0 == pytest.approx(K[i, j], abs=1e-10)


@pytest.mark.parametrize(("rows", "cols", "diagonal", "n"), [
    ((0, 4), (4, 9), False, 20), ((0, 4), (0, 4), True, 6), ((3, 4), (3, 4), True, 0),
    ((0, 1), (0, 5), False, 5),
])
def test_pairs(rows, cols, diagonal, n) -> None:
    pairs = QpuTileSampler.pairs(rows, cols, diagonal)
    assert pairs.shape == (n, 2)
    if diagonal:
        assert np.all(pairs[:, 0] < pairs[:, 1])
    else:
        assert len({tuple(p) for p in pairs.tolist()}) == n


def test_pairs_refuses_a_non_square_diagonal_tile() -> None:
    with pytest.raises(TileError, match="diagonal=False"):
        QpuTileSampler.pairs((0, 4), (0, 5), True)


def test_pub_values_are_matched_by_name_not_position() -> None:
    pairs = np.array([[0, 1], [2, 0]])
    names = ["y[1]", "x[0]", "y[0]", "x[2]", "x[1]", "y[2]"]
    v = pub_values(names, X[:3], X[3:5], pairs)
    assert v[1, 0] == X[3 + 0, 1] and v[1, 1] == X[2, 0] and v[0, 3] == X[0, 2]
    with pytest.raises(TileError, match="compute_uncompute"):
        pub_values(["z[0]"], X[:3], X[3:5], pairs)


# -- (a) Aer with shots against the exact kernel ----------------------------------------------
@pytest.fixture(scope="module")
def aer() -> QpuTileSampler:
    return QpuTileSampler(FM, provider="aer", shots=20_000, seed=3)


def test_aer_off_diagonal_tile_within_shot_noise(aer) -> None:
    values, shots, _ = run_tile(aer, (0, 4), (4, 9), diagonal=False)
    assert values.shape == (4, 5) and values.dtype == np.float64 and shots.dtype == np.int32
    assert np.all(shots == 20_000)
    assert binomial_ok(values, K[0:4, 4:9], 20_000)


def test_aer_diagonal_tile_is_mirrored_with_exact_unit_diagonal(aer) -> None:
    values, shots, _ = run_tile(aer, (0, 4), (0, 4), diagonal=True)
    assert np.array_equal(np.diag(values), np.ones(4)) and np.all(np.diag(shots) == 0)
    assert np.array_equal(values, values.T) and np.array_equal(shots, shots.T)
    assert binomial_ok(values, K[0:4, 0:4], 20_000)


def test_a_rerun_with_the_same_tile_seed_gives_identical_counts(aer) -> None:
    a, _, _ = run_tile(aer, (0, 2), (4, 6), diagonal=False, seed=11)
    b, _, _ = run_tile(aer, (0, 2), (4, 6), diagonal=False, seed=11)
    assert np.array_equal(a, b)


def test_pub_shots_counts_match_qiskit(aer) -> None:
    pairs = aer.pairs((0, 3), (3, 6), False)
    job = aer._sampler(5).run([aer.make_pub(X[0:3], X[3:6], pairs)], shots=500)
    bits = job.result()[0].data.meas
    shots = PubShots.from_bit_array(bits)
    assert [shots.counts(i) for i in range(len(pairs))] == [bits.get_counts(loc=i)
                                                          for i in range(len(pairs))]
    zeros = [bits.get_counts(loc=i).get("000", 0) / 500 for i in range(len(pairs))]
    np.testing.assert_allclose(shots.zero_probabilities(), zeros, rtol=0, atol=1e-15)


def test_a_one_by_one_diagonal_tile_needs_no_job(aer) -> None:
    pairs = aer.pairs((2, 3), (2, 3), True)
    with pytest.raises(TileError, match="no pairs"):
        aer.make_pub(X[2:3], X[2:3], pairs)
    values, shots = aer.tile_values(None, pairs, (1, 1), diagonal=True)
    assert values.tolist() == [[1.0]] and shots.tolist() == [[0]]


def test_tile_values_refuses_counts_of_another_tile(aer) -> None:
    with pytest.raises(TileError, match="does not belong"):
        one_pair = PubShots(np.zeros((1, 5, 1), dtype=np.uint8), 3)
        aer.tile_values(one_pair, aer.pairs((0, 2), (2, 4), False), (2, 2), diagonal=False)


def test_pickle_keeps_only_settings_and_rebuilds_the_same_isa_circuit(aer) -> None:
    clone = pickle.loads(pickle.dumps(aer))
    assert clone.parameter_names == aer.parameter_names
    assert repr(clone) == repr(aer) and clone.physical_qubits == aer.physical_qubits
    values = np.r_[X[0], X[1]]  # parameters are new objects after a rebuild: compare bound circuits
    assert clone.isa_circuit.assign_parameters(values) == aer.isa_circuit.assign_parameters(values)


def test_estimate_counts_circuits_and_shots(aer) -> None:
    est = aer.estimate(n_pairs_total=4950, n_jobs=3)
    assert est["circuits"] == 4950 and est["jobs"] == 3 and est["shots_total"] == 4950 * 20_000
    assert est["qpu_seconds_estimate"] > 4950 * 20_000 * 250e-6 and "estimate" in est["model"]
    assert est["max_pairs_per_job"] == 500


def test_local_jobs_cannot_be_reattached(aer) -> None:
    with pytest.raises(BackendError, match="Resubmit"):
        aer.attach("job-from-an-earlier-process")


# -- (b) local testing mode with fake backends -------------------------------------------------
def test_fake_torino_local_mode_is_near_exact() -> None:
    # Noise tolerance: FakeTorino's gate and readout errors move these 3-qubit entries by about
    # 0.03 (seen: max 0.029, mean 0.010 at 4,000 shots), so we allow 0.1 per entry plus 5 sigma.
    s = QpuTileSampler(FM, provider="fake", backend_name="fake_torino", shots=4000, seed=3)
    assert s.isa_circuit.count_ops().get("cz", 0) > 0  # transpiled to the Heron ISA
    t0 = time.perf_counter()
    values, _, _ = run_tile(s, (0, 4), (4, 9), diagonal=False)
    logging.getLogger(__name__).info("fake_torino tile 4x5 x 4000 shots: %.2f s", time.perf_counter() - t0)
    exact = K[0:4, 4:9]
    assert np.all(np.abs(values - exact) <= 0.1 + 5 * np.sqrt(exact * (1 - exact) / 4000))


def test_fake_jobs_run_in_a_batch_like_hardware_and_the_batch_is_closed() -> None:
    """``fake`` submits through ``Batch`` exactly as ``ibm`` does (local testing mode runs it in
    process), seeded per tile; ``close()`` ends the batch and a later job opens a new one."""
    from qiskit_ibm_runtime import Batch

    s = QpuTileSampler(FM, provider="fake", backend_name="fake_manila", shots=500, seed=3)
    first, _, _ = run_tile(s, (0, 3), (3, 6), diagonal=False, seed=7)
    batch = s._batch
    assert isinstance(batch, Batch) and batch._active
    again, _, _ = run_tile(s, (0, 3), (3, 6), diagonal=False, seed=7)
    other, _, _ = run_tile(s, (0, 3), (3, 6), diagonal=False, seed=8)
    assert s._batch is batch  # one batch for the run
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    s.close()
    assert s._batch is None and not batch._active
    run_tile(s, (0, 3), (3, 6), diagonal=False)
    assert s._batch is not None and s._batch is not batch


def test_readout_mitigation_moves_fake_entries_closer_to_exact() -> None:
    # FakeManila has 1-6 % readout errors per qubit. The runs are seeded (transpiler and
    # simulator), so the comparison is deterministic: it is the same circuit and the same counts,
    # only with and without the tensored inverse. Seen: mean abs error 0.030 -> 0.021.
    errs = {}
    for mitigate in (False, True):
        s = QpuTileSampler(FM, provider="fake", backend_name="fake_manila", shots=4000, seed=3,
                           readout_mitigation=mitigate)
        values, _, _ = run_tile(s, (0, 4), (4, 9), diagonal=False)
        assert np.all((values >= 0) & (values <= 1))
        errs[mitigate] = np.abs(values - K[0:4, 4:9]).mean()
        assert errs[mitigate] < 0.06  # noise tolerance of this device (gate + readout errors)
    assert errs[True] < errs[False]


# -- (d) credentials ---------------------------------------------------------------------------
def test_missing_token_names_the_variable(monkeypatch) -> None:
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", "crn:v1:test")
    with pytest.raises(BackendError, match="QISKIT_IBM_TOKEN"):
        QpuTileSampler(FM, provider="ibm", backend_name="ibm_torino")


def test_missing_instance_and_bad_channel(monkeypatch) -> None:
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "t")
    monkeypatch.delenv("QISKIT_IBM_INSTANCE", raising=False)
    with pytest.raises(BackendError, match="QISKIT_IBM_INSTANCE"):
        IbmCredentials.from_env()
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", "crn:v1:test")
    monkeypatch.setenv("QISKIT_IBM_CHANNEL", "ibm_quantum")
    with pytest.raises(BackendError, match="QISKIT_IBM_CHANNEL"):
        IbmCredentials.from_env()


def test_the_token_never_appears_in_errors_reprs_or_logs(monkeypatch, caplog) -> None:
    secret = "sk-SECRET-7f3a9c1e2b4d6f8a0c2e4a6b8d0f1a3c"
    monkeypatch.setenv("QISKIT_IBM_TOKEN", secret)
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", "crn:v1:bluemix:public:quantum-computing:us-east:a/x:y::")
    monkeypatch.delenv("QISKIT_IBM_CHANNEL", raising=False)
    creds = IbmCredentials.from_env()
    assert creds.token == secret and secret not in repr(creds) and secret not in str(creds)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as info:  # no network here: the service cannot be reached
        QpuTileSampler(FM, provider="ibm", backend_name="ibm_torino")
    chain, exc = [], info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert all(secret not in str(e) and secret not in repr(e) for e in chain)
    assert "QISKIT_IBM" in str(info.value)
    assert secret not in caplog.text


# -- (c), (e), (f) the spool service -----------------------------------------------------------
@pytest.fixture(scope="module")
def spool(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spool")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(root.parent / f"{root.name}-service.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "qdist.backends.spool", "serve", str(root),
                                 "--backend", "aer", "--delay", "0.5", "--poll", "0.05"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        yield root
        proc.terminate()
        proc.wait(timeout=10)


def test_spool_matches_aer_and_a_new_process_reattaches_without_resubmitting(spool, aer) -> None:
    shots = 20_000
    # A driver process submits one tile and exits while the job is still queued (--delay 0.5).
    code = (
        "import numpy as np, sys\n"
        "from qiskit.circuit.library import zz_feature_map\n"
        "from qdist.backends.qpu import QpuTileSampler\n"
        f"X = np.array({X.tolist()!r})\n"
        f"s = QpuTileSampler(zz_feature_map(3, reps=1), provider='spool', shots={shots}, seed=3, "
        f"spool_dir={str(spool)!r})\n"
        "p = s.pairs((0, 4), (4, 9), False)\n"
        "j = s.submit([s.make_pub(X[0:4], X[4:9], p)], 7)\n"
        "print(j, s.status(j))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, check=True)
    job_id, status_at_exit = out.stdout.split()[-2:]
    assert status_at_exit in ("QUEUED", "RUNNING")
    client = SpoolClient(spool)
    n_jobs = len(client.job_ids())

    fresh = QpuTileSampler(FM, provider="spool", shots=shots, seed=3, spool_dir=str(spool))
    fresh.attach(job_id)
    pairs = fresh.pairs((0, 4), (4, 9), False)
    result = fresh.result(job_id, timeout=60)
    assert fresh.status(job_id) == "DONE"
    values, _ = fresh.tile_values(result[0], pairs, (4, 5), diagonal=False)
    assert binomial_ok(values, K[0:4, 4:9], shots)
    aer_values, _, _ = run_tile(aer, (0, 4), (4, 9), diagonal=False, seed=8)
    exact = K[0:4, 4:9]  # two independent estimates: Var[difference] = 2 K (1 - K) / s
    assert np.all(np.abs(values - aer_values) <= 5 * np.sqrt(2 * exact * (1 - exact) / shots) + 1e-9)
    again = QpuTileSampler(FM, provider="spool", shots=shots, seed=3, spool_dir=str(spool))
    again.attach(job_id)
    assert again.result(job_id) == result
    assert len(client.job_ids()) == n_jobs  # attaching submitted nothing


def test_one_pub_and_one_job_per_tile(spool) -> None:
    s = QpuTileSampler(FM, provider="spool", shots=200, seed=3, spool_dir=str(spool))
    before = len(SpoolClient(spool).job_ids())
    tiles = [((0, 3), (0, 3), True), ((0, 3), (3, 6), False), ((3, 6), (6, 9), False)]
    ids = [s.submit([s.make_pub(X[r[0]:r[1]], X[c[0]:c[1]], s.pairs(r, c, d))], 1) for r, c, d in tiles]
    assert len(SpoolClient(spool).job_ids()) == before + len(tiles)
    for job_id, (r, c, d) in zip(ids, tiles, strict=True):
        with np.load(spool / "jobs" / job_id / "params.npz") as z:
            assert list(z.keys()) == ["values_0"] and z["values_0"].shape == (len(s.pairs(r, c, d)), 6)
        assert [len(p) for p in s.result(job_id, timeout=60)] == [len(s.pairs(r, c, d))]


def test_a_job_with_bad_input_ends_in_error_with_a_message(spool) -> None:
    client = SpoolClient(spool)
    s = QpuTileSampler(FM, provider="spool", shots=100, seed=3, spool_dir=str(spool))
    bad = client.submit([s.isa_circuit], [np.zeros((4, 5))], shots=100, seed=1, backend="aer")
    alien = client.submit([s.isa_circuit], [np.zeros((2, 6))], shots=100, seed=1, backend="fake_manila")
    with pytest.raises(TileError, match=r"shape \(4, 5\)"):
        s.result(bad, timeout=60)
    assert s.status(bad) == "ERROR" and "6 parameters" in client.status(bad)[1]
    with pytest.raises(TileError, match="fake_manila"):
        s.result(alien, timeout=60)
    with pytest.raises(BackendError, match="never submitted"):
        s.attach("no-such-job")


@pytest.mark.parametrize("num_bits", [3, 8, 11, 20])
def test_pub_shots_estimates_match_the_formula_for_any_width(num_bits) -> None:
    """Counts, the all-zeros fraction and the tensored mitigation, from packed shots of any
    register width, against qiskit's BitArray counts and the formula written shot by shot."""
    from qiskit.primitives import BitArray

    rng = np.random.default_rng(num_bits)
    n_pairs, n_shots, n_bytes = 4, 300, (num_bits + 7) // 8
    bits = rng.integers(0, 256, size=(n_pairs, n_shots, n_bytes), dtype=np.uint8)
    bits[:, :, 0] &= (1 << (num_bits - 8 * (n_bytes - 1))) - 1  # clear the padding bits
    bits[:, : n_shots // 3] = 0  # plenty of all-zero shots
    shots = PubShots(bits, num_bits)
    array = BitArray(bits, num_bits)
    assert [shots.counts(i) for i in range(n_pairs)] == [array.get_counts(loc=i)
                                                        for i in range(n_pairs)]
    unpacked = np.unpackbits(bits, axis=2, bitorder="big")[:, :, ::-1][:, :, :num_bits]  # clbit k
    np.testing.assert_allclose(shots.zero_probabilities(), (unpacked == 0).all(axis=2).mean(axis=1),
                               rtol=0, atol=1e-15)
    err = rng.uniform(0.0, 0.08, size=(num_bits, 2))
    inverses = np.array([np.linalg.inv([[1 - e10, e01], [e10, 1 - e01]]) for e10, e01 in err])
    want = np.prod(inverses[np.arange(num_bits), 0, unpacked], axis=2).mean(axis=1)
    np.testing.assert_allclose(shots.zero_probabilities(inverses), want, rtol=1e-12, atol=0)
    with pytest.raises(TileError, match=rf"expected \({num_bits}, 2, 2\)"):
        shots.zero_probabilities(inverses[:-1])
