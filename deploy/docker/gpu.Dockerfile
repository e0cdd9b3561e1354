# qdist GPU image: GPU workers of a KubeRay cluster. Like the CPU image, plus qiskit-aer-gpu in
# place of qiskit-aer and CuPy for qdist's batched engine, with the CUDA 12 runtime libraries as
# NVIDIA's pip wheels (about 2 GB); the driver comes from the node (NVIDIA container toolkit).
# Build from the repository root:
#   docker build -f deploy/docker/gpu.Dockerfile -t qdist-gpu:0.1.0 .
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
    RAY_USAGE_STATS_ENABLED=0 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# wget: KubeRay's readiness and liveness probes call it; Debian's release is pinned by the base tag
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/docker/constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /wheels
# qiskit-aer-gpu provides the same qiskit_aer module as qiskit-aer: install qdist, remove the CPU
# build, then add the GPU build (same version) and CuPy with its CUDA toolkit wheels.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir -c /tmp/constraints.txt "$(echo /wheels/qdist-*.whl)[s3]" \
 && pip uninstall -y qiskit-aer \
 && pip install --no-cache-dir -c /tmp/constraints.txt qiskit-aer-gpu==0.18.2 "cupy-cuda12x[ctk]==14.2.0" \
 && python -c "from importlib.metadata import version; print('qiskit-aer-gpu', version('qiskit-aer-gpu'))" \
 && rm -rf /wheels /tmp/constraints.txt \
 && useradd --uid 1000 --user-group --create-home --shell /bin/bash qdist
USER 1000
WORKDIR /home/qdist
CMD ["qdist", "--help"]
