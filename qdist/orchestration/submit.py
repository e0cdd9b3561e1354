"""Job submission: ``qdist run`` as a Ray job on a remote cluster, through its job API.

Thin functions over :class:`ray.job_submission.JobSubmissionClient`. :func:`submit_job` uploads
the working directory (the project: job files, data, and the qdist source when run from a
checkout) as the job's ``runtime_env`` and starts the entrypoint

    python -m qdist.cli run <job file, relative to the working directory> --address auto --json

on the head node. Inside a Ray job, ``RAY_ADDRESS`` holds the cluster's GCS address, so
``--address auto`` joins the job's own cluster and the tiles run on all of its nodes. The last
line of the job's logs is the ``--json`` summary of the run.

Paths in the job (``output.dir``, ``--out``) are paths on the cluster: use storage every node
sees. A relative one would land inside the job's unpacked copy of the working directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from qdist.config import load_config
from qdist.errors import ConfigError, QdistError

__all__ = [
    "JobApiError",
    "JobNotFoundError",
    "JobTimeoutError",
    "TERMINAL",
    "WORKING_DIR_EXCLUDES",
    "resolve_address",
    "submit_job",
    "job_status",
    "job_logs",
    "follow_logs",
    "stop_job",
    "wait_job",
]

log = logging.getLogger(__name__)

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
"""Job states that never change again."""

WORKING_DIR_EXCLUDES = [
    ".venv/", "venv/", ".git/", "__pycache__/", "*.pyc", "*.egg-info/", "build/", "dist/", ".whl/",
    ".pytest_cache/", ".hypothesis/", ".ruff_cache/", ".mypy_cache/", ".import_linter_cache/",
    "runs/", "mlruns/", "mlartifacts/", "*.zarr/", "mlflow.db", "benchmarks/results/",
]
"""What never travels with a job (gitignore patterns): environments, outputs, stores, caches."""

_ADDRESS_ENV = ("QDIST_RAY_ADDRESS", "RAY_ADDRESS")


class JobApiError(QdistError, ConnectionError):
    """The Ray job API cannot be reached or refused a request."""


class JobNotFoundError(QdistError, LookupError):
    """The cluster knows no job with this submission id."""


class JobTimeoutError(QdistError, TimeoutError):
    """A job did not reach a terminal state in time."""


def resolve_address(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The job API address: the flag, else ``QDIST_RAY_ADDRESS``, else ``RAY_ADDRESS``."""
    env = os.environ if environ is None else environ
    address = flag or next((env[k] for k in _ADDRESS_ENV if env.get(k)), "")
    if not address:
        raise ConfigError(
            "No Ray job API address: expected --address http://HEAD:8265 (or QDIST_RAY_ADDRESS "
            "/ RAY_ADDRESS in the environment); found none. Start a local cluster with "
            "cluster/local.sh start, which prints the address."
        )
    return address


def _unreachable(address: str, exc: BaseException) -> JobApiError:
    return JobApiError(
        f"cannot reach the Ray job API at {address} ({type(exc).__name__}: {exc}); start a "
        "cluster with cluster/local.sh start or check --address (expected the head's "
        "dashboard address, e.g. http://127.0.0.1:8265)."
    )


def _client(address: str) -> Any:
    """A connected :class:`JobSubmissionClient`, or a :class:`JobApiError` that says why not."""
    import requests
    from ray.exceptions import RayError
    from ray.job_submission import JobSubmissionClient

    if address == "auto" or address.startswith("ray://"):
        raise JobApiError(
            f"--address {address!r} is not a job API address; expected the dashboard address "
            "of the cluster's head, e.g. http://127.0.0.1:8265."
        )
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, requests.RequestException, RuntimeError, RayError) as exc:
        raise _unreachable(address, exc) from exc


def _request(address: str, job_id: str, what: str, call: Any, *args: Any) -> Any:
    """Run one client call; map Ray's RuntimeErrors to qdist errors."""
    import requests

    try:
        return call(*args)
    except requests.RequestException as exc:
        raise _unreachable(address, exc) from exc
    except RuntimeError as exc:
        if "status code 404" in str(exc) or "does not exist" in str(exc):
            raise JobNotFoundError(
                f"The Ray cluster at {address} has no job {job_id!r}. Check the id printed by "
                "qdist submit (list jobs with: ray job list --address ...)."
            ) from exc
        raise JobApiError(f"The Ray job API at {address} refused to {what} {job_id!r}: {exc}") \
            from exc


class _KnownExcludeNotice(logging.Filter):
    """Drops Ray's notice that it now skips ``.git``/``.venv``: we exclude them on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is now ignored by default" not in record.getMessage()


def _submission_id(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40] or "job"
    return f"qdist-{slug}-{uuid.uuid4().hex[:8]}"


def submit_job(
    job_path: str | os.PathLike[str],
    address: str,
    *,
    out: str | None = None,
    tracking_uri: str | None = None,
    working_dir: str | os.PathLike[str] | None = None,
    extra_pip: Sequence[str] | None = None,
) -> str:
    """Submit ``qdist run JOB`` to the cluster whose job API is at ``address``; its id.

    The job file is validated here first (without this machine's ``QDIST_`` variables, which
    do not travel), then ``working_dir`` (default: the current directory) is uploaded without
    :data:`WORKING_DIR_EXCLUDES`; the job file must lie inside it. ``extra_pip`` packages are
    installed into a job-private environment on the cluster (slow; prefer an image that has
    them).
    """
    flags = {k: v for k, v in (("output.dir", out), ("tracking.uri", tracking_uri)) if v}
    config = load_config(job_path, flags, environ={})
    wd = Path(working_dir if working_dir is not None else os.getcwd()).resolve()
    if not wd.is_dir():
        raise ConfigError(f"--working-dir {str(wd)!r} is not a directory. Check the path.")
    job = Path(job_path).resolve()
    try:
        rel = job.relative_to(wd).as_posix()
    except ValueError:
        raise ConfigError(
            f"The job file {str(job)!r} is outside the working directory {str(wd)!r} that is "
            "uploaded to the cluster. Run qdist submit from the project folder that holds it, "
            "or pass --working-dir."
        ) from None
    if not Path(config.output.dir).is_absolute() and "://" not in config.output.dir:
        log.warning("output.dir %r is relative: on the cluster it lands inside the job's "
                    "temporary copy of the working directory. Pass --out with a path every node "
                    "sees.", config.output.dir)
    command = ["python", "-m", "qdist.cli", "run", rel, "--address", "auto", "--json"]
    if out:
        command += ["--out", out]
    if tracking_uri:
        command += ["--tracking-uri", tracking_uri]
    runtime_env: dict[str, Any] = {"working_dir": str(wd), "excludes": WORKING_DIR_EXCLUDES}
    if extra_pip:
        runtime_env["pip"] = list(extra_pip)
    client = _client(address)
    sid = _submission_id(config.name)
    notices = logging.getLogger("ray._private.runtime_env.working_dir")
    quiet = _KnownExcludeNotice()
    notices.addFilter(quiet)
    try:
        _request(address, sid, "submit", lambda: client.submit_job(
            entrypoint=shlex.join(command), runtime_env=runtime_env, submission_id=sid,
            metadata={"qdist.job": rel, "qdist.name": config.name}))
    finally:
        notices.removeFilter(quiet)
    log.info("submitted %s to %s: %s", rel, address, shlex.join(command))
    return sid


def job_status(job_id: str, address: str) -> str:
    """The job's state: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
    client = _client(address)
    return str(_request(address, job_id, "report on", client.get_job_status, job_id).value)


def job_message(job_id: str, address: str) -> str:
    """Ray's one-line account of the job's state (why it failed), without the logs it quotes."""
    client = _client(address)
    message = str(_request(address, job_id, "report on", client.get_job_info, job_id).message
                  or "")
    return message.split(", last available logs", 1)[0].splitlines()[0] if message else ""


def job_logs(job_id: str, address: str) -> str:
    """Everything the job's driver has printed so far."""
    client = _client(address)
    return str(_request(address, job_id, "return the logs of", client.get_job_logs, job_id))


def follow_logs(job_id: str, address: str) -> Iterator[str]:
    """The job's logs as they come, chunk by chunk, until the job ends."""
    client = _client(address)
    _request(address, job_id, "report on", client.get_job_info, job_id)  # fail fast if unknown
    stream = client.tail_job_logs(job_id)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                chunk = loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
            except RuntimeError as exc:
                raise JobApiError(f"Lost the log stream of job {job_id!r} at {address}: {exc}. "
                                  "Run qdist logs again.") from exc
            yield chunk
    finally:
        loop.run_until_complete(stream.aclose())
        loop.close()


def stop_job(job_id: str, address: str) -> bool:
    """Ask the job to stop; True if it was running, False if it had already ended."""
    client = _client(address)
    return bool(_request(address, job_id, "stop", client.stop_job, job_id))


def wait_job(job_id: str, address: str, timeout: float = 3600.0, poll: float = 1.0) -> str:
    """Poll until the job reaches a terminal state and return it (see :data:`TERMINAL`)."""
    client = _client(address)
    deadline = time.monotonic() + timeout
    while True:
        status = str(_request(address, job_id, "report on", client.get_job_status, job_id).value)
        if status in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise JobTimeoutError(
                f"Job {job_id!r} is still {status} after {timeout:g} s. It keeps running: follow "
                f"it with qdist logs {job_id} --follow, or end it with qdist stop {job_id}."
            )
        time.sleep(poll)
