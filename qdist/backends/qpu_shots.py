"""The shots of one PUB, kept as the sampler returns them, and the kernel estimates they give.

A sampler returns, per pair, ``s`` measured bitstrings packed into bytes (Qiskit's ``BitArray``:
big-endian bytes, the last byte holding clbits 0-7). :class:`PubShots` keeps exactly that array,
``(n_pairs, s, n_bytes)`` of uint8, and estimates every pair's all-zeros probability from it in a
few vectorised passes: no per-pair counts dictionaries, no bitstrings. Any register width works
(a 133-qubit device is 17 bytes per shot).

Tensored readout mitigation weighs each shot by ``prod_k A_k^{-1}[0, b_k]``; the product over a
byte's eight clbits is looked up in a 256-entry table per byte, so a shot costs ``n_bytes``
lookups whatever the width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qdist.errors import TileError

__all__ = ["PubShots"]


@dataclass(frozen=True, eq=False)
class PubShots:
    """Every shot of one PUB: ``bits[p, t]`` is shot ``t`` of pair ``p``, packed as in ``BitArray``."""

    bits: np.ndarray
    """``(n_pairs, shots, n_bytes)`` uint8, big-endian bytes (the last holds clbits 0-7)."""
    num_bits: int
    """Measured clbits per shot."""

    def __post_init__(self) -> None:
        if self.bits.ndim != 3 or self.bits.dtype != np.uint8:
            raise TileError(f"PubShots.bits must be (n_pairs, shots, n_bytes) uint8; got "
                            f"{self.bits.shape} {self.bits.dtype}.")
        if self.bits.shape[2] != (self.num_bits + 7) // 8:
            raise TileError(f"{self.num_bits} clbits pack into {(self.num_bits + 7) // 8} bytes, "
                            f"but the shots have {self.bits.shape[2]}.")

    @classmethod
    def from_bit_array(cls, bit_array: Any) -> PubShots:
        """From a 1-D ``qiskit.primitives.BitArray`` (one PUB's ``data.meas``)."""
        arr = np.asarray(bit_array.array, dtype=np.uint8)
        n = int(bit_array.shape[0]) if bit_array.shape else 1
        return cls(arr.reshape(n, -1, arr.shape[-1]), int(bit_array.num_bits))

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PubShots) and self.num_bits == other.num_bits
                and np.array_equal(self.bits, other.bits))

    __hash__ = None  # type: ignore[assignment]

    @property
    def shots(self) -> int:
        """Shots per pair."""
        return int(self.bits.shape[1])

    def counts(self, pair: int) -> dict[str, int]:
        """One pair's ``{bitstring: count}``, bitstrings as Qiskit writes them (clbit 0 last)."""
        rows, cnt = np.unique(self.bits[pair], axis=0, return_counts=True)
        out = {}
        for row, c in zip(rows, cnt.tolist(), strict=True):
            text = "".join(format(int(b), "08b") for b in row)
            out[text[len(text) - self.num_bits:]] = int(c)
        return out

    def zero_probabilities(self, inverses: np.ndarray | None = None) -> np.ndarray:
        """Each pair's estimate of ``P(0...0)``, shape ``(n_pairs,)``, not yet clipped.

        Without ``inverses``: the fraction of shots that read all zeros. With ``inverses``
        (``(num_bits, 2, 2)``, :func:`~qdist.backends.qpu_providers.readout_inverses`): the
        tensored estimate ``sum_b prod_k A_k^{-1}[0, b_k] P_hat(b)``, which can leave [0, 1].
        """
        if self.shots == 0:
            raise TileError("The job returned zero shots per pair; the result is incomplete.")
        if inverses is None:
            return np.asarray((self.bits == 0).all(axis=2).mean(axis=1), dtype=np.float64)
        inverses = np.asarray(inverses, dtype=np.float64)
        if inverses.shape != (self.num_bits, 2, 2):
            raise TileError(f"Readout inverses of shape {inverses.shape} do not fit {self.num_bits} "
                            f"measured clbits; expected ({self.num_bits}, 2, 2).")
        weight = np.ones(self.bits.shape[:2])
        n_bytes = self.bits.shape[2]
        values = np.arange(256)
        for b in range(n_bytes):
            first = 8 * (n_bytes - 1 - b)  # clbit held by bit 0 of this byte
            table = np.ones(256)
            for j in range(min(8, self.num_bits - first)):
                table *= inverses[first + j, 0, (values >> j) & 1]
            weight *= table[self.bits[:, :, b]]
        return np.asarray(weight.mean(axis=1), dtype=np.float64)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays for an ``.npz`` (see :meth:`from_arrays`)."""
        return {f"{prefix}bits": self.bits, f"{prefix}num_bits": np.array(self.num_bits)}

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> PubShots:
        """Inverse of :meth:`to_arrays` (``arrays`` may be an open ``np.load``)."""
        return cls(np.asarray(arrays[f"{prefix}bits"], dtype=np.uint8),
                   int(arrays[f"{prefix}num_bits"]))
