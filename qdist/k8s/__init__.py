"""Kubernetes: a job file as a KubeRay RayJob, and the long-lived RayCluster (no cluster needed
to render; ``qdist k8s render|cluster``). Imports only the standard library, PyYAML and the
pure config."""

from qdist.k8s.raycluster import render_raycluster
from qdist.k8s.rayjob import render_rayjob, to_yaml
from qdist.k8s.settings import K8sSettings

__all__ = ["K8sSettings", "render_rayjob", "render_raycluster", "to_yaml"]
