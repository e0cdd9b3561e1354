"""A job file as Kubernetes objects: a ConfigMap with the file and a KubeRay ``RayJob``.

The RayJob creates a Ray cluster sized for the job (a head that runs the driver, and CPU, GPU
or QPU-queue workers as the job's backend asks), runs ``qdist run`` on the job file from the
ConfigMap with the output on the shared claim or S3 and the tracking URI of the chart's MLflow,
and deletes the cluster when the job ends (``shutdownAfterJobFinishes``).

The cluster of a RayJob has a fixed size: qdist sizes its pool of tile workers from the
resources present when the tile phase starts, so workers that an autoscaler would add later
would sit idle. Autoscaling belongs to the long-lived RayCluster (:mod:`qdist.k8s.raycluster`).
"""

from __future__ import annotations

import hashlib
import math
import shlex
from pathlib import Path
from typing import Any

import yaml

from qdist.config import RunConfig, load_config
from qdist.errors import ConfigError
from qdist.k8s.pods import JOB_MOUNT, LABELS, head_group, submitter_template, worker_group
from qdist.k8s.settings import K8sSettings, dns_name

__all__ = ["render_rayjob", "job_entrypoint", "check_paths", "to_yaml"]

_JOB_FILE = "job.yaml"
_DEFAULT_WORKERS = 4
_MAX_NAME = 47


def check_paths(tree: Any) -> None:
    """Refuse data paths that will not exist in the cluster (relative to the job file).

    Only the job file travels (in a ConfigMap); data the job reads must already be on storage
    every pod sees, named by an absolute path.
    """
    data = tree.get("data") if isinstance(tree, dict) else None
    if not isinstance(data, dict):
        return
    found: list[tuple[str, str]] = []
    for key, value in data.items():
        if "path" in key and isinstance(value, str):
            found.append((f"data.{key}", value))
        elif key == "tables" and isinstance(value, dict):
            found += [(f"data.tables.{k}", v) for k, v in value.items() if isinstance(v, str)]
    for field, value in found:
        if not value.startswith("/") and "://" not in value:
            raise ConfigError(
                f"The job-file field '{field}' must be an absolute path for a RayJob; got "
                f"{value!r}. Only the job file travels to the cluster (in a ConfigMap): put the "
                "data on the shared volume and name it absolutely, e.g. /mnt/qdist/data/"
                f"{Path(value).name}."
            )


def _workers(config: RunConfig, s: K8sSettings) -> int:
    return s.workers or config.tiles.workers or _DEFAULT_WORKERS


def job_entrypoint(out: str, tracking_uri: str) -> str:
    """The command the RayJob runs on its head: ``qdist run`` joined to the job's cluster."""
    return shlex.join(["qdist", "run", f"{JOB_MOUNT}/{_JOB_FILE}", "--address", "auto",
                       "--out", out, "--tracking-uri", tracking_uri, "--json"])


def _groups(config: RunConfig, s: K8sSettings) -> list[dict[str, Any]]:
    n = _workers(config, s)
    budget = config.tiles.worker_memory_gb
    if config.backend.kind == "qpu":
        provider = config.qpu.provider
        return [worker_group(s, "qpu", replicas=1, min_replicas=1, max_replicas=1,
                             qpu_provider=provider)]
    if config.backend.device == "GPU":
        return [worker_group(s, "gpu", replicas=n, min_replicas=n, max_replicas=n,
                             worker_memory_gb=budget)]
    pods = math.ceil(n / s.cpus_per_pod)
    return [worker_group(s, "cpu", replicas=pods, min_replicas=pods, max_replicas=pods,
                         worker_memory_gb=budget)]


def render_rayjob(job: str | Path, settings: K8sSettings) -> list[dict[str, Any]]:
    """The ConfigMap and the RayJob for the job file ``job`` (validated first)."""
    path = Path(job)
    config = load_config(path, environ={})  # the cluster's environment, not this shell's
    text = path.read_text()
    check_paths(yaml.safe_load(text))
    store = settings.output_base
    slug = dns_name(config.name)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = settings.prefix[:10].rstrip("-")
    # KubeRay refuses RayJob names over 47 characters (its cluster and services append theirs)
    name = f"{head}-{dns_name(slug, _MAX_NAME - len(head) - 10)}-{digest}"
    meta: dict[str, Any] = {"labels": {**LABELS, "app.kubernetes.io/instance": settings.release,
                                       "qdist.io/job": slug}}
    if settings.namespace:
        meta["namespace"] = settings.namespace
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {**meta, "name": f"{name}-job"}, "data": {_JOB_FILE: text}}
    provider = config.qpu.provider if config.backend.kind == "qpu" else None
    spec: dict[str, Any] = {
        "entrypoint": job_entrypoint(f"{store}/{slug}", settings.mlflow_uri),
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": settings.ttl_seconds,
        "backoffLimit": 0,
        "submissionMode": "K8sJobMode",
        "submitterPodTemplate": submitter_template(settings),
        "rayClusterSpec": {
            "rayVersion": settings.ray_version,
            "enableInTreeAutoscaling": False,
            "headGroupSpec": head_group(settings, f"{name}-job", provider),
            "workerGroupSpecs": _groups(config, settings),
        },
    }
    if settings.deadline_seconds:
        spec["activeDeadlineSeconds"] = settings.deadline_seconds
    rayjob = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {**meta, "name": name},
              "spec": spec}
    return [configmap, rayjob]


class _Dumper(yaml.SafeDumper):
    """Plain YAML for people: no anchors, multi-line strings (the job file) as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """Objects as one multi-document YAML stream (for ``kubectl apply -f``)."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
