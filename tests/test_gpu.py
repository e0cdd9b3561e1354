"""The batched engine and tiles on an NVIDIA GPU (CuPy), against the CPU engine and the oracle.

Skipped, with the reason, where no GPU or CuPy is present (CI has none); run on a GPU machine
with ``pytest -m gpu``.
"""

from __future__ import annotations

import numpy as np
import pytest
from qiskit_machine_learning.kernels import FidelityStatevectorKernel

from qdist.api import compute_gram
from qdist.config import BackendSpec, FeatureMapSpec
from qdist.kernel.feature_maps import build_feature_map

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (no GPU stack here)")
try:
    _HAS_GPU = cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # the CUDA runtime raises when no driver is present
    _HAS_GPU = False

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not _HAS_GPU, reason="no NVIDIA GPU visible to CuPy")]


@pytest.mark.parametrize("kind", ["zz", "pauli"])
def test_gpu_engine_matches_oracle(kind):
    spec = FeatureMapSpec(kind=kind, qubits=6, reps=2, paulis=("Z", "XY", "ZZ"))
    x = np.random.default_rng(0).uniform(0, np.pi, size=(40, 6))
    got = compute_gram(x, feature_map=spec, backend=BackendSpec(kind="batched", device="GPU"),
                       tile_size=16)
    want = FidelityStatevectorKernel(feature_map=build_feature_map(spec)).evaluate(x)
    np.testing.assert_allclose(got, want, atol=1e-10, rtol=0)


def test_gpu_single_precision_within_bound():
    spec = FeatureMapSpec(kind="zz", qubits=10, reps=2)
    x = np.random.default_rng(1).uniform(0, np.pi, size=(64, 10))
    single = compute_gram(x, feature_map=spec,
                          backend=BackendSpec(kind="batched", device="GPU", precision="single"))
    double = compute_gram(x, feature_map=spec, backend=BackendSpec(kind="batched", device="GPU"))
    assert np.abs(single - double).max() < 1e-5
