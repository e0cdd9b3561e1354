"""``qdist k8s render JOB.yaml`` and ``qdist k8s cluster``: YAML for ``kubectl apply -f``.

Both print to stdout, or write ``--out FILE``. Nothing here talks to a cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_k8s_commands", "run_k8s_command"]

# flag -> (K8sSettings field, type, help)
_SETTINGS: tuple[tuple[str, str, type, str], ...] = (
    ("--release", "release", str, "Helm release of the qdist chart to connect to (qdist)"),
    ("--namespace", "namespace", str, "namespace of the rendered objects"),
    ("--image", "image", str, "qdist CPU image (default qdist-cpu:VERSION)"),
    ("--gpu-image", "gpu_image", str, "qdist GPU image (default qdist-gpu:VERSION)"),
    ("--pull-policy", "pull_policy", str, "IfNotPresent, Always or Never"),
    ("--ray-version", "ray_version", str, "Ray version in the images (default: this Ray's)"),
    ("--store", "store", str, "output base: a folder on the shared claim (/mnt/qdist/runs) "
     "or s3://bucket/prefix; a job writes to STORE/JOB-NAME"),
    ("--pvc-claim", "pvc_claim", str, "shared ReadWriteMany claim (default RELEASE-store)"),
    ("--mount-path", "mount_path", str, "mount point of the claim (/mnt/qdist)"),
    ("--tracking-uri", "tracking_uri", str, "MLflow URI (default http://RELEASE-mlflow:5000)"),
    ("--s3-secret", "s3_secret", str, "Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"),
    ("--s3-endpoint", "s3_endpoint", str, "S3-compatible endpoint URL (default AWS)"),
    ("--s3-region", "s3_region", str, "S3 region (us-east-1)"),
    ("--pseudonym-secret", "pseudonym_secret", str, "Secret with QDIST_PSEUDONYM_KEY"),
    ("--qpu-secret", "qpu_secret", str, "Secret with QISKIT_IBM_TOKEN (qpu.provider: ibm)"),
    ("--cpus-per-pod", "cpus_per_pod", int, "CPUs (tile workers) per CPU worker pod (2)"),
    ("--head-cpu", "head_cpu", str, "CPU request of the head (1)"),
    ("--head-memory", "head_memory", str, "memory of the head (4Gi)"),
)


def _add_settings(p: argparse.ArgumentParser) -> None:
    for flag, dest, kind, text in _SETTINGS:
        p.add_argument(flag, dest=f"k8s_{dest}", type=kind, help=text)
    p.add_argument("--out", help="write the YAML here (default: stdout)")


def add_k8s_commands(sub: Any) -> None:
    """Register ``qdist k8s render`` and ``qdist k8s cluster`` on ``sub``."""
    k8s = sub.add_parser("k8s", help="Kubernetes manifests: a RayJob for a job file, a RayCluster")
    cmds = k8s.add_subparsers(dest="k8s_command", required=True)
    render = cmds.add_parser("render", help="a job file as a ConfigMap and a KubeRay RayJob")
    render.add_argument("job", help="job file (YAML)")
    _add_settings(render)
    render.add_argument("--workers", dest="k8s_workers", type=int,
                        help="tile workers (default: tiles.workers of the job, else 4)")
    render.add_argument("--ttl", dest="k8s_ttl_seconds", type=int,
                        help="seconds a finished RayJob is kept (600)")
    render.add_argument("--deadline", dest="k8s_deadline_seconds", type=int,
                        help="stop the job after this many seconds (default: no limit)")
    cluster = cmds.add_parser("cluster", help="a long-lived, autoscaling KubeRay RayCluster")
    _add_settings(cluster)
    cluster.add_argument("--name", help="RayCluster name (default: RELEASE's prefix)")
    cluster.add_argument("--cpu-workers", default="1:8", help="CPU worker pods MIN:MAX (1:8)")
    cluster.add_argument("--gpu-workers", help="GPU worker pods MIN:MAX (default: no GPU group)")
    cluster.add_argument("--qpu-workers", type=int, default=0,
                         help="QPU-queue pods advertising the resource qpu (default 0)")
    cluster.add_argument("--qpu-provider", help="ibm: give QPU pods the --qpu-secret credentials")
    cluster.add_argument("--idle-timeout", type=int, default=60,
                         help="seconds before the autoscaler removes an idle worker (60)")
    cluster.add_argument("--worker-memory-gb", type=float, default=4.0,
                         help="memory budget per tile worker, as in tiles.worker_memory_gb (4)")


def run_k8s_command(args: argparse.Namespace) -> int:
    """Render what ``args`` asks for; write it to ``--out`` or stdout."""
    from qdist.k8s import K8sSettings, render_raycluster, render_rayjob, to_yaml
    from qdist.k8s.raycluster import parse_range

    fields = {k[len("k8s_"):]: v for k, v in vars(args).items()
              if k.startswith("k8s_") and k != "k8s_command" and v is not None}
    settings = K8sSettings(**fields)
    if args.k8s_command == "render":
        objects = render_rayjob(args.job, settings)
    else:
        gpu = parse_range(args.gpu_workers, "--gpu-workers") if args.gpu_workers else None
        objects = [render_raycluster(
            settings, name=args.name, cpu=parse_range(args.cpu_workers, "--cpu-workers"),
            gpu=gpu, qpu=args.qpu_workers, qpu_provider=args.qpu_provider,
            idle_timeout=args.idle_timeout, worker_memory_gb=args.worker_memory_gb)]
    text = to_yaml(objects)
    if args.out:
        Path(args.out).write_text(text)
        kinds = ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objects)
        print(f"qdist: wrote {kinds} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
