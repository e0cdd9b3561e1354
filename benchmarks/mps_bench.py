"""MPS benchmark: many-qubit fidelity kernels with qdist's MPS backend, Aer's MPS as the anchor.

For each point (n samples, q qubits, reps, entanglement) of a ZZ feature map, inputs uniform in
[0, pi] times the bandwidth (default 0.02, where the 100-qubit kernel is still informative;
the off-diagonal mean is reported):

- ``states``: :class:`qdist.backends.mps.MpsBackend` for all n samples (circuit compilation
  timed apart), with the largest bond, truncation error and distance bound over the samples.
- ``Gram``: every upper-triangle tile (edge ``--tile``) with ``mps_fidelity_tile``, in one
  process and, with ``--workers 2``, in a pool of worker processes with one BLAS thread each
  (the states are shipped to them, as Ray would); time per entry = wall time / n^2 as in ``kernel_bench.py``.
- ``projected``: one-qubit RDMs of all samples (``mps_one_qubit_rdms``), the input of a
  projected kernel.
- ``Aer states``: ``AerSimulator(method="matrix_product_state")`` with
  ``save_matrix_product_state``, parameter binds for a subset, per sample.
- ``Aer pair``: the compute-uncompute circuit ``U(y)^dag U(x)`` on Aer's MPS with
  ``save_amplitudes([0])``, per pair (transpilation excluded), on a few pairs whose kernel entries
  are compared with qdist's (an independent check at 100+ qubits, where no statevector fits);
  ``Aer Gram h`` extrapolates that to the n(n-1)/2 pairs of the Gram.

Run: ``python benchmarks/mps_bench.py`` (full grid, several minutes) or ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_bench import RESULTS, machine, timed

from qdist.backends.mps import (
    MpsBackend,
    MpsStates,
    fidelity_error_bound,
    mps_fidelity_tile,
    mps_one_qubit_rdms,
)

FULL_GRID = [(1000, 100, 2, "linear"), (1000, 200, 2, "linear"), (1000, 100, 3, "linear"),
             (300, 40, 2, "circular")]
QUICK_GRID = [(200, 100, 2, "linear")]
AER_BASIS = ["h", "p", "cx", "u"]


def feature_map(q: int, reps: int, entanglement: str) -> Any:
    """Qiskit's ZZ feature map, as ``build_feature_map`` makes it (whose spec caps q at 30 for
    the statevector backends)."""
    from qiskit.circuit.library import zz_feature_map

    return zz_feature_map(q, reps=reps, entanglement=entanglement)


def _one_blas_thread() -> None:
    """Pool workers get one BLAS thread each, as Ray gives a one-CPU actor (two workers with
    two threads each on two cores ran slower than one process)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _tile(args: tuple[MpsStates, MpsStates | None]) -> np.ndarray:
    return mps_fidelity_tile(*args)


def gram(states: MpsStates, tile: int, workers: int) -> np.ndarray:
    """The full Gram from its upper-triangle tiles, mirrored."""
    n = len(states)
    blocks = [states.take(slice(s, s + tile)) for s in range(0, n, tile)]
    jobs = [(i, j) for i in range(len(blocks)) for j in range(i, len(blocks))]
    work = [(blocks[i], None if i == j else blocks[j]) for i, j in jobs]
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_one_blas_thread) as pool:
            tiles = list(pool.map(_tile, work))
    else:
        tiles = [_tile(w) for w in work]
    k = np.empty((n, n))
    for (i, j), t in zip(jobs, tiles, strict=True):
        k[i * tile:i * tile + t.shape[0], j * tile:j * tile + t.shape[1]] = t
        k[j * tile:j * tile + t.shape[1], i * tile:i * tile + t.shape[0]] = t.T
    return k


def aer_states_per_sample(circuit: Any, x: np.ndarray) -> tuple[float, int]:
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="matrix_product_state")
    qc = transpile(circuit, basis_gates=AER_BASIS, optimization_level=0)
    qc.save_matrix_product_state()
    binds = [{p: x[:, k].tolist() for k, p in enumerate(circuit.parameters)}]
    start = time.perf_counter()
    result = sim.run([qc], parameter_binds=binds).result()
    seconds = (time.perf_counter() - start) / len(x)
    bond = max(m[0].shape[1] for m in result.data(0)["matrix_product_state"][0])
    return seconds, int(bond)


def aer_pairs(circuit: Any, x: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[float, list[float]]:
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="matrix_product_state")
    seconds, values = 0.0, []
    for i, j in pairs:
        qc = circuit.assign_parameters(x[i]).compose(circuit.assign_parameters(x[j]).inverse())
        qc = transpile(qc, basis_gates=AER_BASIS, optimization_level=0)
        qc.save_amplitudes([0])
        start = time.perf_counter()
        amp = sim.run(qc).result().data(0)["amplitudes"][0]
        seconds += time.perf_counter() - start
        values.append(float(abs(amp) ** 2))
    return seconds / len(pairs), values


def best(repeat: int, fn: Any) -> tuple[float, int, Any]:
    """The fastest of ``repeat`` timed runs (the machine is shared: the minimum is the least
    disturbed), with the largest memory growth."""
    runs = [timed(fn) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[0][2]


def run_point(n: int, q: int, reps: int, ent: str, tile: int, bandwidth: float, workers: int,
              aer_samples: int, aer_pair_count: int, repeat: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    circuit = feature_map(q, reps, ent)
    x = bandwidth * np.random.default_rng(n + q).uniform(0, np.pi, (n, circuit.num_parameters))
    compile_s, _, backend = timed(lambda: MpsBackend(circuit))
    states_s, states_mem, states = best(repeat, lambda: backend.states(x))
    gram_s, gram_mem, k = best(repeat, lambda: gram(states, tile, 1))
    row: dict[str, Any] = {
        "n": n, "qubits": q, "reps": reps, "entanglement": ent, "bandwidth": bandwidth,
        "tile": tile, "repeat": repeat, "compile_s": compile_s, "states_s": states_s,
        "states_ms_per_sample": 1e3 * states_s / n, "gram_s": gram_s,
        "us_per_entry": 1e6 * gram_s / n**2,
        "max_bond": int(states.bond_dims.max()),
        "max_truncation_error": float(states.truncation_error.max()),
        "max_distance_bound": float(states.distance_bound.max()),
        "max_kernel_error_bound": float(fidelity_error_bound(states, tile=k).max()),
        "offdiag_mean": float(k[~np.eye(n, dtype=bool)].mean()),
        "peak_mib": max(states_mem, gram_mem) / 2**20,
    }
    if workers > 1:
        row["gram_workers"] = workers
        row["gram_parallel_s"], _, k2 = best(repeat, lambda: gram(states, tile, workers))
        row["parallel_max_abs_diff"] = float(np.abs(k2 - k).max())
    row["projected_rdms_s"], _, _ = timed(lambda: mps_one_qubit_rdms(states))
    if aer_samples:
        row["aer_states_ms_per_sample"], row["aer_max_bond"] = (
            v * 1e3 if i == 0 else v for i, v in
            enumerate(aer_states_per_sample(circuit, x[:aer_samples])))
    if aer_pair_count:
        rng = np.random.default_rng(1)
        pairs = [tuple(int(v) for v in rng.choice(n, 2, replace=False))
                 for _ in range(aer_pair_count)]
        per_pair, values = aer_pairs(circuit, x, pairs)  # type: ignore[arg-type]
        ours = np.array([k[i, j] for i, j in pairs])
        row["aer_pair_s"] = per_pair
        row["aer_gram_hours_extrapolated"] = per_pair * n * (n - 1) / 2 / 3600
        row["aer_pair_max_abs_diff"] = float(np.abs(ours - np.array(values)).max())
        row["aer_pair_values"] = values
    row["load_average_1min"] = [load_before, os.getloadavg()[0]]
    return row


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    def f(v: Any, fmt: str = ".3g") -> str:
        return "-" if v is None else format(v, fmt)

    m = meta["machine"]
    lines = [f"# MPS kernel benchmark ({meta['date']})", "",
             f"Machine: {m['cpu']}, {m['logical_cores']} logical cores, {m['ram_gib']} GiB RAM; "
             f"Python {m['python']}, NumPy {m['numpy']}; 1-minute load average "
             f"{meta['load_average_before'][0]:.1f} before, {meta['load_average_after'][0]:.1f} after "
             "(the benchmark's own processes included). ZZ feature map, inputs uniform in "
             f"[0, pi] x bandwidth {meta['bandwidth']}; MpsBackend defaults (max_bond 64, cutoff "
             "1e-16).", "",
             "| n | q | reps | entanglement | states s (ms/sample) | Gram s, 1 process | us/entry | "
             "Gram s, pool | max bond | max trunc. err | max kernel err bound | off-diag mean | "
             "RDMs s | Aer states ms/sample | Aer ms/pair | Aer Gram h (extrap.) | "
             "max abs diff vs Aer | peak MiB | load (1 min, start-end) |",
             "|" + "---|" * 19]
    for r in rows:
        load = r.get("load_average_1min", [float("nan")] * 2)
        pool = (f"{f(r['gram_parallel_s'])} ({r['gram_workers']} proc.)"
                if "gram_parallel_s" in r else "-")
        lines.append(
            f"| {r['n']} | {r['qubits']} | {r['reps']} | {r['entanglement']} | "
            f"{f(r['states_s'])} ({f(r['states_ms_per_sample'])}) | {f(r['gram_s'])} | "
            f"{f(r['us_per_entry'])} | {pool} | {r['max_bond']} | "
            f"{f(r['max_truncation_error'], '.1e')} | {f(r['max_kernel_error_bound'], '.1e')} | "
            f"{f(r['offdiag_mean'])} | {f(r['projected_rdms_s'])} | "
            f"{f(r.get('aer_states_ms_per_sample'))} | "
            f"{f(r['aer_pair_s'] * 1e3) if 'aer_pair_s' in r else '-'} | "
            f"{f(r.get('aer_gram_hours_extrapolated'))} | "
            f"{f(r.get('aer_pair_max_abs_diff'), '.1e')} | {f(r['peak_mib'], '.0f')} | "
            f"{load[0]:.1f}-{load[1]:.1f} |")
    lines += ["", f"Times: the fastest of {meta['repeat']} runs (states, Gram, pool). Gram: all "
              "n(n+1)/2 upper-triangle entries from tiles of edge "
              f"{meta['tile']}, mirrored; us/entry = Gram wall time / n^2. Pool: the same tiles in "
              "worker processes (states shipped to them). Kernel error bound: "
              "delta (2 sqrt(K) + delta) per pair, delta = summed distance bounds of the two "
              "states (qdist.backends.mps). Aer: AerSimulator(method='matrix_product_state'); "
              "states with save_matrix_product_state and parameter binds on a subset; pairs as "
              "compute-uncompute circuits with save_amplitudes, compared entry by entry with "
              "qdist's Gram. Circuit compilation (once per worker) is in the JSON as compile_s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small point (under a minute)")
    parser.add_argument("--tile", type=int, default=250, help="tile edge (default 250)")
    parser.add_argument("--bandwidth", type=float, default=0.02)
    parser.add_argument("--workers", type=int, default=2, help="process pool size (1: none)")
    parser.add_argument("--aer-samples", type=int, default=50)
    parser.add_argument("--aer-pairs", type=int, default=4)
    parser.add_argument("--grid", help="points as n:q:reps:entanglement,... (overrides the grid)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per step; min is kept")
    parser.add_argument("--name", default=None, help="result file stem")
    args = parser.parse_args()
    grid = QUICK_GRID if args.quick else FULL_GRID
    if args.grid:
        grid = [(int(a), int(b), int(c), d) for a, b, c, d in
                (p.split(":") for p in args.grid.split(","))]
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "grid": grid,
            "tile": args.tile, "bandwidth": args.bandwidth, "repeat": args.repeat}
    meta["load_average_before"] = os.getloadavg()
    rows = []
    for n, q, reps, ent in grid:
        row = run_point(n, q, reps, ent, min(args.tile, n), args.bandwidth, args.workers,
                        args.aer_samples, args.aer_pairs, args.repeat)
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = args.name or ("mps_quick" if args.quick else "mps_cpu")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (RESULTS / f"{stem}.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
