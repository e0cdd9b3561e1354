"""Render the plain manifests in deploy/k8s/<variant>/ from the Helm chart, for clusters
managed without Helm (``kubectl apply -k deploy/k8s/pvc``).

    python deploy/k8s/render.py        # needs helm-python-sdk (pip install -e ".[test]")

Each variant's ``values.yaml`` is rendered as release ``qdist`` in namespace ``qdist``;
tests/test_deploy_files.py checks that the committed ``manifests.yaml`` are current.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE.parents[1] / "helm" / "qdist"
VARIANTS = ("pvc", "s3")
RELEASE = NAMESPACE = "qdist"


def render(variant: str) -> str:
    """The manifests of one variant as one YAML stream (objects in template order)."""
    from helm_python import Chart

    values = yaml.safe_load((HERE / variant / "values.yaml").read_text()) or {}
    with Chart.load(CHART) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = [text.strip() for name, text in sorted(rendered.items())
            if name.endswith(".yaml") and text.strip()]
    header = (f"# Rendered from helm/qdist with deploy/k8s/{variant}/values.yaml as release "
              f"{RELEASE} in namespace {NAMESPACE}\n# by deploy/k8s/render.py: do not edit by hand.\n")
    return header + "\n---\n".join(docs) + "\n"


def main() -> int:
    for variant in VARIANTS:
        (HERE / variant / "manifests.yaml").write_text(render(variant))
        print(f"deploy/k8s/{variant}/manifests.yaml", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
