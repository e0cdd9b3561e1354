"""Kernel-phase benchmark: qdist's engine against the anchors, in one process, on the same data.

For each (n samples, q qubits) point of the grid, on a ZZ feature map (reps 2, linear):

- ``qdist engine``: the batched state engine plus tiles (Hermitian rank-k on the diagonal,
  GEMM elsewhere), single process, multithreaded BLAS. Reported split into states and tiles.
- ``qdist Gram phase``: the same through the real pipeline pieces: a Zarr store, Ray tile workers
  (one per core), tiles written as chunks. This is the "whole Gram phase" of the targets.
- ``raw GEMM bound``: one complex128 ``S^* S^T`` of the full ``n x 2^q`` shape on random data,
  the machine's speed limit for this Gram (the kernel needs half of it with symmetry).
- ``Aer + GEMM``: Aer statevector with parameter binding for the states (timed on a subset,
  per sample), plus the GEMM time measured above.
- ``FidelityStatevectorKernel`` (qiskit-machine-learning; subset, per entry).
- ``FidelityQuantumKernel`` (qiskit-machine-learning, reference Sampler; tiny subset, per pair).
- ``PennyLane square_kernel_matrix`` on lightning.qubit (tiny subset, per pair).

Per-entry time is the wall time divided by the ``n^2`` entries of the Gram. Peak memory is the
resident-set growth over the call, sampled every 5 ms. Results: ``benchmarks/results/*.json``
and a markdown table, with the machine described.

Run: ``python benchmarks/kernel_bench.py`` (full grid) or ``--quick`` (a small grid, a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

RESULTS = Path(__file__).resolve().parent / "results"

FULL_GRID = [(500, 8), (1000, 10), (2000, 12), (4000, 12), (1000, 16), (500, 20)]
QUICK_GRID = [(300, 8), (600, 10)]


class PeakRSS:
    """Peak resident-set growth (bytes) over a ``with`` block, sampled every 5 ms."""

    def __enter__(self) -> PeakRSS:
        self._proc = psutil.Process()
        self.base = self._proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def grown(self) -> int:
        return self.peak - self.base


def timed(fn: Callable[[], Any]) -> tuple[float, int, Any]:
    with PeakRSS() as mem:
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
    return seconds, mem.grown, out


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "ram_gib":
            round(psutil.virtual_memory().total / 1024**3, 1), "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform()}


def feature_map(q: int) -> Any:
    from qdist.config import FeatureMapSpec
    from qdist.kernel.feature_maps import build_feature_map

    return build_feature_map(FeatureMapSpec(kind="zz", qubits=q, reps=2, entanglement="linear"))


def engine_gram(circuit: Any, x: np.ndarray, tile: int,
                dtype: Any) -> tuple[float, float, float, Any]:
    """Compile, states, tiles, in process. Returns (compile s, states s, tiles s, K)."""
    from qdist.api import gram_from_blocks
    from qdist.kernel.engine import BatchedEngine
    from qdist.planning.plan import block_bounds

    c0 = time.perf_counter()
    eng = BatchedEngine(circuit, dtype=dtype)  # once per worker, whatever the cohort size
    compile_s = time.perf_counter() - c0
    n = x.shape[0]
    t0 = time.perf_counter()
    nb = -(-n // tile)
    blocks = [eng.states(x[slice(*block_bounds(n, tile, b))]) for b in range(nb)]
    t1 = time.perf_counter()
    k = gram_from_blocks(blocks, n, tile)
    return compile_s, t1 - t0, time.perf_counter() - t1, k


def ray_gram_phase(circuit: Any, x: np.ndarray, tile: int) -> float:
    """States + tiles + Zarr writes through Ray workers into a real store (seconds)."""
    import ray

    from qdist.config import BackendSpec
    from qdist.kernel.feature_maps import circuit_to_qpy
    from qdist.orchestration import run_tiles
    from qdist.planning import make_plan
    from qdist.storage import GramStore

    n = x.shape[0]
    plan = make_plan(n, 0, tile, 0)
    with tempfile.TemporaryDirectory() as tmp:
        arrays = {"x_train": x, "x_test": np.zeros((0, x.shape[1])), "y_train": np.zeros(n),
                  "y_test": np.zeros(0), "sample_ids_train": np.array([f"s{i}" for i in range(n)]),
                  "sample_ids_test": np.array([], dtype=str),
                  "feature_map_qpy": circuit_to_qpy(circuit)}
        store = GramStore.create(f"{tmp}/s.zarr", arrays, tile, {"fingerprint": "bench"})
        if not ray.is_initialized():
            ray.init(include_dashboard=False, logging_level="ERROR")
        start = time.perf_counter()
        run_tiles(list(plan.tiles), store.location, BackendSpec(kind="batched"),
                  cache_blocks=plan.train_blocks)
        return time.perf_counter() - start


def raw_gemm(n: int, q: int) -> float:
    rng = np.random.default_rng(0)
    s = (rng.standard_normal((n, 2**q)) + 1j * rng.standard_normal((n, 2**q)))
    start = time.perf_counter()
    _ = s.conj() @ s.T
    return time.perf_counter() - start


def aer_per_sample(circuit: Any, x: np.ndarray) -> float:
    from qdist.backends.aer import AerStatevectorBackend

    backend = AerStatevectorBackend(circuit)
    start = time.perf_counter()
    backend.states(x)
    return (time.perf_counter() - start) / x.shape[0]


def fsk_per_entry(circuit: Any, x: np.ndarray) -> tuple[float, np.ndarray]:
    from qiskit_machine_learning.kernels import FidelityStatevectorKernel

    kernel = FidelityStatevectorKernel(feature_map=circuit)
    start = time.perf_counter()
    k = kernel.evaluate(x)
    return (time.perf_counter() - start) / x.shape[0] ** 2, k


def fqk_per_pair(circuit: Any, x: np.ndarray) -> float:
    from qiskit.primitives import StatevectorSampler
    from qiskit_machine_learning.kernels import FidelityQuantumKernel
    from qiskit_machine_learning.state_fidelities import ComputeUncompute

    fidelity = ComputeUncompute(sampler=StatevectorSampler(seed=0))
    kernel = FidelityQuantumKernel(feature_map=circuit, fidelity=fidelity)
    m = x.shape[0]
    start = time.perf_counter()
    kernel.evaluate(x)
    return (time.perf_counter() - start) / (m * (m - 1) / 2)


def pennylane_per_pair(q: int, x: np.ndarray) -> float | None:
    try:
        import pennylane as qml
    except ImportError:
        return None
    dev = qml.device("lightning.qubit", wires=q)
    wires = list(range(q))

    def zz_map(v: np.ndarray) -> None:
        for _ in range(2):
            for w in wires:
                qml.Hadamard(wires=w)
                qml.PhaseShift(2 * v[w], wires=w)
            for a in range(q - 1):
                qml.CNOT(wires=[a, a + 1])
                qml.PhaseShift(2 * (np.pi - v[a]) * (np.pi - v[a + 1]), wires=a + 1)
                qml.CNOT(wires=[a, a + 1])

    @qml.qnode(dev)
    def overlap(a: np.ndarray, b: np.ndarray) -> Any:
        zz_map(a)
        qml.adjoint(zz_map)(b)
        return qml.probs(wires=wires)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(overlap(a, b)[0])

    m = x.shape[0]
    start = time.perf_counter()
    qml.kernels.square_kernel_matrix(x, k, assume_normalized_kernel=True)
    return (time.perf_counter() - start) / (m * (m - 1) / 2)


def run_point(n: int, q: int, tile: int, with_ray: bool) -> dict[str, Any]:
    rng = np.random.default_rng(n * 100 + q)
    x = rng.uniform(0, np.pi, size=(n, q))
    circuit = feature_map(q)
    entries = n * n
    row: dict[str, Any] = {"n": n, "qubits": q, "tile": tile}
    gemm_s, _, _ = timed(lambda: raw_gemm(n, q))
    row["raw_gemm_s"] = gemm_s
    row["raw_gemm_gflops"] = 8.0 * n * n * 2**q / gemm_s / 1e9
    _, mem, (compile_s, states_s, tiles_s, k) = timed(
        lambda: engine_gram(circuit, x, tile, np.complex128))
    seconds = states_s + tiles_s
    row.update(engine_s=seconds, engine_compile_s=compile_s, engine_states_s=states_s,
               engine_tiles_s=tiles_s, engine_us_per_entry=seconds / entries * 1e6,
               engine_peak_mib=mem / 2**20)
    _, mem64, (_, s64_states, s64_tiles, k64) = timed(
        lambda: engine_gram(circuit, x, tile, np.complex64))
    row.update(engine_c64_s=s64_states + s64_tiles,
               engine_c64_us_per_entry=(s64_states + s64_tiles) / entries * 1e6,
               engine_c64_max_abs_err=float(np.abs(k64 - k).max()),
               engine_c64_peak_mib=mem64 / 2**20)
    if with_ray:
        ray_s, ray_mem, _ = timed(lambda: ray_gram_phase(circuit, x, tile))
        row.update(gram_phase_s=ray_s, gram_phase_over_gemm=ray_s / gemm_s,
                   gram_phase_driver_peak_mib=ray_mem / 2**20)
    m = min(n, 300 if q <= 12 else 60)
    aer = aer_per_sample(circuit, x[:m])
    row.update(aer_states_per_sample_ms=aer * 1e3,
               aer_gemm_us_per_entry=(aer * n + gemm_s) / entries * 1e6)
    m = min(n, 200 if q <= 12 else 40)
    fsk, k_fsk = fsk_per_entry(circuit, x[:m])
    row.update(fsk_us_per_entry=fsk * 1e6, fsk_subset=m,
               oracle_max_abs_err=float(np.abs(k[:m, :m] - k_fsk).max()))
    if q <= 12:
        row["fqk_ms_per_pair"] = fqk_per_pair(circuit, x[:6]) * 1e3
        pl = pennylane_per_pair(q, x[:6])
        row["pennylane_ms_per_pair"] = pl * 1e3 if pl is not None else None
    row["speedup_vs_fsk"] = row["fsk_us_per_entry"] / row["engine_us_per_entry"]
    row["speedup_vs_fsk_c64"] = row["fsk_us_per_entry"] / row["engine_c64_us_per_entry"]
    row["engine_over_gemm"] = seconds / gemm_s
    return row


def run_point_gpu(n: int, q: int, tile: int) -> dict[str, Any]:
    """The engine and tiles on an NVIDIA GPU (CuPy), against the device's own complex GEMM.

    The bound is one complex128 ``S^* S^T`` of the full shape on the device; the engine's
    fraction of it is ``(symmetric Gram flops) / time / (GEMM flop rate)``. Correctness: the
    device kernel against the CPU engine on a subset.
    """
    import cupy as cp

    from qdist.api import gram_from_blocks
    from qdist.kernel.engine import BatchedEngine
    from qdist.planning.plan import block_bounds

    rng = np.random.default_rng(n * 100 + q)
    x = rng.uniform(0, np.pi, size=(n, q))
    circuit = feature_map(q)
    row: dict[str, Any] = {"n": n, "qubits": q, "tile": tile, "device": cp.cuda.runtime
                           .getDeviceProperties(0)["name"].decode()}
    s = cp.asarray(rng.standard_normal((n, 2**q)) + 1j * rng.standard_normal((n, 2**q)))
    (s.conj() @ s.T).sum().item()  # warm-up
    cp.cuda.Device().synchronize()
    start = time.perf_counter()
    (s.conj() @ s.T).sum().item()
    gemm_s = time.perf_counter() - start
    del s
    row.update(raw_gemm_s=gemm_s, raw_gemm_gflops=8.0 * n * n * 2**q / gemm_s / 1e9)
    for label, dtype in (("c128", np.complex128), ("c64", np.complex64)):
        eng = BatchedEngine(circuit, dtype=dtype, xp=cp)
        eng.states(x[:2])
        cp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        nb = -(-n // tile)
        blocks = [eng.states(x[slice(*block_bounds(n, tile, b))]) for b in range(nb)]
        cp.cuda.Device().synchronize()
        t1 = time.perf_counter()
        k = gram_from_blocks(blocks, n, tile)
        t2 = time.perf_counter()
        sym_flops = 8.0 * n * n * 2**q / 2
        row.update({f"{label}_states_s": t1 - t0, f"{label}_tiles_s": t2 - t1,
                    f"{label}_us_per_entry": (t2 - t0) / (n * n) * 1e6,
                    f"{label}_fraction_of_gemm_rate": sym_flops / (t2 - t0)
                    / (row["raw_gemm_gflops"] * 1e9)})
        if label == "c128":
            m = min(n, 300)
            from qdist.kernel.engine import BatchedEngine as CpuEngine

            cpu = CpuEngine(circuit).states(x[:m])
            ref = np.abs(cpu.conj() @ cpu.T) ** 2
            row["c128_max_abs_err_vs_cpu"] = float(np.abs(k[:m, :m] - ref).max())
            k128 = k
        else:
            row["c64_max_abs_err"] = float(np.abs(k - k128).max())
        del blocks
        cp.get_default_memory_pool().free_all_blocks()
    return row


def markdown_gpu(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Kernel benchmark on GPU ({meta['date']})", "",
             f"Device: {rows[0]['device'] if rows else '?'}; host: {meta['machine']['cpu']}. "
             "ZZ feature map, reps 2, linear. Engine and tiles on CuPy; tiles copied to the host.",
             "", "| n | q | raw GEMM GFLOP/s | c128 us/entry | c128 share of GEMM rate | "
             "c64 us/entry | c64 share | c128 err vs CPU | c64 err |", "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['qubits']} | {r['raw_gemm_gflops']:.0f} | "
            f"{r['c128_us_per_entry']:.3g} | {r['c128_fraction_of_gemm_rate']:.2f} | "
            f"{r['c64_us_per_entry']:.3g} | {r['c64_fraction_of_gemm_rate']:.2f} | "
            f"{r['c128_max_abs_err_vs_cpu']:.1e} | {r['c64_max_abs_err']:.1e} |")
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    def f(v: Any, fmt: str = ".3g") -> str:
        return "-" if v is None else format(v, fmt)

    lines = [f"# Kernel benchmark ({meta['date']})", "",
             f"Machine: {meta['machine']['cpu']}, {meta['machine']['logical_cores']} logical "
             f"cores, {meta['machine']['ram_gib']} GiB RAM; Python {meta['machine']['python']}, "
             f"NumPy {meta['machine']['numpy']}. ZZ feature map, reps 2, linear entanglement.", "",
             "| n | q | engine us/entry | states s | tiles s | raw GEMM s (GFLOP/s) | "
             "engine / GEMM | Gram phase (Ray+Zarr) s | phase / GEMM | FSK us/entry | "
             "speed-up vs FSK | c64 us/entry (speed-up) | Aer+GEMM us/entry | FQK ms/pair | "
             "PennyLane ms/pair | c64 max err | peak MiB |",
             "|" + "---|" * 17]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['qubits']} | {f(r['engine_us_per_entry'])} | "
            f"{f(r['engine_states_s'])} | {f(r['engine_tiles_s'])} | "
            f"{f(r['raw_gemm_s'])} ({f(r['raw_gemm_gflops'], '.0f')}) | "
            f"{f(r['engine_over_gemm'], '.2f')} | {f(r.get('gram_phase_s'))} | "
            f"{f(r.get('gram_phase_over_gemm'), '.2f')} | {f(r['fsk_us_per_entry'])} | "
            f"{f(r['speedup_vs_fsk'], '.0f')}x | {f(r['engine_c64_us_per_entry'])} "
            f"({f(r['speedup_vs_fsk_c64'], '.0f')}x) | {f(r['aer_gemm_us_per_entry'])} | "
            f"{f(r.get('fqk_ms_per_pair'))} | {f(r.get('pennylane_ms_per_pair'))} | "
            f"{f(r['engine_c64_max_abs_err'], '.1e')} | {f(r['engine_peak_mib'], '.0f')} |")
    lines += ["", "engine: states + tiles in one process (circuit compilation, done once per "
              "worker, excluded; it is in the JSON as engine_compile_s); Gram phase: the same "
              "work through Ray workers into a Zarr store (the pipeline's path); raw GEMM: one "
              "full complex128 S^* S^T of shape (n, 2^q), the speed limit (the symmetric Gram needs "
              "half of its "
              "flops). FSK: qiskit-machine-learning FidelityStatevectorKernel on a subset; FQK: "
              "FidelityQuantumKernel with the reference StatevectorSampler on 6 samples; Aer+GEMM: "
              "Aer parameter-binding states (subset, per sample) plus the GEMM. Peak MiB: resident "
              "growth of the engine call."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grid (about a minute)")
    parser.add_argument("--grid", help="points as n:q,n:q (overrides the default grid)")
    parser.add_argument("--tile", type=int, default=512, help="tile edge (default 512)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray + Zarr Gram phase")
    parser.add_argument("--name", default=None, help="result file stem")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                        help="gpu: the engine and tiles on CuPy against the device's GEMM")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    grid = QUICK_GRID if args.quick else FULL_GRID
    if args.grid:
        grid = [tuple(int(v) for v in p.split(":")) for p in args.grid.split(",")]  # type: ignore[misc]
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "grid": grid,
            "tile": args.tile}
    rows = []
    if args.device == "gpu":
        grid = grid if args.grid else [(4000, 12), (8000, 14), (20000, 12), (2000, 16), (500, 20)]
        rows = [run_point_gpu(n, q, min(args.tile, n)) for n, q in grid]
        RESULTS.mkdir(parents=True, exist_ok=True)
        stem = args.name or "kernel_gpu"
        (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        (RESULTS / f"{stem}.md").write_text(markdown_gpu(rows, meta))
        print(markdown_gpu(rows, meta))
        return
    for n, q in grid:
        row = run_point(n, q, min(args.tile, n), not args.no_ray)
        print(json.dumps(row), flush=True)
        rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = args.name or ("kernel_quick" if args.quick else "kernel_cpu")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (RESULTS / f"{stem}.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
