"""Offline validation of Kubernetes objects, shared by the k8s, Helm and deploy tests.

Built-in kinds go through ``kubernetes-validate`` (strict schemas of Kubernetes ``KUBE_VERSION``:
unknown fields are errors). KubeRay kinds go through the CRD schemas in
``../shared/schemas/kuberay/`` made strict (``additionalProperties: false`` wherever an object
declares ``properties``); their ``metadata`` and every embedded pod template are checked against
the Kubernetes schemas as well (the CRDs leave those open).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
KUBERAY = REPO.parent / "shared" / "schemas" / "kuberay"
KUBE_VERSION = "1.35.0"
_CRDS = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}


def _strict(node: Any) -> None:
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    """The strict v1 schema of a KubeRay kind (skips the test when the CRDs are absent)."""
    path = KUBERAY / _CRDS[kind]
    if not path.is_file():
        pytest.skip(f"KubeRay CRD schemas not found at {KUBERAY} (../shared/schemas/kuberay)")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    _strict(schema)
    return schema


def _kubernetes(obj: dict[str, Any], where: str) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{where}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: {exc.message}"]
    return []


def _pod_templates(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    spec = obj.get("spec", {})
    found: list[tuple[str, dict[str, Any]]] = []
    if obj["kind"] == "RayJob":
        if "submitterPodTemplate" in spec:
            found.append(("submitterPodTemplate", spec["submitterPodTemplate"]))
        spec = spec.get("rayClusterSpec", {})
    if "headGroupSpec" in spec:
        found.append(("headGroupSpec.template", spec["headGroupSpec"]["template"]))
    for group in spec.get("workerGroupSpecs", []):
        found.append((f"workerGroupSpecs[{group.get('groupName')}].template", group["template"]))
    return found


def problems(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of one object, as readable lines (empty: valid)."""
    import jsonschema

    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if obj.get("apiVersion") != "ray.io/v1":
        return _kubernetes(obj, where)
    validator = jsonschema.Draft7Validator(crd_schema(obj["kind"]))
    found = [f"{where}: {'.'.join(str(p) for p in e.path)}: {e.message}"
             for e in validator.iter_errors(obj)]
    found += _kubernetes({"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]},
                         f"{where} metadata")
    for name, template in _pod_templates(obj):
        found += _kubernetes({"apiVersion": "v1", "kind": "PodTemplate",
                              "metadata": {"name": "check"}, "template": template},
                             f"{where} {name}")
    return found


def assert_valid(objects: list[dict[str, Any]]) -> None:
    """Fail with every violation of every object listed."""
    assert objects, "nothing to validate"
    found = [p for obj in objects for p in problems(obj)]
    assert not found, "\n".join(found)


def load_docs(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a YAML stream."""
    return [d for d in yaml.safe_load_all(text) if d]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of an object: pods of workloads, KubeRay groups and submitters."""
    spec = obj.get("spec", {})
    if obj.get("apiVersion") == "ray.io/v1":
        templates = [t for _, t in _pod_templates(obj)]
    else:
        templates = [spec.get("template", {}),
                     spec.get("jobTemplate", {}).get("spec", {}).get("template", {})]
    return [c for t in templates for key in ("initContainers", "containers")
            for c in t.get("spec", {}).get(key, [])]
