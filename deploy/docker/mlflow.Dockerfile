# MLflow tracking server for qdist: MLflow (the version qdist's clients use), the PostgreSQL
# driver for the backend store and boto3 for S3 artifact storage. Build from the repository root:
#   docker build -f deploy/docker/mlflow.Dockerfile -t qdist-mlflow:0.1.0 .
# The base image is pinned by version; add @sha256:<digest> after resolving it in your registry.
FROM python:3.11.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir mlflow==3.17.2 psycopg2-binary==2.9.13 boto3==1.43.117 \
 && useradd --uid 1000 --user-group --create-home --shell /bin/bash mlflow
USER 1000
WORKDIR /home/mlflow
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
