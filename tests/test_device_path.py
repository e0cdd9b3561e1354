"""The engine's GPU code path, run on CPU behind a CuPy-strict array boundary (tests/devicelike.py).

CI has no GPU. These tests run exactly the code ``device: GPU`` runs (the engine with a non-NumPy
array module, tiles multiplied on the device and copied back with ``.get()``), against the
Statevector oracle and the CPU engine, on the library maps and on random circuits. A host array
mixed into device arithmetic, or a device array handed to a host-only routine, fails here as it
would under CuPy. What only a GPU can show (CuPy's kernels, device memory, speed) is in
tests/test_gpu.py, run with ``pytest -m gpu`` on a GPU node.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit.circuit.library import pauli_feature_map, zz_feature_map

from qdist.kernel.engine import BatchedEngine
from qdist.kernel.tiles import fidelity_tile

from .devicelike import DeviceArray, xp
from .test_engine import ATOL, ATOL_C64, _library_cases, inputs, oracle, random_circuits


def test_the_stand_in_is_as_strict_as_cupy() -> None:
    dev = xp.asarray(np.arange(4.0))
    with pytest.raises(TypeError, match="get"):
        np.asarray(dev)
    with pytest.raises(TypeError, match="mixed with device"):
        _ = dev * np.ones(4)
    with pytest.raises(TypeError, match="mixed with device"):
        xp.multiply(dev, np.ones(4))
    assert not isinstance(dev, np.ndarray)
    assert np.array_equal((dev * 2.0 + xp.ones(4)).get(), np.arange(4.0) * 2 + 1)


@pytest.mark.parametrize("circuit", [pytest.param(c, id=label) for label, c in _library_cases()])
def test_library_maps_on_the_device_path_match_statevector(circuit) -> None:
    x = inputs(circuit, n=5)
    states = BatchedEngine(circuit, xp=xp).states(x)
    assert isinstance(states, DeviceArray)  # the states never left the device
    np.testing.assert_allclose(states.get(), oracle(circuit, x), rtol=0, atol=ATOL)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuit=random_circuits(), seed=st.integers(0, 2**16), n=st.integers(1, 4))
def test_random_circuits_on_the_device_path_match_statevector(circuit, seed, n) -> None:
    x = inputs(circuit, n=n, seed=seed)
    states = BatchedEngine(circuit, xp=xp, chunk_bytes=1).states(x)
    np.testing.assert_allclose(states.get(), oracle(circuit, x), rtol=0, atol=ATOL)


@pytest.mark.parametrize(("dtype", "atol"), [(np.complex128, 1e-12), (np.complex64, ATOL_C64)])
def test_device_tiles_equal_host_tiles(dtype, atol) -> None:
    circuit = pauli_feature_map(5, reps=2, paulis=["Z", "XY", "ZZ"])
    a, b = inputs(circuit, n=7, seed=1), inputs(circuit, n=4, seed=2)
    host = BatchedEngine(circuit, dtype=dtype)
    dev = BatchedEngine(circuit, dtype=dtype, xp=xp)
    sa, sb = dev.states(a), dev.states(b)
    assert sa.dtype == dtype
    for got, want in ((fidelity_tile(sa, sb), fidelity_tile(host.states(a), host.states(b))),
                      (fidelity_tile(sa), fidelity_tile(host.states(a)))):
        assert isinstance(got, np.ndarray) and got.dtype == np.float64  # the tile came back
        np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    diagonal = fidelity_tile(sa)
    assert np.array_equal(diagonal, diagonal.T)


def test_wide_block_with_chunks_on_the_device_path() -> None:
    circuit = zz_feature_map(10, reps=2, entanglement="circular")
    x = inputs(circuit, n=40, seed=3)
    got = BatchedEngine(circuit, xp=xp, chunk_bytes=1).states(x).get()  # 16 samples per chunk
    np.testing.assert_allclose(got, BatchedEngine(circuit).states(x), rtol=0, atol=1e-13)
