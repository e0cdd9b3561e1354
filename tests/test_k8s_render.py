"""`qdist k8s render` and `qdist k8s cluster`: KubeRay objects for a job file, validated offline
against the Kubernetes schemas and KubeRay's CRDs (strict), and checked for what they wire up."""

from __future__ import annotations

import itertools
import json
import re
import shlex

import pytest
import yaml

from qdist.cli import _parser, main
from qdist.config import load_config
from qdist.errors import ConfigError
from qdist.k8s import K8sSettings, render_raycluster, render_rayjob, to_yaml

from .conftest import REPO
from .k8s_schemas import assert_valid, containers, load_docs, problems

DEMO = REPO / "jobs" / "demo.yaml"
QPU = REPO / "jobs" / "qpu_fake.yaml"


def _job(tmp_path, **sections) -> str:
    tree = yaml.safe_load(DEMO.read_text())
    tree.update(sections)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def _render(*args: str, capsys) -> list[dict]:
    assert main(["k8s", *args]) == 0
    return load_docs(capsys.readouterr().out)


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _groups(rayjob: dict) -> dict[str, dict]:
    return {g["groupName"]: g for g in rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]}


def test_demo_job_is_a_valid_configmap_and_rayjob(capsys):
    configmap, rayjob = _render("render", str(DEMO), capsys=capsys)
    assert_valid([configmap, rayjob])
    assert (configmap["kind"], rayjob["kind"]) == ("ConfigMap", "RayJob")
    assert configmap["data"]["job.yaml"] == DEMO.read_text()  # the file itself, comments kept
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 600
    # the entrypoint is `qdist run` on the mounted job file, joined to the job's own cluster
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "qdist"
    args = _parser().parse_args(argv[1:])
    assert (args.command, args.address, args.json) == ("run", "auto", True)
    assert args.out == "/mnt/qdist/runs/demo"
    assert args.tracking_uri == "http://qdist-mlflow:5000"
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    volumes = {v["name"]: v for v in head["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
    assert volumes["job"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert args.job == f"{mounts['job']}/job.yaml"
    for c in containers(rayjob):
        if c["name"] != "ray-job-submitter":
            assert {"name": "store", "mountPath": "/mnt/qdist"} in c["volumeMounts"]
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
    # the cluster's head runs the driver, not tiles; 4 tile workers = 2 pods of 2 CPUs
    assert spec["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    cpu = _groups(rayjob)["cpu-workers"]
    assert cpu["replicas"] == cpu["minReplicas"] == cpu["maxReplicas"] == 2
    assert cpu["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2"


def test_the_job_file_travels_unchanged(tmp_path, capsys):
    path = _job(tmp_path, tiles={"size": 32, "workers": 5, "worker_memory_gb": 3})
    configmap, rayjob = _render("render", path, "--cpus-per-pod", "2", capsys=capsys)
    (tmp_path / "back.yaml").write_text(configmap["data"]["job.yaml"])
    assert load_config(tmp_path / "back.yaml") == load_config(path)
    cpu = _groups(rayjob)["cpu-workers"]
    assert cpu["replicas"] == 3  # 5 tile workers, 2 per pod
    assert cpu["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "8Gi"


def test_s3_store_takes_credentials_from_a_secret_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-LOCAL-SHELL-KEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "shell-secret-never-rendered")
    out = tmp_path / "rayjob.yaml"
    assert main(["k8s", "render", str(DEMO), "--store", "s3://qdist-data/runs", "--s3-endpoint",
                 "http://minio.storage:9000", "--out", str(out), "--namespace", "science"]) == 0
    assert "wrote ConfigMap" in capsys.readouterr().err
    text = out.read_text()
    assert "shell-secret-never-rendered" not in text and "AKIA-LOCAL-SHELL-KEY" not in text
    configmap, rayjob = load_docs(text)
    assert_valid([configmap, rayjob])
    assert rayjob["metadata"]["namespace"] == configmap["metadata"]["namespace"] == "science"
    args = _parser().parse_args(shlex.split(rayjob["spec"]["entrypoint"])[1:])
    assert args.out == "s3://qdist-data/runs/demo"
    for c in containers(rayjob):
        if c["name"] == "ray-job-submitter":
            assert "env" not in c  # the submitter needs no credentials
            continue
        env = _env(c)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert "value" not in env[key]
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "qdist-s3", "key": key}
        assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage:9000"
        assert all(m["name"] != "store" for m in c["volumeMounts"])  # no claim on S3
        assert "QDIST_PSEUDONYM_KEY" not in env


def test_gpu_job_gets_gpu_workers_with_limits_and_tolerations(tmp_path, capsys):
    path = _job(tmp_path, backend={"kind": "batched", "device": "GPU"},
                tiles={"size": 64, "workers": 3})
    _, rayjob = _render("render", path, "--gpu-image", "registry.example/qdist-gpu:1", capsys=capsys)
    assert_valid([rayjob])
    groups = _groups(rayjob)
    assert list(groups) == ["gpu-workers"]
    gpu = groups["gpu-workers"]
    assert gpu["replicas"] == 3
    pod = gpu["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example/qdist-gpu:1"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_qpu_job_gets_a_queue_worker_with_the_qpu_resource(tmp_path, capsys):
    tree = yaml.safe_load(QPU.read_text())
    tree["qpu"].update(provider="ibm", backend="ibm_torino")
    path = tmp_path / "qpu.yaml"
    path.write_text(yaml.safe_dump(tree))
    _, rayjob = _render("render", str(path), "--qpu-secret", "ibm-quantum", "--pseudonym-secret",
                        "qdist-pseudonym", capsys=capsys)
    assert_valid([rayjob])
    qpu = _groups(rayjob)["qpu-workers"]
    # KubeRay passes the value verbatim to `ray start --resources=...`: a quoted JSON object
    assert json.loads(json.loads(qpu["rayStartParams"]["resources"])) == {"qpu": 1}
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    for c in (head, qpu["template"]["spec"]["containers"][0]):
        assert _env(c)["QISKIT_IBM_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "ibm-quantum"
    assert _env(head)["QDIST_PSEUDONYM_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "qdist-pseudonym", "key": "QDIST_PSEUDONYM_KEY"}
    assert "QDIST_PSEUDONYM_KEY" not in _env(qpu["template"]["spec"]["containers"][0])


def test_long_lived_cluster_autoscales_cpu_gpu_and_qpu_groups(capsys):
    (cluster,) = _render("cluster", "--gpu-workers", "0:2", "--qpu-workers", "1",
                         "--cpu-workers", "1:6", capsys=capsys)
    assert_valid([cluster])
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 60
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert (groups["cpu-workers"]["minReplicas"], groups["cpu-workers"]["maxReplicas"]) == (1, 6)
    assert (groups["gpu-workers"]["minReplicas"], groups["gpu-workers"]["maxReplicas"]) == (0, 2)
    assert "nvidia.com/gpu" in groups["gpu-workers"]["template"]["spec"]["containers"][0][
        "resources"]["limits"]
    assert json.loads(json.loads(groups["qpu-workers"]["rayStartParams"]["resources"])) == {"qpu": 1}


def test_the_validator_rejects_unknown_fields():
    """The strict checks can fail: an unknown field anywhere is reported with its path."""
    _, rayjob = render_rayjob(DEMO, K8sSettings())
    rayjob["spec"]["shutdownAfterJobFinish"] = True  # misspelt
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["resource"] = {}  # misspelt, inside the embedded pod template
    rayjob["metadata"]["label"] = {}
    found = "\n".join(problems(rayjob))
    assert "shutdownAfterJobFinish" in found and "'resource'" in found and "'label'" in found
    cluster = render_raycluster(K8sSettings())
    cluster["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert any("workerGroupSpecs.0.replicas" in p for p in problems(cluster))


@pytest.mark.parametrize(("sections", "field"), [
    ({"data": {"source": "table", "path": "cohort.csv", "label_column": "label"}}, "data.path"),
    ({"data": {"source": "table", "path": "data/c.parquet", "label_column": "y"}}, "data.path"),
])
def test_relative_data_paths_are_refused(tmp_path, sections, field):
    path = _job(tmp_path, **sections)
    (tmp_path / "cohort.csv").write_text("sample_id,label,a\n")
    with pytest.raises(ConfigError, match=f"'{field}'.*absolute path.*/mnt/qdist/data/"):
        render_rayjob(path, K8sSettings())


@pytest.mark.parametrize(("args", "match"), [
    (["--store", "runs/out"], "'--store' must be a folder under the shared mount /mnt/qdist"),
    (["--store", "gs://bucket/x"], "'--store'"),
    (["--release", "Bad_Name"], "'--release'"),
    (["--cpus-per-pod", "0"], "'--cpus-per-pod'"),
    (["--head-memory", "lots"], "'--head-memory'"),
    (["--pull-policy", "Sometimes"], "'--pull-policy'"),
    (["--mount-path", "data"], "'--mount-path'"),
])
def test_bad_options_name_the_option(args, match, capsys):
    assert main(["k8s", "render", str(DEMO), *args]) == 2
    assert match in capsys.readouterr().err


def test_credentials_in_a_store_url_are_refused_unseen(capsys):
    assert main(["k8s", "render", str(DEMO), "--store", "s3://AKIAX:hunter2@bucket/p"]) == 2
    err = capsys.readouterr().err
    assert "'--store'" in err and "hunter2" not in err and "AKIAX" not in err


def test_invalid_job_file_is_refused_before_rendering(tmp_path, capsys):
    path = _job(tmp_path, feature_map={"kind": "zz", "qubits": 0})
    assert main(["k8s", "render", path]) == 2
    captured = capsys.readouterr()
    assert "feature_map.qubits" in captured.err and captured.out == ""


def test_cluster_replica_ranges_are_checked(capsys):
    assert main(["k8s", "cluster", "--gpu-workers", "3:1"]) == 2
    assert "'--gpu-workers'" in capsys.readouterr().err


def test_names_are_dns_labels(tmp_path):
    path = _job(tmp_path, name="A Very Long Study Name With Spaces And UPPER case " * 3)
    configmap, rayjob = render_rayjob(path, K8sSettings(release="team-a"))
    assert_valid([configmap, rayjob])
    assert len(rayjob["metadata"]["name"]) <= 47  # KubeRay's limit: it appends to the name
    assert configmap["metadata"]["name"] == rayjob["metadata"]["name"] + "-job"
    assert rayjob["metadata"]["name"].startswith("team-a-qdi-a-very-long-study")
    assert "team-a-qdist-store" in to_yaml([rayjob])  # the chart's claim name for that release


def readme_commands(prefix: str) -> list[list[str]]:
    """The commands starting with ``prefix`` in the README's Kubernetes section, as argv lists
    (continuation lines joined, comments dropped, ``$REG`` filled in)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## On Kubernetes\n", 1)[1].split("\n## ", 1)[0]
    text = "\n".join(re.findall(r"```bash\n(.*?)```", section, flags=re.S)).replace("\\\n", " ")
    lines = [ln.split(" #", 1)[0].strip() for ln in text.splitlines()]
    return [shlex.split(ln.replace("$REG", "registry.example.org/team")) for ln in lines
            if ln.startswith(prefix)]


def test_the_readme_render_command_works(tmp_path, capsys, monkeypatch):
    commands = readme_commands("qdist k8s render")
    assert commands
    monkeypatch.chdir(REPO)
    for argv in commands:
        out = tmp_path / "rayjob.yaml"
        argv = [str(out) if prev == "--out" else a for prev, a in itertools.pairwise(["", *argv])]
        assert main(argv[1:]) == 0
        configmap, rayjob = load_docs(out.read_text())
        assert_valid([configmap, rayjob])
        head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert head["image"] == "registry.example.org/team/qdist-cpu:0.1.0"
        # the README's example name for the submitter's log has the shape render makes
        name = rayjob["metadata"]["name"]
        assert re.fullmatch(r"qdist-demo-[0-9a-f]{8}", name)
        assert re.search(r"job/qdist-demo-[0-9a-f]{8}\b", (REPO / "README.md").read_text())


def test_the_default_store_follows_the_mount_path():
    _, rayjob = render_rayjob(DEMO, K8sSettings(mount_path="/data/shared"))
    args = _parser().parse_args(shlex.split(rayjob["spec"]["entrypoint"])[1:])
    assert args.out == "/data/shared/runs/demo"
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {"name": "store", "mountPath": "/data/shared"} in head["volumeMounts"]
