"""A local job service in a folder: a stand-in for a remote QPU queue that outlives its driver.

Layout under ``DIR``::

    jobs/<job_id>/circuits.qpy   the PUBs' circuits (QPY), one per PUB
    jobs/<job_id>/params.npz     values_0, values_1, ...: (n_pairs, n_params) float64 per PUB
    jobs/<job_id>/job.json       {"shots", "seed", "backend", "n_pubs", "submitted"}
    jobs/<job_id>/status         {"status": QUEUED|RUNNING|DONE|ERROR|CANCELLED, "message"}
    jobs/<job_id>/result.npz     pub<i>_bits, pub<i>_num_bits: every shot, packed (PubShots)
    tmp/                         where submissions are staged before an atomic rename

A job folder appears whole (staged in ``tmp/``, then renamed) and files inside are replaced
atomically, so a driver killed at any point leaves either no job or a complete one; the number
of job folders is the number of submissions. Job ids sort in submission order. No status file
means QUEUED.

``python -m qdist.backends.spool serve DIR [--backend fake_torino] [--delay SECONDS]`` runs the
service: it polls ``jobs/``, runs queued jobs one at a time in submission order with
``qiskit_ibm_runtime.executor_sampler.Sampler`` (local mode on the fake backend, or an
``AerSimulator`` for ``--backend aer``), and writes ``result.npz`` then ``status``. A job whose
inputs are bad ends in ERROR with the reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit

from qdist.backends.qpu_shots import PubShots
from qdist.errors import BackendError, TileError

__all__ = ["SpoolClient", "run_job", "serve", "main"]

logger = logging.getLogger(__name__)

FINAL = ("DONE", "ERROR", "CANCELLED")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_status(job_dir: Path, status: str, message: str = "") -> None:
    _write_atomic(job_dir / "status", json.dumps({"status": status, "message": message}).encode())


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


class SpoolClient:
    """The driver side: submit jobs, read their status and results, only through files."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.jobs = self.root / "jobs"
        self.jobs.mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)

    def submit(self, circuits: list[QuantumCircuit], values: list[np.ndarray], *, shots: int, seed: int,
               backend: str) -> str:
        """Stage the job in ``tmp/`` and rename it into ``jobs/``; returns the job id."""
        from qiskit import qpy

        job_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        stage = self.root / "tmp" / job_id
        stage.mkdir()
        with open(stage / "circuits.qpy", "wb") as fh:
            qpy.dump(circuits, fh)
        (stage / "params.npz").write_bytes(
            _npz_bytes({f"values_{i}": np.asarray(v, dtype=np.float64) for i, v in enumerate(values)}))
        meta = {"shots": int(shots), "seed": int(seed), "backend": backend, "n_pubs": len(circuits),
                "submitted": time.time()}
        (stage / "job.json").write_text(json.dumps(meta))
        os.replace(stage, self.jobs / job_id)
        return job_id

    def job_ids(self) -> list[str]:
        """All submitted job ids, in submission order."""
        return sorted(p.name for p in self.jobs.iterdir() if p.is_dir())

    def check(self, job_id: str) -> None:
        """Raise :class:`BackendError` unless ``job_id`` was submitted to this spool."""
        if not (self.jobs / job_id / "job.json").is_file():
            raise BackendError(f"No job {job_id!r} in the spool {self.root}; it was never submitted "
                               "there (or the folder was removed). Resubmit the tile.")

    def status(self, job_id: str) -> tuple[str, str]:
        """``(status, message)``; QUEUED while the service has not picked the job up."""
        self.check(job_id)
        path = self.jobs / job_id / "status"
        if not path.is_file():
            return "QUEUED", ""
        doc = json.loads(path.read_text())
        return str(doc["status"]), str(doc.get("message", ""))

    def cancel(self, job_id: str) -> None:
        """Cancel a job that has not started (a running or finished job is left alone)."""
        if self.status(job_id)[0] == "QUEUED":
            _write_status(self.jobs / job_id, "CANCELLED", "cancelled by the client")

    def result(self, job_id: str, timeout: float | None = None,
               poll: float = 0.05) -> list[PubShots]:
        """Every shot of every PUB; waits until the job is final (at most ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (st := self.status(job_id))[0] not in FINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Spool job {job_id} is still {st[0]} after {timeout} s.")
            time.sleep(poll)
        if st[0] != "DONE":
            raise TileError(f"Spool job {job_id} ended {st[0]}: {st[1]}")
        with np.load(self.jobs / job_id / "result.npz", allow_pickle=False) as z:
            return [PubShots.from_arrays(z, f"pub{i}_") for i in range(int(z["n_pubs"]))]


def _load_inputs(job_dir: Path) -> tuple[dict[str, Any], list[tuple[QuantumCircuit, np.ndarray]]]:
    from qiskit import qpy

    meta = json.loads((job_dir / "job.json").read_text())
    with open(job_dir / "circuits.qpy", "rb") as fh:
        circuits = qpy.load(fh)
    with np.load(job_dir / "params.npz", allow_pickle=False) as z:
        values = [np.asarray(z[f"values_{i}"], dtype=np.float64) for i in range(int(meta["n_pubs"]))]
    if len(circuits) != len(values):
        raise ValueError(f"{len(circuits)} circuits but {len(values)} parameter arrays")
    for i, (c, v) in enumerate(zip(circuits, values, strict=True)):
        if v.ndim != 2 or v.shape[1] != c.num_parameters or v.shape[0] == 0:
            raise ValueError(f"PUB {i}: parameter array of shape {v.shape} does not fit a circuit with "
                             f"{c.num_parameters} parameters (expected (n_pairs >= 1, {c.num_parameters}))")
    return meta, list(zip(circuits, values, strict=True))


def run_job(job_dir: Path, backend_name: str, mode: Any) -> str:
    """Run one queued job on ``mode`` and write its result and status; returns the final status."""
    from qiskit_ibm_runtime.executor_sampler import Sampler


    _write_status(job_dir, "RUNNING")
    try:
        meta, pubs = _load_inputs(job_dir)
        if meta.get("backend") != backend_name:
            raise ValueError(f"the job was transpiled for {meta.get('backend')!r} but this service runs "
                             f"{backend_name!r}")
        sampler = Sampler(mode=mode)
        sampler.options.simulator.seed_simulator = int(meta["seed"])
        res = sampler.run(pubs, shots=int(meta["shots"])).result()
        arrays: dict[str, np.ndarray] = {"n_pubs": np.array(len(pubs))}
        for i, pub in enumerate(res):
            arrays.update(PubShots.from_bit_array(pub.data.meas).to_arrays(f"pub{i}_"))
        _write_atomic(job_dir / "result.npz", _npz_bytes(arrays))
    except Exception as exc:  # any bad job ends in ERROR with its reason
        logger.warning("Spool job %s failed: %s", job_dir.name, exc)
        _write_status(job_dir, "ERROR", f"{type(exc).__name__}: {exc}")
        return "ERROR"
    _write_status(job_dir, "DONE")
    return "DONE"


def _mode(backend_name: str) -> Any:
    if backend_name == "aer":
        from qiskit_aer import AerSimulator

        return AerSimulator()
    from qdist.backends.qpu_providers import fake_backend

    return fake_backend(backend_name)


def serve(root: str | os.PathLike[str], backend_name: str = "aer", delay: float = 0.0, poll: float = 0.1,
          once: bool = False) -> int:
    """Run queued jobs in submission order, one at a time; returns the number run when ``once``."""
    client = SpoolClient(root)
    mode = _mode(backend_name)
    for job_id in client.job_ids():  # a service that died mid-job left it RUNNING: run it again
        if client.status(job_id)[0] == "RUNNING":
            logger.warning("Spool job %s was left RUNNING by a stopped service; requeued", job_id)
            (client.jobs / job_id / "status").unlink()
    ran = 0
    while True:
        queued = [j for j in client.job_ids() if not (client.jobs / j / "status").exists()]
        for job_id in queued:
            if (client.jobs / job_id / "status").exists():  # cancelled meanwhile
                continue
            if delay > 0:
                time.sleep(delay)
            status = run_job(client.jobs / job_id, backend_name, mode)
            logger.info("Spool job %s: %s", job_id, status)
            ran += 1
        if once:
            return ran
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    """``python -m qdist.backends.spool serve DIR [--backend NAME] [--delay S]``."""
    parser = argparse.ArgumentParser(prog="python -m qdist.backends.spool")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the spool service on DIR")
    p.add_argument("dir")
    p.add_argument("--backend", default="aer", help="'aer' or a fake device such as fake_torino")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each job")
    p.add_argument("--poll", type=float, default=0.1)
    p.add_argument("--once", action="store_true", help="run what is queued, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(f"spool service on {args.dir} (backend {args.backend}, delay {args.delay} s)", flush=True)
    try:
        ran = serve(args.dir, args.backend, args.delay, args.poll, args.once)
    except KeyboardInterrupt:
        return 0
    print(f"ran {ran} job(s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

