"""Where QPU circuits run: devices by name, IBM credentials from the environment, readout data.

Runtime packages (qiskit-aer, qiskit-ibm-runtime) are imported inside the functions that need
them, so importing this module is cheap. Secrets are read only from the environment, held in an
:class:`IbmCredentials` whose ``repr`` hides the token, and never put into a message.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qdist.errors import BackendError
from qdist.planning.qpu import (
    CIRCUIT_OVERHEAD_S,
    DEFAULT_SHOT_S,
    EXECUTION_LIMIT,
    JOB_OVERHEAD_S,
    estimate_seconds,
)

__all__ = [
    "PROVIDERS",
    "IbmCredentials",
    "fake_backend",
    "normalise_status",
    "readout_inverses",
    "ibm_service",
    "estimate_qpu_time",
    "JOB_OVERHEAD_S",
    "CIRCUIT_OVERHEAD_S",
    "DEFAULT_REP_DELAY_S",
    "MAX_EXECUTIONS_PER_JOB",
]

logger = logging.getLogger(__name__)

PROVIDERS = ("aer", "fake", "ibm", "spool")
IBM_CHANNELS = ("ibm_quantum_platform", "ibm_cloud")
# one budget model and one execution limit for the whole project: qdist.planning.qpu
DEFAULT_REP_DELAY_S = DEFAULT_SHOT_S
MAX_EXECUTIONS_PER_JOB = EXECUTION_LIMIT
_STATUS = {"INITIALIZING": "QUEUED", "VALIDATING": "QUEUED", "QUEUED": "QUEUED", "RUNNING": "RUNNING",
           "DONE": "DONE", "ERROR": "ERROR", "CANCELLED": "CANCELLED"}


@dataclass(frozen=True, slots=True)
class IbmCredentials:
    """IBM Quantum credentials, read only from the environment."""

    token: str = field(repr=False)
    """API key (``QISKIT_IBM_TOKEN``); never logged, shown or stored."""
    instance: str
    """Instance CRN or name (``QISKIT_IBM_INSTANCE``)."""
    channel: str = "ibm_quantum_platform"
    """``QISKIT_IBM_CHANNEL``: ``ibm_quantum_platform`` (default) or ``ibm_cloud``."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IbmCredentials:
        """Read ``QISKIT_IBM_TOKEN``, ``QISKIT_IBM_INSTANCE`` and ``QISKIT_IBM_CHANNEL``."""
        env = os.environ if environ is None else environ
        for var, what in (("QISKIT_IBM_TOKEN", "your IBM Quantum API key"),
                          ("QISKIT_IBM_INSTANCE", "the instance CRN or name to bill")):
            if not env.get(var, "").strip():
                raise BackendError(
                    f"provider 'ibm' needs the environment variable {var} ({what}); it is unset or "
                    f"empty. Export {var} (or set it from a Kubernetes Secret) and run again; "
                    "credentials are never read from job files."
                )
        channel = env.get("QISKIT_IBM_CHANNEL", "").strip() or "ibm_quantum_platform"
        if channel not in IBM_CHANNELS:
            raise BackendError(
                f"QISKIT_IBM_CHANNEL must be one of {IBM_CHANNELS}; got {channel!r}. Unset it to use "
                "'ibm_quantum_platform'."
            )
        return cls(token=env["QISKIT_IBM_TOKEN"].strip(), instance=env["QISKIT_IBM_INSTANCE"].strip(),
                   channel=channel)

    def scrub(self, text: str) -> str:
        """``text`` with the token replaced by ``***``."""
        return text.replace(self.token, "***") if self.token else text


@contextlib.contextmanager
def _process_http_untouched() -> Iterator[None]:
    """Undo what IBM's cloud SDK does to the whole process when DEBUG logging is on: it turns on
    ``http.client``'s wire debugging and replaces that module's ``print`` with a function that
    fails on some headers, which then breaks every other HTTP client (S3, MLflow) in the process
    and could log request headers (credentials)."""
    import http.client

    level = http.client.HTTPConnection.debuglevel
    printer = http.client.__dict__.get("print")
    try:
        yield
    finally:
        http.client.HTTPConnection.debuglevel = level
        if printer is None:
            http.client.__dict__.pop("print", None)
        else:
            http.client.print = printer  # type: ignore[attr-defined]


def ibm_service(creds: IbmCredentials) -> Any:
    """A ``QiskitRuntimeService`` for ``creds``; errors are re-raised without the token."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    try:
        with _process_http_untouched():
            return QiskitRuntimeService(channel=creds.channel, token=creds.token,
                                        instance=creds.instance)
    except Exception as exc:  # any failure becomes a BackendError without the token
        detail = creds.scrub(f"{type(exc).__name__}: {exc}")
        leaked = any(creds.token in str(e) for e in _chain(exc))
        err = BackendError(
            f"Could not connect to IBM Quantum (channel {creds.channel!r}, instance "
            f"{creds.instance!r}): {detail}. Check QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE and the "
            "network, then run again."
        )
        raise err from (None if leaked else exc)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def fake_backend(name: str) -> Any:
    """A ``qiskit_ibm_runtime.fake_provider`` backend by device name (``fake_torino``) or class name."""
    from qiskit_ibm_runtime import fake_provider

    camel = "".join(part.capitalize() for part in name.split("_")) if "_" in name else name
    for cls_name in (camel, camel + "V2", name):
        cls = getattr(fake_provider, cls_name, None)
        if isinstance(cls, type):
            return cls()
    known = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and "Provider" not in n)
    raise BackendError(
        f"Unknown fake backend {name!r}. Use a device name such as 'fake_torino' or "
        f"'fake_manila', or a class from qiskit_ibm_runtime.fake_provider ({', '.join(known[:6])}, ...)."
    )


def normalise_status(status: Any) -> str:
    """``QUEUED | RUNNING | DONE | ERROR | CANCELLED`` from a runtime or local job's status."""
    name = getattr(status, "name", status)
    try:
        return _STATUS[str(name).upper()]
    except KeyError as exc:
        raise BackendError(f"Unknown job status {status!r} from the primitive.") from exc


def readout_inverses(device: Any, physical_qubits: list[int]) -> np.ndarray:
    """Inverse confusion matrices ``A_k^{-1}``, shape ``(q, 2, 2)``, for the measured qubits.

    ``A_k = [[1 - p10, p01], [p10, 1 - p01]]`` with ``p10 = prob_meas1_prep0`` and
    ``p01 = prob_meas0_prep1`` from ``device.properties()``; where only a symmetric
    ``readout_error`` (properties or ``target['measure']``) is reported, ``p10 = p01 = e``. A
    device that reports nothing (a noiseless ``AerSimulator``) gets identities.
    """
    props = None
    try:
        props = device.properties() if hasattr(device, "properties") else None
    except Exception as exc:  # properties are optional; fall back to the target
        logger.debug("device.properties() failed (%s); using target readout errors", exc)
    out = np.empty((len(physical_qubits), 2, 2))
    missing = 0
    for k, q in enumerate(physical_qubits):
        p10, p01 = _qubit_readout(props, device, q)
        if p10 is None or p01 is None:
            missing += 1
            p10 = p01 = 0.0
        a = np.array([[1.0 - p10, p01], [p10, 1.0 - p01]])
        if abs(np.linalg.det(a)) < 1e-6:
            raise BackendError(f"The readout confusion matrix of qubit {q} is singular: {a.tolist()}.")
        out[k] = np.linalg.inv(a)
    if missing:
        logger.warning("No readout error reported for %d measured qubit(s); they are not mitigated.",
                       missing)
    return out


def _qubit_readout(props: Any, device: Any, q: int) -> tuple[float | None, float | None]:
    if props is not None:
        try:
            qp = props.qubit_property(q)
        except Exception:  # a qubit without properties falls through to the target
            qp = {}
        if "prob_meas1_prep0" in qp and "prob_meas0_prep1" in qp:
            return float(qp["prob_meas1_prep0"][0]), float(qp["prob_meas0_prep1"][0])
        if "readout_error" in qp:
            e = float(qp["readout_error"][0])
            return e, e
    target = getattr(device, "target", None)
    if target is not None and "measure" in target:
        inst = target["measure"].get((q,))
        if inst is not None and inst.error is not None:
            return float(inst.error), float(inst.error)
    return None, None


def estimate_qpu_time(device: Any, isa_circuit: Any, shots: int, n_pairs_total: int,
                      n_jobs: int) -> dict[str, Any]:
    """A rough QPU-time estimate (not a quote) for ``n_pairs_total`` pairs in ``n_jobs`` jobs.

    The model is :func:`qdist.planning.qpu.estimate_seconds` with a per-shot time of
    ``rep_delay + circuit duration``, ``rep_delay`` being the device's
    ``default_rep_delay`` (else 250 us) and the duration from the device's gate timings (0 for a
    simulator, which reports none). Each pair is one circuit; ``shots_total = n_pairs * shots``.
    """
    rep = float(getattr(device, "default_rep_delay", None) or DEFAULT_REP_DELAY_S)
    try:
        duration = float(isa_circuit.estimate_duration(device.target, unit="s"))
    except Exception:  # simulators report no gate durations
        duration = 0.0
    shots_total = int(n_pairs_total) * int(shots)
    seconds = estimate_seconds(int(n_pairs_total), int(shots), int(n_jobs), rep + duration)
    return {"jobs": int(n_jobs), "circuits": int(n_pairs_total), "shots_per_circuit": int(shots),
            "shots_total": shots_total, "qpu_seconds_estimate": round(seconds, 3),
            "per_shot_seconds": rep + duration,
            "max_pairs_per_job": MAX_EXECUTIONS_PER_JOB // int(shots),
            "model": "estimate: jobs*2 s + circuits*1 ms + shots*(rep_delay + circuit duration)"}
