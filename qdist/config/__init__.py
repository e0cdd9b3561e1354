"""Job configuration: frozen, validated specs (:mod:`.specs`) and the layered loader
(:mod:`.loader`)."""

from qdist.config.loader import config_from_dict, env_overrides, load_config
from qdist.config.specs import (
    TASKS,
    BackendSpec,
    BlockSpec,
    DataSpec,
    FeatureMapSpec,
    FusionSpec,
    MissingSpec,
    NystromSpec,
    OutputSpec,
    PreprocessSpec,
    QpuSpec,
    RunConfig,
    SyntheticSpec,
    TilingSpec,
    TrackingSpec,
    TrainingSpec,
)

__all__ = ["TASKS", "BackendSpec", "BlockSpec", "DataSpec", "FeatureMapSpec", "FusionSpec",
           "MissingSpec", "NystromSpec", "OutputSpec", "PreprocessSpec", "QpuSpec", "RunConfig",
           "SyntheticSpec", "TilingSpec", "TrackingSpec", "TrainingSpec", "config_from_dict",
           "env_overrides", "load_config"]
