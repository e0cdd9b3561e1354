"""Where a rendered RayJob or RayCluster runs and what it connects to.

The defaults match the qdist Helm chart (``helm/qdist``) installed as release ``qdist``: its
MLflow service ``qdist-mlflow:5000``, its shared claim ``qdist-store`` mounted at
``/mnt/qdist``, and the Secrets a user creates beside it (``qdist-s3`` for S3 credentials,
optionally one with ``QDIST_PSEUDONYM_KEY`` and one with the IBM Quantum credentials).
Nothing here holds a secret: Secrets are named, never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Literal
from urllib.parse import urlsplit

from qdist.errors import ConfigError

__all__ = ["K8sSettings", "fullname", "dns_name", "fail"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


def fail(option: str, expected: str, value: object, fix: str) -> ConfigError:
    """The error for a bad ``qdist k8s`` option: what was expected, what was found, the fix."""
    return ConfigError(f"The option '{option}' must be {expected}; got {value!r}. {fix}")


def _version(package: str, fallback: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return fallback


def dns_name(text: str, limit: int = 63) -> str:
    """``text`` as a DNS-1123 label: lower case, ``[a-z0-9-]``, at most ``limit`` characters."""
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)[:limit].rstrip("-")
    return slug or "job"


def fullname(release: str) -> str:
    """The chart's resource prefix for ``release`` (``qdist.fullname`` in ``_helpers.tpl``)."""
    name = release if "qdist" in release else f"{release}-qdist"
    return name[:63].rstrip("-")


@dataclass(frozen=True, slots=True)
class K8sSettings:
    """Cluster-side settings of a rendered RayJob; every field has a ``qdist k8s`` flag."""

    release: str = "qdist"
    """Helm release of the qdist chart whose MLflow and storage the job uses."""
    namespace: str | None = None
    """Namespace of the rendered objects (default: the one ``kubectl`` applies them to)."""
    image: str = field(default_factory=lambda: f"qdist-cpu:{_version('qdist', '0.1.0')}")
    """The qdist CPU image (``deploy/docker/cpu.Dockerfile``) for the head and CPU workers."""
    gpu_image: str = field(default_factory=lambda: f"qdist-gpu:{_version('qdist', '0.1.0')}")
    """The qdist GPU image (``deploy/docker/gpu.Dockerfile``) for GPU workers."""
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    """Image pull policy of every container."""
    ray_version: str = field(default_factory=lambda: _version("ray", "2.60.0"))
    """Ray version inside the images (KubeRay's ``rayVersion``)."""
    store: str | None = None
    """Where job outputs go: a folder under ``mount_path`` on the shared claim (default
    ``<mount_path>/runs``), or ``s3://bucket/prefix``; a job's output is ``<store>/<job name>``."""
    pvc_claim: str | None = None
    """The ReadWriteMany claim mounted at ``mount_path`` (default ``<fullname>-store``)."""
    mount_path: str = "/mnt/qdist"
    """Where the shared claim is mounted in every pod."""
    tracking_uri: str | None = None
    """MLflow tracking URI (default ``http://<fullname>-mlflow:5000``, the chart's server)."""
    s3_secret: str = "qdist-s3"
    """Secret with the keys ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (S3 only)."""
    s3_endpoint: str | None = None
    """S3-compatible endpoint URL (MinIO, Ceph, ...); default AWS S3."""
    s3_region: str = "us-east-1"
    """S3 region."""
    pseudonym_secret: str | None = None
    """Secret with the key ``QDIST_PSEUDONYM_KEY`` (stable pseudonyms across runs)."""
    qpu_secret: str | None = None
    """Secret with ``QISKIT_IBM_TOKEN`` (and optionally ``QISKIT_IBM_INSTANCE``,
    ``QISKIT_IBM_CHANNEL``) for ``qpu.provider: ibm``."""
    workers: int | None = None
    """Tile workers (CPUs, or GPUs for GPU jobs); default the job's ``tiles.workers``, else 4."""
    cpus_per_pod: int = 2
    """CPUs (= tile workers) per CPU worker pod."""
    head_cpu: str = "1"
    """CPU request of the head pod, where the driver assembles and trains."""
    head_memory: str = "4Gi"
    """Memory of the head pod (request and limit)."""
    ttl_seconds: int = 600
    """Seconds a finished RayJob (and its logs) stays before it is deleted."""
    deadline_seconds: int | None = None
    """Stop the job after this many seconds (default: no limit)."""

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.release) or len(self.release) > 53:
            raise fail("--release", "a Helm release name (lower-case letters, digits and '-', "
                       "at most 53 characters)", self.release, "Use e.g. qdist.")
        if self.namespace is not None and not _DNS_LABEL.match(self.namespace):
            raise fail("--namespace", "a DNS-1123 label", self.namespace, "Use e.g. qdist.")
        if self.pull_policy not in ("IfNotPresent", "Always", "Never"):
            raise fail("--pull-policy", "IfNotPresent, Always or Never", self.pull_policy,
                       "Use IfNotPresent.")
        if not self.mount_path.startswith("/"):
            raise fail("--mount-path", "an absolute path", self.mount_path, "Use e.g. /mnt/qdist.")
        if self.output_base.startswith("s3://"):
            parts = urlsplit(self.output_base)
            if "@" in parts.netloc:
                raise fail("--store", "an s3:// URL without credentials", "(not shown)",
                           "Credentials come from the Secret named by --s3-secret.")
            if not parts.netloc or parts.query or parts.fragment:
                raise fail("--store", "s3://bucket/prefix", self.store, "Name a bucket.")
        elif "://" in self.output_base or not self.output_base.startswith(
                self.mount_path.rstrip("/") + "/"):
            raise fail("--store", f"a folder under the shared mount {self.mount_path}, or "
                       "s3://bucket/prefix", self.store,
                       f"Use e.g. {self.mount_path}/runs or s3://my-bucket/qdist.")
        for name in ("cpus_per_pod", "ttl_seconds"):
            if getattr(self, name) < 1:
                raise fail(f"--{name.replace('_', '-')}", "an integer >= 1", getattr(self, name),
                           "Use a positive number.")
        if self.workers is not None and self.workers < 1:
            raise fail("--workers", "an integer >= 1", self.workers, "Use e.g. 4.")
        if self.deadline_seconds is not None and self.deadline_seconds < 1:
            raise fail("--deadline", "an integer >= 1", self.deadline_seconds,
                       "Leave it out for no limit.")
        for flag, value in (("--head-cpu", self.head_cpu), ("--head-memory", self.head_memory)):
            if not _QUANTITY.match(value):
                raise fail(flag, "a Kubernetes quantity", value, "Use e.g. 2 or 8Gi.")

    @property
    def output_base(self) -> str:
        """``store``, or ``<mount_path>/runs``."""
        return (self.store or f"{self.mount_path.rstrip('/')}/runs").rstrip("/")

    @property
    def s3(self) -> bool:
        return self.output_base.startswith("s3://")

    @property
    def prefix(self) -> str:
        return fullname(self.release)

    @property
    def claim(self) -> str:
        return self.pvc_claim or f"{self.prefix}-store"

    @property
    def mlflow_uri(self) -> str:
        return self.tracking_uri or f"http://{self.prefix}-mlflow:5000"
