# qdist CPU image: the Ray head, CPU workers and QPU-queue workers of a KubeRay cluster, and the
# submitter of a RayJob. Built from this repository's package, with the pinned dependencies the
# test suite passed with (constraints.txt). Build from the repository root:
#   docker build -f deploy/docker/cpu.Dockerfile -t qdist-cpu:0.1.0 .
# The base image is pinned by version; add @sha256:<digest> after resolving it in your registry.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY qdist ./qdist
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0
# wget: KubeRay's readiness and liveness probes call it; Debian's release is pinned by the base tag
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/docker/constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /wheels
# hadolint ignore=DL3013
RUN pip install --no-cache-dir -c /tmp/constraints.txt "$(echo /wheels/qdist-*.whl)[s3]" \
 && rm -rf /wheels /tmp/constraints.txt \
 && useradd --uid 1000 --user-group --create-home --shell /bin/bash qdist
USER 1000
WORKDIR /home/qdist
CMD ["qdist", "--help"]
