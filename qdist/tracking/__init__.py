"""MLflow tracking (the only package that imports mlflow) and model packaging."""

from qdist.tracking.mlflow_tracker import MlflowTracker, default_tracking_uri

__all__ = ["MlflowTracker", "default_tracking_uri"]
