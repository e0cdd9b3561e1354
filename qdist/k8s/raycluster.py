"""A long-lived, autoscaling KubeRay ``RayCluster`` for ``qdist submit`` (``cluster/k8s/``).

A head (0 CPUs: drivers run here, tiles do not), a CPU worker group, an optional GPU worker group
(``nvidia.com/gpu`` limits, the GPU taint tolerated) and optional QPU-queue workers that
advertise the custom resource ``qpu``. Ray's autoscaler, run by KubeRay beside the head, adds
workers up to ``maxReplicas`` while work waits for resources and removes workers idle for
``idle_timeout`` seconds, down to ``minReplicas``.

qdist sizes a job's tile-worker pool from the resources present when its tile phase starts
(capped by ``tiles.workers``): keep ``minReplicas`` at the pool you want jobs to get at once.
A GPU job needs a GPU worker up when it starts, so give the GPU group ``minReplicas >= 1``
while GPU jobs run (``--gpu-workers MIN:MAX``).
"""

from __future__ import annotations

from typing import Any

from qdist.k8s.pods import CONTAINER_SECURITY, LABELS, head_group, worker_group
from qdist.k8s.settings import K8sSettings, fail

__all__ = ["render_raycluster", "parse_range"]


def parse_range(text: str, option: str) -> tuple[int, int]:
    """``MIN:MAX`` (or ``N`` for a fixed size) as a pair of replica counts."""
    lo, _, hi = text.partition(":")
    try:
        pair = (int(lo), int(hi or lo))
    except ValueError:
        raise fail(option, "MIN:MAX replica counts", text, "Use e.g. 1:8, or 2 for a fixed size.") \
            from None
    if pair[0] < 0 or pair[1] < max(pair[0], 1):
        raise fail(option, "0 <= MIN <= MAX with MAX >= 1", text, "Use e.g. 0:4.")
    return pair


def render_raycluster(s: K8sSettings, *, name: str | None = None, cpu: tuple[int, int] = (1, 8),
                      gpu: tuple[int, int] | None = None, qpu: int = 0,
                      qpu_provider: str | None = None, idle_timeout: int = 60,
                      worker_memory_gb: float = 4.0) -> dict[str, Any]:
    """The RayCluster object (``gpu``, ``qpu`` absent: no such group)."""
    if qpu < 0:
        raise fail("--qpu-workers", "an integer >= 0", qpu, "Use 0 (no QPU group) or 1.")
    if idle_timeout < 1:
        raise fail("--idle-timeout", "seconds >= 1", idle_timeout, "Use e.g. 60.")
    groups = [worker_group(s, "cpu", replicas=cpu[0], min_replicas=cpu[0], max_replicas=cpu[1],
                           worker_memory_gb=worker_memory_gb)]
    if gpu is not None:
        groups.append(worker_group(s, "gpu", replicas=gpu[0], min_replicas=gpu[0],
                                   max_replicas=gpu[1], worker_memory_gb=worker_memory_gb))
    if qpu:
        groups.append(worker_group(s, "qpu", replicas=qpu, min_replicas=qpu, max_replicas=qpu,
                                   qpu_provider=qpu_provider))
    meta: dict[str, Any] = {"name": name or s.prefix,
                            "labels": {**LABELS, "app.kubernetes.io/instance": s.release}}
    if s.namespace:
        meta["namespace"] = s.namespace
    return {
        "apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": meta,
        "spec": {
            "rayVersion": s.ray_version,
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {
                "upscalingMode": "Default", "idleTimeoutSeconds": idle_timeout,
                "imagePullPolicy": s.pull_policy,
                "resources": {"requests": {"cpu": "200m", "memory": "512Mi"},
                              "limits": {"memory": "1Gi"}},
                "securityContext": CONTAINER_SECURITY,
            },
            "headGroupSpec": head_group(s, qpu_provider=qpu_provider),
            "workerGroupSpecs": groups,
        },
    }
