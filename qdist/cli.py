"""Command line: parse, load config, call one library function, print.

``qdist run JOB.yaml [--out DIR] [--address RAY_ADDRESS] [--tracking-uri URI] [--json]``
``qdist validate JOB.yaml`` prints the resolved config without computing anything.
``qdist submit JOB.yaml --address http://HEAD:8265 [--out DIR] [--wait]`` runs it as a Ray job;
``qdist status|logs|stop ID --address ...`` follow it.
``qdist k8s render JOB.yaml`` prints a KubeRay RayJob; ``qdist k8s cluster`` a RayCluster.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from qdist.errors import QdistError
from qdist.events import Event, PhaseStarted, QpuBudgetReady, RunStarted, TileCompleted

__all__ = ["main"]


class _Progress:
    """A tqdm bar of tiles on stderr, and one line per phase."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.entries = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, QpuBudgetReady):  # always shown: it is about money
            b = event.budget
            print(f"qdist: QPU: {b['jobs']} jobs, {b['circuits']:,} circuits x "
                  f"{b['shots_per_circuit']} shots = {b['shots_total']:,} shots, about "
                  f"{b['estimated_qpu_seconds'] / 60:.1f} QPU minutes (estimate)",
                  file=sys.stderr, flush=True)
            return
        if not self.enabled:
            return
        if isinstance(event, PhaseStarted) and event.phase != "tiles":
            self.close()
            print(f"qdist: {event.phase}...", file=sys.stderr, flush=True)
        elif isinstance(event, RunStarted):
            from tqdm import tqdm

            done = event.tiles_total - event.tiles_missing
            print(f"qdist: store {event.store}: {event.tiles_total} tiles, {done} already done, "
                  f"{event.workers} worker(s)", file=sys.stderr, flush=True)
            self.bar = tqdm(total=event.tiles_missing, unit="tile", desc="tiles",
                            file=sys.stderr, dynamic_ncols=True)
        elif isinstance(event, TileCompleted) and self.bar is not None:
            self.entries += event.entries
            self.bar.update(1)
            if event.elapsed:
                self.bar.set_postfix(entries_per_s=f"{self.entries / event.elapsed:.3g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


_LABELS = {"test_accuracy": "accuracy", "test_balanced_accuracy": "bal. acc.",
           "test_roc_auc": "ROC AUC", "cv_mean": "CV mean", "cv_std": "CV std", "test_r2": "R^2",
           "test_rmse": "RMSE", "test_spearman": "Spearman", "train_ari": "ARI train",
           "test_ari": "ARI test", "train_nmi": "NMI train", "silhouette": "silhouette"}


def cv_note(result: Any) -> str:
    return "CV mean and spread over repeated folds" if result.task != "clustering" \
        else "no CV for clustering"


def _summary(result: Any) -> str:
    from qdist.assembly.train import comparison_rows

    m = result.metrics
    db = result.tracking_uri
    ui = (f"mlflow ui --backend-store-uri {db}" if db.startswith("sqlite:")
          else f"open {db} in a browser")
    rows = [
        f"qdist run {result.run_id}: {result.n_train} train / {result.n_test} test samples, "
        f"{result.tiles_computed} of {result.tiles_total} tiles computed in this run "
        f"({result.seconds:.1f} s)",
    ]
    for i, (target, task) in enumerate(result.targets.items()):
        cols, table = comparison_rows(m, task, "" if i == 0 else f"{target}/")
        rows += ["", f"  {target} ({task}; test split, and {cv_note(result)})",
                 f"  {'model':<32}" + "".join(f"{_LABELS.get(c, c):>11}" for c in cols)]
        rows += [f"  {name:<32}" + "".join(f"{v:>11.3f}" for v in vals) for name, vals in table]
    if result.sweep:
        rows += ["", f"  {'bandwidth':<12}{'CV mean':>10}{'CV std':>10}{'test':>10}"
                     f"{'off-diag var':>14}"]
        rows += [f"  {p['bandwidth']:<12g}{p['cv_mean']:>10.3f}{p['cv_std']:>10.3f}"
                 f"{p['test_score']:>10.3f}{p['kernel_offdiag_var']:>14.3g}" for p in result.sweep]
        rows += ["  (the tables above are the best bandwidth's, chosen by CV mean; MLflow run "
                 f"{result.mlflow_run_id} is the sweep's parent)"]
    stores = result.stores or [result.store]
    rows += [
        "",
        f"  kernel: off-diagonal mean {m['kernel_offdiag_mean']:.3f}, variance "
        f"{m['kernel_offdiag_var']:.2e}, target alignment {m['kernel_target_alignment']:.3f}"
        + (f", effective dimension {m['kernel_effective_dimension']:.1f}"
           if "kernel_effective_dimension" in m else "")
        + (f", geometric difference to RBF {m['geometric_difference']:.2f}"
           if "geometric_difference" in m else "")
        + ("  [CONCENTRATED]" if m.get("kernel_concentrated") else ""),
        *(f"  store:      {s}" for s in stores),
        f"  MLflow run: {result.mlflow_run_id} at {result.tracking_uri}",
        f"  model:      {result.model_uri or '(none: clustering logs strata.csv)'}",
        *([f"  registered: {result.registered_model}"] if result.registered_model else []),
        f"  MLflow UI:  {ui}",
    ]
    return "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qdist", description="Tiled quantum-kernel jobs on Ray.")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a job file (resumes on the same --out)")
    run.add_argument("job", help="job file (YAML)")
    run.add_argument("--out", help="output folder (default: output.dir of the job file)")
    run.add_argument("--address", help="Ray address of an existing cluster (default: embedded)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under --out)")
    run.add_argument("--json", action="store_true",
                     help="print the result as one JSON object on the last line of stdout")
    val = sub.add_parser("validate", help="check a job file and print the resolved config")
    val.add_argument("job")
    pred = sub.add_parser("predict", help="score new patients with a logged model")
    pred.add_argument("model_uri", help="model URI printed by 'qdist run' (models:/...)")
    pred.add_argument("table", help="CSV, TSV or Parquet with the training feature columns")
    pred.add_argument("--out", help="write predictions here (.csv, .tsv, .parquet); "
                      "default: CSV on stdout")
    pred.add_argument("--id-column", default="sample_id",
                      help="identifier column, pseudonymised in the output")
    pred.add_argument("--tracking-uri", help="MLflow tracking URI that holds the model")
    _add_job_commands(sub)
    from qdist.k8s.cli import add_k8s_commands

    add_k8s_commands(sub)
    return p


_ADDRESS_HELP = ("job API of the cluster's head, e.g. http://127.0.0.1:8265 (default: "
                 "$QDIST_RAY_ADDRESS, then $RAY_ADDRESS)")


def _add_job_commands(sub: Any) -> None:
    """``submit``, ``status``, ``logs``, ``stop``: Ray jobs on a remote cluster."""
    submit = sub.add_parser("submit", help="run a job file as a Ray job on a cluster")
    submit.add_argument("job", help="job file (YAML), inside the working directory")
    submit.add_argument("--address", help=_ADDRESS_HELP)
    submit.add_argument("--out", help="output folder on the cluster (storage every node sees)")
    submit.add_argument("--tracking-uri", help="MLflow tracking URI the cluster can reach")
    submit.add_argument("--working-dir",
                        help="folder uploaded with the job (default: the current directory)")
    submit.add_argument("--wait", action="store_true",
                        help="wait for the end; print the status and the last log line")
    submit.add_argument("--timeout", type=float, default=24 * 3600.0,
                        help="with --wait: give up waiting after this many seconds")
    for name, text in (("status", "print a submitted job's state"),
                       ("logs", "print a submitted job's logs"),
                       ("stop", "stop a submitted job")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("id", help="submission id printed by qdist submit")
        cmd.add_argument("--address", help=_ADDRESS_HELP)
        if name == "logs":
            cmd.add_argument("--follow", "-f", action="store_true",
                             help="keep printing until the job ends")


def _job_command(args: argparse.Namespace) -> int:
    from qdist.orchestration import submit as jobs

    if not args.verbose:  # Ray's INFO lines (package upload, websocket) would bury the output
        for handler in logging.getLogger("ray").handlers:
            handler.setLevel(logging.WARNING)
    address = jobs.resolve_address(args.address)
    if args.command == "submit":
        sid = jobs.submit_job(args.job, address, out=args.out, tracking_uri=args.tracking_uri,
                              working_dir=args.working_dir)
        print(sid, flush=True)
        if not args.wait:
            return 0
        status = jobs.wait_job(sid, address, args.timeout)
        lines = [ln for ln in jobs.job_logs(sid, address).splitlines() if ln.strip()]
        print(status)
        print(lines[-1] if lines else "(no log output)")
        if status != "SUCCEEDED":
            print(f"qdist: job {sid} {status}: {jobs.job_message(sid, address)}; full logs: "
                  f"qdist logs {sid} --address {address}", file=sys.stderr)
        return 0 if status == "SUCCEEDED" else 1
    if args.command == "status":
        print(jobs.job_status(args.id, address))
    elif args.command == "logs" and args.follow:
        try:
            for chunk in jobs.follow_logs(args.id, address):
                print(chunk, end="", flush=True)
        except KeyboardInterrupt:  # Ctrl-C ends the following, not the job
            return 130
    elif args.command == "logs":
        print(jobs.job_logs(args.id, address), end="")
    else:
        stopped = jobs.stop_job(args.id, address)
        print(f"{args.id}: stop requested" if stopped else
              f"{args.id}: already ended ({jobs.job_status(args.id, address)})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # MLflow's INFO chatter (table creation, pickling notes) hides the summary
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # read when mlflow is imported
        logging.getLogger("mlflow").setLevel(logging.ERROR)
    try:
        if args.command in ("submit", "status", "logs", "stop"):
            return _job_command(args)
        if args.command == "k8s":
            from qdist.k8s.cli import run_k8s_command

            return run_k8s_command(args)
        if args.command == "predict":
            from qdist.tracking.predict import predict_file

            table = predict_file(args.model_uri, args.table, out=args.out,
                                 id_column=args.id_column, tracking_uri=args.tracking_uri)
            if args.out is None:
                print(table.to_csv(index=False), end="")
            else:
                print(f"qdist: {len(table)} predictions written to {args.out}", file=sys.stderr)
            return 0
        if args.command == "validate":
            from qdist.config import load_config

            print(json.dumps(load_config(args.job).to_dict(), indent=2))
            return 0
        from qdist.api import run_job

        progress = _Progress(enabled=sys.stderr.isatty() or bool(os.environ.get("QDIST_PROGRESS")))
        try:
            result = run_job(args.job, out=args.out, address=args.address,
                             tracking_uri=args.tracking_uri, callbacks=[progress])
        finally:
            progress.close()
        if args.json:
            print(json.dumps(result.summary()))
        else:
            print(_summary(result))
        return 0
    except QdistError as exc:
        print(f"qdist: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
