"""Pod templates and KubeRay group specs for qdist's head, CPU, GPU and QPU-queue pods.

Every pod runs as the images' non-root user (uid 1000), with no privilege escalation and all
capabilities dropped. Credentials reach containers only as ``secretKeyRef`` references, and each
role gets only the ones it uses: S3 keys everywhere the store is written, the pseudonym key only
on the head (the driver pseudonymises ids), IBM Quantum credentials only where the QPU queue
actor may run.
"""

from __future__ import annotations

import json
import math
from typing import Any

from qdist.k8s.settings import K8sSettings

__all__ = ["CONTAINER_SECURITY", "JOB_MOUNT", "LABELS", "head_group", "pod_env", "submitter_template",
           "worker_group"]

LABELS = {"app.kubernetes.io/name": "qdist", "app.kubernetes.io/part-of": "qdist"}
JOB_MOUNT = "/etc/qdist/job"
UID = 1000

_POD_SECURITY = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                 "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
_GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _secret(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def pod_env(s: K8sSettings, role: str, qpu_provider: str | None = None) -> list[dict[str, Any]]:
    """Environment of a ``role`` (``head``, ``cpu``, ``gpu``, ``qpu``) container."""
    env: list[dict[str, Any]] = [{"name": "RAY_USAGE_STATS_ENABLED", "value": "0"}]
    if s.s3:
        env.append({"name": "AWS_DEFAULT_REGION", "value": s.s3_region})
        if s.s3_endpoint:
            env.append({"name": "AWS_ENDPOINT_URL", "value": s.s3_endpoint})
        env += [_secret("AWS_ACCESS_KEY_ID", s.s3_secret, "AWS_ACCESS_KEY_ID"),
                _secret("AWS_SECRET_ACCESS_KEY", s.s3_secret, "AWS_SECRET_ACCESS_KEY")]
    if role == "head" and s.pseudonym_secret:
        env.append(_secret("QDIST_PSEUDONYM_KEY", s.pseudonym_secret, "QDIST_PSEUDONYM_KEY"))
    if role in ("head", "qpu") and qpu_provider == "ibm" and s.qpu_secret:
        env += [_secret("QISKIT_IBM_TOKEN", s.qpu_secret, "QISKIT_IBM_TOKEN"),
                _secret("QISKIT_IBM_INSTANCE", s.qpu_secret, "QISKIT_IBM_INSTANCE", optional=True),
                _secret("QISKIT_IBM_CHANNEL", s.qpu_secret, "QISKIT_IBM_CHANNEL", optional=True)]
    return env


def _volumes(s: K8sSettings, job_configmap: str | None) -> tuple[list[Any], list[Any]]:
    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if not s.s3:
        volumes.append({"name": "store", "persistentVolumeClaim": {"claimName": s.claim}})
        mounts.append({"name": "store", "mountPath": s.mount_path})
    if job_configmap is not None:
        volumes.append({"name": "job", "configMap": {"name": job_configmap}})
        mounts.append({"name": "job", "mountPath": JOB_MOUNT, "readOnly": True})
    return volumes, mounts


def _pod(s: K8sSettings, role: str, container: dict[str, Any], job_configmap: str | None = None,
         gpu: bool = False) -> dict[str, Any]:
    volumes, mounts = _volumes(s, job_configmap)
    container = {"image": s.gpu_image if gpu else s.image, "imagePullPolicy": s.pull_policy,
                 **container, "volumeMounts": mounts, "securityContext": CONTAINER_SECURITY}
    spec: dict[str, Any] = {"securityContext": _POD_SECURITY, "containers": [container],
                            "volumes": volumes}
    if gpu:
        spec["tolerations"] = [_GPU_TOLERATION]
    return {"metadata": {"labels": {**LABELS, "app.kubernetes.io/component": f"ray-{role}"}},
            "spec": spec}


def head_group(s: K8sSettings, job_configmap: str | None = None,
               qpu_provider: str | None = None) -> dict[str, Any]:
    """The head: the job's driver runs here; no tile worker is scheduled on it (0 CPUs)."""
    container = {
        "name": "ray-head",
        "env": pod_env(s, "head", qpu_provider),
        "ports": [{"containerPort": 6379, "name": "gcs-server"},
                  {"containerPort": 8265, "name": "dashboard"},
                  {"containerPort": 10001, "name": "client"}],
        "resources": {"requests": {"cpu": s.head_cpu, "memory": s.head_memory},
                      "limits": {"memory": s.head_memory}},
    }
    return {"rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
            "template": _pod(s, "head", container, job_configmap)}


def worker_group(s: K8sSettings, role: str, *, replicas: int, min_replicas: int,
                 max_replicas: int, worker_memory_gb: float = 4.0,
                 qpu_provider: str | None = None) -> dict[str, Any]:
    """A worker group: ``cpu`` (``cpus_per_pod`` tile workers a pod), ``gpu`` (one GPU and one
    tile worker a pod) or ``qpu`` (one pod advertising the custom resource ``qpu: 1``, where
    the QPU queue actor runs). Memory: the job's per-worker budget plus 2 GiB for Ray."""
    cpus = {"cpu": s.cpus_per_pod, "gpu": 1, "qpu": 1}[role]
    memory = f"{math.ceil(cpus * worker_memory_gb + 2)}Gi" if role != "qpu" else "2Gi"
    resources: dict[str, Any] = {"requests": {"cpu": str(cpus), "memory": memory},
                                 "limits": {"cpu": str(cpus), "memory": memory}}
    if role == "gpu":
        resources["limits"]["nvidia.com/gpu"] = "1"
    params: dict[str, str] = {}
    if role == "qpu":
        params["resources"] = json.dumps(json.dumps({"qpu": 1}))  # KubeRay passes it verbatim
    container = {"name": "ray-worker", "env": pod_env(s, role, qpu_provider),
                 "resources": resources}
    return {"groupName": f"{role}-workers", "replicas": replicas, "minReplicas": min_replicas,
            "maxReplicas": max_replicas, "rayStartParams": params,
            "template": _pod(s, role, container, gpu=role == "gpu")}


def submitter_template(s: K8sSettings) -> dict[str, Any]:
    """The pod that submits a RayJob (KubeRay fills in its ``ray job submit`` command)."""
    container = {"name": "ray-job-submitter", "image": s.image, "imagePullPolicy": s.pull_policy,
                 "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                               "limits": {"memory": "512Mi"}},
                 "securityContext": CONTAINER_SECURITY}
    return {"metadata": {"labels": {**LABELS, "app.kubernetes.io/component": "ray-submitter"}},
            "spec": {"restartPolicy": "Never", "securityContext": _POD_SECURITY,
                     "containers": [container]}}
