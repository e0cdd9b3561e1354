"""Nystrom landmarks for a job: how many (whole tiles), which (uniform, or by approximate ridge
leverage scores from a pilot computed in the driver), and the training order that puts them
first so that only their tiles need computing. Called by :func:`qdist.pipeline.prepare`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qdist.config import RunConfig
from qdist.errors import ConfigError

__all__ = ["choose_landmarks"]


def choose_landmarks(config: RunConfig, x_train: np.ndarray, circuits: list[Any],
               tile: int) -> tuple[int, np.ndarray]:
    """The landmark count (rounded up to whole tiles) and the training order that puts the
    landmarks first (:mod:`qdist.assembly.nystrom`)."""
    from qdist.assembly.nystrom import landmark_order, leverage_landmarks, uniform_landmarks

    spec, n = config.training.nystrom, x_train.shape[0]
    if config.training.task == "clustering":
        raise ConfigError("The job-file field 'training.method' must be 'exact' for "
                          "training.task: clustering (spectral clustering needs the whole Gram); "
                          "got nystrom. Use training.method: exact.")
    qpu = config.qpu
    if config.backend.kind == "qpu" and (qpu.psd_repair != "none" or qpu.depolarizing_mitigation):
        raise ConfigError("The job-file fields 'qpu.psd_repair' and 'qpu.depolarizing_mitigation' "
                          "need the whole Gram, which the Nystrom path does not compute; got "
                          f"{qpu.psd_repair!r} and {qpu.depolarizing_mitigation}. Set them to "
                          "none and false, or use training.method: exact.")
    m = min(n, -(-spec.landmarks // tile) * tile)
    if spec.sampling == "uniform" or m == n:
        return m, landmark_order(n, uniform_landmarks(n, m, config.seed))
    if config.backend.kind == "qpu":
        raise ConfigError("The job-file field 'training.nystrom.sampling' must be 'uniform' on a "
                          "QPU backend (leverage scores need a pilot kernel computed in the "
                          "driver); got 'leverage'.")
    from qdist.api import compute_gram

    pilot = uniform_landmarks(n, max(2, m // 2), config.seed + 1)
    k_pilot = sum(compute_gram(x_train[:, cols], x_train[pilot][:, cols], feature_map=circuit,
                               backend=config.backend) for _, circuit, cols in circuits)
    k_pilot = np.asarray(k_pilot) / len(circuits)
    chosen = leverage_landmarks(k_pilot, pilot, m, ridge=1e-3 * n, seed=config.seed)
    return m, landmark_order(n, chosen)
