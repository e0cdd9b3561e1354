"""Cohort scale: a whole Gram larger than memory into Zarr, checked out of core, and a Nystrom
model trained on its landmark columns, with the peak memory of every process recorded.

    python benchmarks/scale_bench.py                  # n = 50,000 training samples, 8 qubits
    python benchmarks/scale_bench.py --n 4000 --quick # a small rehearsal

It runs an ordinary job (``training.method: nystrom`` with ``full_gram: true``) through
``qdist.api.run_job`` on an embedded Ray, while a sampler thread records the resident memory of
the driver and of every Ray process (psutil, every 0.5 s). Results go to
``benchmarks/results/scale_cpu.{json,md}`` with the machine described.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
from pathlib import Path

import psutil
from kernel_bench import machine  # the same machine description as every benchmark

RESULTS = Path(__file__).resolve().parent / "results"


class PeakMemory:
    """Peak RSS of this process and of all its descendants (the embedded Ray's processes)."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.driver, self.tree, self.worker = every, 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                kids = me.children(recursive=True)
                rss = {p.pid: p.memory_info().rss for p in kids if p.is_running()}
            except psutil.Error:
                rss = {}
            own = me.memory_info().rss
            self.driver = max(self.driver, own)
            self.tree = max(self.tree, own + sum(rss.values()))
            self.worker = max([self.worker, *rss.values()])
            time.sleep(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def job(n_train: int, qubits: int, landmarks: int, tile: int, out: Path) -> dict[str, object]:
    n_test = max(200, n_train // 25)
    n = n_train + n_test
    return {
        "name": f"scale-{n_train}",
        "seed": 1,
        "data": {"source": "synthetic",
                 "synthetic": {"n_samples": n, "blocks": {"expression": 60, "proteins": 20,
                                                          "clinical": 6}, "n_latent": 4}},
        "feature_map": {"kind": "zz", "qubits": qubits, "reps": 2, "bandwidth": 0.2},
        "backend": {"kind": "batched"},
        "tiles": {"size": tile, "workers": 2, "worker_memory_gb": 3},
        "training": {"test_fraction": n_test / n, "method": "nystrom", "c_grid": [1.0],
                     "cv_folds": 3, "cv_repeats": 1,
                     "nystrom": {"landmarks": landmarks, "model": "logreg", "full_gram": True}},
        "output": {"dir": str(out)},
        "tracking": {"experiment": "qdist-scale"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50_000, help="training samples (Gram edge)")
    ap.add_argument("--qubits", type=int, default=8)
    ap.add_argument("--landmarks", type=int, default=1000)
    ap.add_argument("--tile", type=int, default=2500)
    ap.add_argument("--out", default="/tmp/qdist-scale", help="where the store goes (not kept)")
    ap.add_argument("--quick", action="store_true", help="do not write the results files")
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from qdist.api import run_job

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    spec = job(args.n, args.qubits, args.landmarks, args.tile, out)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with PeakMemory() as peak:
        result = run_job(spec)
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    store_bytes = sum(f.stat().st_size for f in (out / "store.zarr").rglob("*") if f.is_file())
    m = result.metrics
    record = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "load_1min": [round(load_before, 1), round(load_after, 1)],
        "landmarks_asked": args.landmarks,
        "job": spec, "n_train": result.n_train, "n_test": result.n_test,
        "gram_entries": result.n_train**2,
        "gram_gb_float64": round(8 * result.n_train**2 / 1024**3, 2),
        "tiles_computed": result.tiles_computed, "seconds_total": round(seconds, 1),
        "seconds_tiles": round(m["tile_phase_seconds"], 1),
        "entries_per_second_tiles": m["entries_per_second"],
        "store_gb_on_disk": round(store_bytes / 1024**3, 2),
        "peak_rss_gb": {"driver": round(peak.driver / 1024**3, 2),
                        "largest_ray_process": round(peak.worker / 1024**3, 2),
                        "all_processes": round(peak.tree / 1024**3, 2)},
        "metrics": {k: m[k] for k in sorted(m) if k.startswith(("test_", "rbf_test", "logreg_test",
                                                                "forest_test", "nystrom_",
                                                                "kernel_", "cv_",
                                                                "diagnostics_"))},
    }
    print(json.dumps(record, indent=2))
    if args.quick:
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_cpu.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "scale_cpu.md").write_text(markdown(record))


def markdown(r: dict) -> str:
    mach, peak, m = r["machine"], r["peak_rss_gb"], r["metrics"]
    return "\n".join([
        f"# Cohort scale: a {r['n_train']:,} x {r['n_train']:,} Gram into Zarr, Nystrom on it",
        "",
        f"Machine: {mach['logical_cores']} cores ({mach['cpu']}), {mach['ram_gib']} GiB RAM, "
        f"{mach['platform']}, Python {mach['python']}. Command: `python benchmarks/scale_bench.py`.",
        "",
        "| quantity | value |", "|---|---|",
        f"| training samples (Gram edge) | {r['n_train']:,} |",
        f"| test samples | {r['n_test']:,} |",
        f"| qubits | {r['job']['feature_map']['qubits']} |",
        f"| Gram in float64 | {r['gram_gb_float64']} GB (machine RAM {mach['ram_gib']} GiB) |",
        f"| tiles computed | {r['tiles_computed']:,} (edge {r['job']['tiles']['size']}) |",
        f"| tile phase | {r['seconds_tiles']} s ({r['entries_per_second_tiles']:.3g} entries/s) |",
        f"| whole job | {r['seconds_total']} s |",
        f"| store on disk | {r['store_gb_on_disk']} GB |",
        f"| peak RSS, driver | {peak['driver']} GB |",
        f"| peak RSS, largest Ray process | {peak['largest_ray_process']} GB |",
        f"| peak RSS, all processes | {peak['all_processes']} GB |",
        f"| Nystrom landmarks / rank | {m.get('nystrom_landmarks', 0):.0f} / "
        f"{m.get('nystrom_rank', 0):.0f} |",
        f"| test ROC AUC: quantum Nystrom / RBF Nystrom / logistic / forest | "
        f"{m.get('test_roc_auc', float('nan')):.3f} / {m.get('rbf_test_roc_auc', float('nan')):.3f}"
        f" / {m.get('logreg_test_roc_auc', float('nan')):.3f} / "
        f"{m.get('forest_test_roc_auc', float('nan')):.3f} |",
        f"| whole-Gram off-diagonal mean / variance (Dask, out of core) | "
        f"{m.get('kernel_offdiag_mean', float('nan')):.4f} / "
        f"{m.get('kernel_offdiag_var', float('nan')):.3g} |",
        "",
        f"Measured on {r['date']}; 1-minute load average {r['load_1min'][0]} before and "
        f"{r['load_1min'][1]} after (the machine has {mach['logical_cores']} cores). "
        f"{r['landmarks_asked']:,} landmarks were asked for; landmarks are whole tiles, so the "
        f"rank is {m.get('nystrom_rank', 0):,.0f}.",
        "",
        "The Gram is never in one process: tiles go from the Ray workers straight to Zarr, the",
        "diagnostics stream it with Dask, and the model reads only the landmark columns.",
        "",
    ])


if __name__ == "__main__":
    main()
