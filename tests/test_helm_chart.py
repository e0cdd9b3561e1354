"""The Helm chart `helm/qdist`, rendered by Helm itself (the Helm 4 library bundled by
helm-python-sdk) with every values file in `helm/qdist/ci/`, linted strictly, and every object
validated against the Kubernetes schemas and KubeRay's CRDs (strict: unknown fields are errors)."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest
import yaml

from qdist.cli import _parser
from qdist.k8s import K8sSettings, render_rayjob
from qdist.k8s.settings import fullname

from .conftest import REPO
from .k8s_schemas import KUBE_VERSION, assert_valid, containers, load_docs

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm as a library) is needed")

CHART = REPO / "helm" / "qdist"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
NAMESPACE = "science"
_CREDENTIAL = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|PSEUDONYM|_URI$|INSTANCE")


def render(values: dict, release: str = "qdist") -> list[dict]:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        manifests = chart.render(values, name=release, namespace=NAMESPACE, is_install=True)
    return [doc for name, text in sorted(manifests.items()) if name.endswith(".yaml")
            for doc in load_docs(text)]


def _by_kind(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _values(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("path", [CHART / "values.yaml", *CI_VALUES], ids=lambda p: p.name)
def test_chart_lints_strictly_and_renders_valid_objects(path):
    values = {} if path.name == "values.yaml" else _values(path)
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}",
                       namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems
    docs = render(values)
    assert_valid(docs)
    kinds = _by_kind(docs)
    assert "Secret" not in kinds  # the chart never writes a secret
    for doc in docs:
        for c in containers(doc):
            req = c.get("resources", {}).get("requests", {})
            assert req.get("cpu") and req.get("memory"), f"{doc['kind']} {c['name']}: requests"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            for name, env in _env(c).items():
                if _CREDENTIAL.search(name):  # credentials only by reference
                    assert "value" not in env or "$(" in env["value"], (name, env)
                    if "value" not in env:
                        assert "secretKeyRef" in env["valueFrom"], (name, env)


def test_defaults_cpu_cluster_mlflow_postgresql_and_shared_claim():
    kinds = _by_kind(render(_values(CHART / "ci" / "cpu-values.yaml")))
    (cluster,) = kinds["RayCluster"]
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True and spec["rayVersion"] == "2.60.0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert list(groups) == ["cpu-workers"]
    assert (groups["cpu-workers"]["minReplicas"], groups["cpu-workers"]["maxReplicas"]) == (2, 16)
    claims = {c["metadata"]["name"]: c for c in kinds["PersistentVolumeClaim"]}
    assert claims["qdist-store"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claims["qdist-store"]["spec"]["storageClassName"] == "nfs-client"
    for c in containers(cluster):
        assert {"name": "store", "mountPath": "/mnt/qdist"} in c["volumeMounts"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert _env(head)["QDIST_PSEUDONYM_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "qdist-pseudonym"
    assert "QDIST_PSEUDONYM_KEY" not in _env(groups["cpu-workers"]["template"]["spec"]["containers"][0])
    (mlflow,) = [d for d in kinds["Deployment"] if d["metadata"]["name"] == "qdist-mlflow"]
    server = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert "--artifacts-destination=/mlartifacts" in server["args"]
    uri = _env(server)["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert uri == "postgresql://mlflow:$(POSTGRES_PASSWORD)@qdist-postgresql:5432/mlflow"
    names = list(_env(server))
    assert names.index("POSTGRES_PASSWORD") < names.index("MLFLOW_BACKEND_STORE_URI")  # expansion order
    (pg,) = kinds["StatefulSet"]
    assert _env(pg["spec"]["template"]["spec"]["containers"][0])["POSTGRES_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "qdist-postgresql", "key": "password"}}
    hosts = _env(server)["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    assert "qdist-mlflow:5000" in hosts and f"qdist-mlflow.{NAMESPACE}.svc:5000" in hosts


def test_gpu_workers_have_gpu_limits_tolerations_and_the_gpu_image():
    kinds = _by_kind(render(_values(CHART / "ci" / "gpu-values.yaml")))
    groups = {g["groupName"]: g for g in kinds["RayCluster"][0]["spec"]["workerGroupSpecs"]}
    gpu = groups["gpu-workers"]
    assert (gpu["minReplicas"], gpu["maxReplicas"]) == (1, 4)
    pod = gpu["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "registry.example.org/qdist/qdist-gpu:0.1.0"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "tolerations" not in groups["cpu-workers"]["template"]["spec"]


def test_external_postgresql_takes_the_uri_from_a_secret():
    kinds = _by_kind(render(_values(CHART / "ci" / "external-postgresql-values.yaml")))
    assert "StatefulSet" not in kinds
    assert all(s["metadata"]["name"] != "qdist-postgresql" for s in kinds["Service"])
    (mlflow,) = kinds["Deployment"]
    spec = mlflow["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    env = _env(spec["containers"][0])
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-database", "key": "uri"}
    assert "POSTGRES_PASSWORD" not in env
    assert "mlflow.example.org" in env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    claims = [c["metadata"]["name"] for c in kinds["PersistentVolumeClaim"]]
    assert "qdist-store" not in claims  # an existing claim is used, not created
    pod = kinds["RayCluster"][0]["spec"]["headGroupSpec"]["template"]["spec"]
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "shared-cephfs"}} in pod["volumes"]


def test_s3_storage_for_stores_and_mlflow_artifacts():
    docs = render(_values(CHART / "ci" / "s3-values.yaml"))
    kinds = _by_kind(docs)
    assert "qdist-store" not in [c["metadata"]["name"] for c in kinds.get("PersistentVolumeClaim", [])]
    assert "qdist-mlflow-artifacts" not in [c["metadata"]["name"]
                                            for c in kinds.get("PersistentVolumeClaim", [])]
    (mlflow,) = [d for d in kinds["Deployment"] if d["metadata"]["name"] == "qdist-mlflow"]
    server = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert "--artifacts-destination=s3://qdist-data/team-a/mlflow-artifacts" in server["args"]
    env = _env(server)
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000"
    assert mlflow["spec"]["replicas"] == 2 and "strategy" not in mlflow["spec"]
    cluster = kinds["RayCluster"][0]
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    for c in containers(cluster):
        env = _env(c)
        assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000"
        assert env["QDIST_S3_ADDRESSING_STYLE"]["value"] == "path"
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "qdist-s3", "key": "AWS_SECRET_ACCESS_KEY"}
        assert all(m["name"] != "store" for m in c["volumeMounts"])
    qpu = groups["qpu-workers"]
    assert qpu["rayStartParams"]["resources"] == '"{\\"qpu\\": 1}"'
    assert _env(qpu["template"]["spec"]["containers"][0])["QISKIT_IBM_TOKEN"]["valueFrom"][
        "secretKeyRef"]["name"] == "ibm-quantum"
    assert "QISKIT_IBM_TOKEN" not in _env(groups["cpu-workers"]["template"]["spec"]["containers"][0])


def test_rayjob_matches_what_qdist_k8s_render_makes(tmp_path):
    values = _values(CHART / "ci" / "rayjob-values.yaml")
    kinds = _by_kind(render(values))
    assert "RayCluster" not in kinds
    (rayjob,) = kinds["RayJob"]
    (configmap,) = kinds["ConfigMap"]
    assert configmap["data"]["job.yaml"] == values["rayJob"]["jobFile"]
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["activeDeadlineSeconds"] == 7200
    assert len(rayjob["metadata"]["name"]) <= 47
    job = tmp_path / "demo.yaml"
    job.write_text(values["rayJob"]["jobFile"])
    _, ours = render_rayjob(job, K8sSettings(release="qdist"))
    chart_args = _parser().parse_args(shlex.split(spec["entrypoint"])[1:])
    our_args = _parser().parse_args(shlex.split(ours["spec"]["entrypoint"])[1:])
    assert vars(chart_args) == vars(our_args)  # same command, output folder and MLflow
    assert spec["rayClusterSpec"]["headGroupSpec"]["rayStartParams"] == \
        ours["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    our_head = ours["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["containers"][0]["volumeMounts"] == our_head["containers"][0]["volumeMounts"]
    assert [v["name"] for v in head["volumes"]] == [v["name"] for v in our_head["volumes"]]
    assert head["securityContext"] == our_head["securityContext"]


@pytest.mark.parametrize("release", ["qdist", "team-a", "prod-qdist-eu"])
def test_resource_names_follow_the_same_rule_as_qdist_k8s(release):
    kinds = _by_kind(render({}, release=release))
    assert kinds["RayCluster"][0]["metadata"]["name"] == fullname(release)
    services = {s["metadata"]["name"] for s in kinds["Service"]}
    assert K8sSettings(release=release).mlflow_uri == f"http://{fullname(release)}-mlflow:5000"
    assert f"{fullname(release)}-mlflow" in services
    assert K8sSettings(release=release).claim in {c["metadata"]["name"]
                                                  for c in kinds["PersistentVolumeClaim"]}


@pytest.mark.parametrize(("values", "message"), [
    ({"storage": {"type": "s3"}}, "storage.s3.bucket is required"),
    ({"rayJob": {"enabled": True}}, "rayJob.jobFile is required"),
    ({"postgresql": {"enabled": False}}, "MLflow needs a database"),
    ({"storage": {"pvc": {"create": False}}}, "storage.pvc.existingClaim is required"),
])
def test_incomplete_values_fail_with_the_fix(values, message):
    with pytest.raises(helm.HelmError, match=message):
        render(values)


@pytest.mark.parametrize("values", [
    {"ray": {"cpuWorker": {"enabled": True}}},  # misspelt section
    {"storage": {"type": "nfs"}},
    {"ray": {"gpuWorkers": {"minReplicas": -1}}},
    {"mlflow": {"resources": {"requests": {"cpu": "lots"}}}},
])
def test_the_values_schema_rejects_typos_and_bad_values(values):
    with pytest.raises(helm.HelmError):
        render(values)


def test_every_value_is_commented():
    """Each key of values.yaml has a comment above it (or inline), except the fields of
    Kubernetes blocks documented as a whole (resources, security contexts, tolerations)."""
    blocks = ("resources", "podSecurityContext", "securityContext", "tolerations", "requests",
              "limits")
    lines = (CHART / "values.yaml").read_text().splitlines()
    parents: list[tuple[int, str]] = []
    missing = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while parents and parents[-1][0] >= indent:
            parents.pop()
        inside_block = any(p in blocks for _, p in parents)
        above = lines[i - 1].strip() if i else ""
        if not inside_block and not above.startswith("#") and "#" not in line:
            missing.append(f"line {i + 1}: {key}")
        parents.append((indent, key))
    assert not missing, missing


def test_the_readme_helm_install_renders_valid_objects():
    from .test_k8s_render import readme_commands

    (argv,) = readme_commands("helm install qdist ")
    assert argv[2:4] == ["qdist", "helm/qdist"] or argv[2:4] == ["qdist", str(CHART)]
    sets = [arg for prev, arg in itertools.pairwise(argv) if prev == "--set"]
    values = helm.parse_set_string(",".join(sets))  # Helm's own --set parser
    assert values["image"]["repository"] == "registry.example.org/team/qdist-cpu"
    docs = render(values)
    assert_valid(docs)
    images = {c["image"] for d in docs for c in containers(d)}
    assert "registry.example.org/team/qdist-cpu:0.1.0" in images
    assert "registry.example.org/team/qdist-mlflow:0.1.0" in images
