"""The cost and memory model of statevector tiles, and the tile-size choice.

Per worker, a statevector tile of edge ``t`` at ``q`` qubits holds

- its state blocks: ``c`` cached blocks of ``t`` states of ``2^q`` amplitudes
  (``itemsize`` bytes each: 16 for complex128, 8 for complex64);
- the overlap matrix ``t x t`` (``itemsize`` bytes) and the tile itself (``t x t`` float64).

so ``bytes = c * t * 2^q * itemsize + t^2 * (itemsize + 8)``. Work per off-diagonal tile is one
complex GEMM of ``8 t^2 2^q`` flops (half on diagonal tiles). The planner picks the largest tile
that fits the worker's memory and still leaves several tiles per worker, and refuses a
configuration in which not even the smallest useful tile fits, saying what would.
"""

from __future__ import annotations

from dataclasses import dataclass

from qdist.errors import PlanError

__all__ = ["MIN_CACHED_BLOCKS", "WorkerMemory", "worker_bytes", "cached_blocks",
           "choose_tile_size", "check_tile_fits", "resolve_tile_size", "EXACT_COPIES", "exact_bytes",
           "choose_method"]

MIN_CACHED_BLOCKS = 2
"""A worker holds at least its row block and one column block."""
_GIB = 1024**3
_TILES_PER_WORKER = 4


@dataclass(frozen=True, slots=True)
class WorkerMemory:
    """What one tile worker may use."""

    bytes: int
    """Memory budget per worker (states, overlaps and tiles)."""
    itemsize: int = 16
    """Bytes per amplitude: 16 (complex128) or 8 (complex64)."""


def worker_bytes(tile: int, qubits: int, itemsize: int, blocks: int = MIN_CACHED_BLOCKS) -> int:
    """Peak bytes of one worker computing ``tile x tile`` tiles with ``blocks`` state blocks."""
    return blocks * tile * (2**qubits) * itemsize + tile * tile * (itemsize + 8)


def cached_blocks(tile: int, qubits: int, memory: WorkerMemory, n_blocks: int) -> int:
    """How many state blocks a worker can keep resident (at least 2, at most all of them)."""
    fixed = tile * tile * (memory.itemsize + 8)
    per_block = tile * (2**qubits) * memory.itemsize
    fit = (memory.bytes - fixed) // per_block if per_block else n_blocks
    return int(max(MIN_CACHED_BLOCKS, min(n_blocks, fit)))


def _fmt(n: float) -> str:
    return f"{n / _GIB:.3g} GiB"


def check_tile_fits(tile: int, qubits: int, memory: WorkerMemory) -> None:
    """Raise :class:`PlanError` if a worker cannot hold two state blocks of ``tile`` samples."""
    need = worker_bytes(tile, qubits, memory.itemsize)
    if need <= memory.bytes:
        return
    per_state = (2**qubits) * memory.itemsize
    best = (memory.bytes // (2 * per_state)) if per_state else 0
    hint = (f"Use tiles.size <= {best}" if best >= 1 else
            f"Even one pair of states ({_fmt(2 * per_state)}) exceeds it: lower feature_map.qubits "
            "or raise tiles.worker_memory_gb")
    raise PlanError(
        f"A {tile} x {tile} tile at {qubits} qubits needs {_fmt(need)} per worker, more than "
        f"tiles.worker_memory_gb allows ({_fmt(memory.bytes)}). {hint}, or raise "
        "tiles.worker_memory_gb if the nodes have the memory."
    )


def choose_tile_size(n: int, qubits: int, workers: int, memory: WorkerMemory) -> int:
    """The largest tile edge (a power of two, or ``n`` itself) that fits the memory and leaves
    about four tiles per worker for load balance."""
    check_tile_fits(1, qubits, memory)
    candidates = sorted({min(n, 2**k) for k in range(0, 13)}, reverse=True)
    for t in candidates:
        nb = -(-n // t)
        enough = nb * (nb + 1) // 2 >= _TILES_PER_WORKER * workers or t <= 64
        if enough and worker_bytes(t, qubits, memory.itemsize) <= memory.bytes:
            return t
    return 1


_ASSUMED_WORKERS = 8
"""Worker count assumed by the automatic tile size when the job file sets none. The tile size
enters the store's fingerprint, so it must not depend on the cluster a run happens to land on."""


def resolve_tile_size(size: int | None, workers: int | None, memory_gb: float, n: int,
                      qubits: int, itemsize: int) -> int:
    """The tile edge a job uses: ``size`` checked against the memory model, or the automatic
    choice of :func:`choose_tile_size`."""
    memory = WorkerMemory(bytes=int(memory_gb * _GIB), itemsize=itemsize)
    if size is None:
        return choose_tile_size(n, qubits, workers or _ASSUMED_WORKERS, memory)
    check_tile_fits(min(size, n), qubits, memory)
    return size


EXACT_COPIES = 3
"""Dense ``n_train x n_train`` float64 matrices the exact path holds at once (the assembled Gram,
scikit-learn's CV slices and the SVC's own copy)."""


def exact_bytes(n_train: int, n_test: int) -> int:
    """Driver memory of the exact path: the training Gram and its copies, and ``K(test, train)``."""
    return 8 * n_train * (EXACT_COPIES * n_train + n_test)


def choose_method(method: str, n_train: int, n_test: int, max_gb: float) -> str:
    """``exact`` or ``nystrom``: ``auto`` picks exact while :func:`exact_bytes` fits ``max_gb``."""
    fits = exact_bytes(n_train, n_test) <= max_gb * _GIB
    if method == "auto":
        return "exact" if fits else "nystrom"
    if method == "exact" and not fits:
        raise PlanError(
            f"The exact kernel model of {n_train} training samples needs about "
            f"{_fmt(exact_bytes(n_train, n_test))} in the driver, over training.exact_max_gb="
            f"{max_gb}. Use training.method: nystrom (or auto), or raise exact_max_gb on a "
            "machine that has the memory.")
    return method
