"""One factory for every backend; runtime packages are imported only when chosen."""

from __future__ import annotations

from typing import Any

from qiskit.circuit import QuantumCircuit

from qdist.backends.base import StateBackend
from qdist.config import BackendSpec, QpuSpec
from qdist.errors import BackendError

__all__ = ["make_backend", "make_qpu_sampler"]


def make_backend(spec: BackendSpec, circuit: QuantumCircuit) -> StateBackend:
    """Build the backend ``spec`` names for ``circuit`` (wrapped into projected-kernel features
    when ``spec.kernel`` is ``projected``)."""
    inner = _state_backend(spec, circuit)
    if spec.kernel == "projected":
        from qdist.backends.projected import ProjectedBackend

        return ProjectedBackend(inner, spec.projected_gamma)  # type: ignore[return-value]
    return inner


def _state_backend(spec: BackendSpec, circuit: QuantumCircuit) -> StateBackend:
    if spec.kind == "batched":
        import numpy as np

        from qdist.backends.batched import BatchedBackend

        dtype = np.complex128 if spec.precision == "double" else np.complex64
        return BatchedBackend(circuit, device=spec.device, dtype=dtype)
    if spec.precision != "double":
        raise BackendError(
            f"backend.precision={spec.precision!r} is only available for backend.kind='batched'; "
            f"{spec.kind!r} computes in double precision. Remove backend.precision or use "
            "kind: batched."
        )
    if spec.kind == "qpu":
        raise BackendError(
            "backend.kind 'qpu' has no per-sample states: its tiles come from shots of "
            "compute-uncompute circuits (qdist.backends.qpu); use make_qpu_sampler."
        )
    if spec.kind == "statevector":
        if spec.device != "CPU":
            raise BackendError(
                f"backend.device={spec.device!r} is not available for backend.kind='statevector'. "
                "Use backend.kind: aer with device: GPU (needs qiskit-aer-gpu), or device: CPU."
            )
        from qdist.backends.statevector import QiskitStatevectorBackend

        return QiskitStatevectorBackend(circuit)
    if spec.kind == "aer":
        from qdist.backends.aer import AerStatevectorBackend

        return AerStatevectorBackend(circuit, device=spec.device)
    if spec.kind == "mps":
        if spec.device != "CPU":
            raise BackendError(f"backend.device={spec.device!r} is not available for "
                               "backend.kind='mps'; it runs on CPU. Remove backend.device.")
        from qdist.backends.mps import MpsBackend

        return MpsBackend(circuit, max_bond=spec.max_bond, cutoff=spec.cutoff)  # type: ignore[return-value]
    raise BackendError(f"Unknown backend.kind {spec.kind!r}; use 'batched', 'statevector', "
                       "'aer' or 'mps'.")


def make_qpu_sampler(circuit: QuantumCircuit, spec: QpuSpec, seed: int) -> Any:
    """The shot-based tile sampler ``spec`` describes (the circuit is transpiled once here)."""
    from qdist.backends.qpu import QpuTileSampler

    return QpuTileSampler(circuit, provider=spec.provider, backend_name=spec.backend,
                          shots=spec.shots, optimization_level=spec.optimization_level,
                          initial_layout=list(spec.initial_layout) if spec.initial_layout else None,
                          seed=seed, readout_mitigation=spec.readout_mitigation,
                          spool_dir=spec.spool_dir)
