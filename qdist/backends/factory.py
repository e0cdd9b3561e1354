"""One factory for every backend; runtime packages are imported only when chosen."""

from __future__ import annotations

from qiskit.circuit import QuantumCircuit

from qdist.backends.base import StateBackend
from qdist.config import BackendSpec
from qdist.errors import BackendError

__all__ = ["make_backend"]


def make_backend(spec: BackendSpec, circuit: QuantumCircuit) -> StateBackend:
    """Build the backend ``spec`` names for ``circuit``."""
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
    raise BackendError(f"Unknown backend.kind {spec.kind!r}; use 'batched', 'statevector' or "
                       "'aer'.")
