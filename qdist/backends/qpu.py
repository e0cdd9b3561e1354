"""QPU kernel tiles: one compute-uncompute ISA circuit per run, one sampler PUB per tile.

Entry ``K(x_i, y_j)`` is the all-zeros probability of ``U(y_j)^dagger U(x_i)``, estimated from
``s`` shots; ``K_hat = n_0 / s`` is binomial with variance ``K (1 - K) / s`` (see
:mod:`qdist.backends.qpu_circuits`). A tile of ``b_r x b_c`` samples is one PUB: the ISA circuit
plus a ``(n_pairs, 2p)`` parameter array, so a job never carries one circuit per pair.

Primitive
---------
qiskit-ibm-runtime 0.51 deprecates ``SamplerV2`` in favour of the client-side
``qiskit_ibm_runtime.executor_sampler.Sampler`` (built on the Executor primitive). It was checked
here to accept PUBs with parameter arrays and to run with every mode qdist needs:

* ``provider="aer"``: an ``AerSimulator`` as mode (noiseless, or ``AerSimulator.from_backend``
  of a fake device when ``backend_name`` names one); seeded by ``options.simulator.seed_simulator``.
* ``provider="fake"``: local testing mode on a fake backend (``fake_torino`` ...): real
  transpilation to the device, its noise model run through Aer, jobs submitted in a ``Batch``
  as on hardware.
* ``provider="ibm"``: one ``Batch`` per run on a ``QiskitRuntimeService`` backend, closed when
  the run's tiles are in (jobs already submitted run on); credentials only from
  ``QISKIT_IBM_TOKEN`` / ``QISKIT_IBM_INSTANCE`` / ``QISKIT_IBM_CHANNEL``.
* ``provider="spool"``: a folder-based job queue (:mod:`qdist.backends.spool`) whose service runs
  the same Sampler, so tests can kill a driver while jobs are in flight and re-attach.

So one code path serves all four; nothing uses the deprecated ``SamplerV2``. In local modes the
executor rounds angles to multiples of pi/2 at 5 decimals (``simulator.angle_decimals``), an
error below 1e-5 rad, far under shot noise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit

from qdist.backends.qpu_circuits import (
    compute_uncompute,
    measured_physical_qubits,
    pub_values,
    tile_pairs,
)
from qdist.backends.qpu_providers import (
    CIRCUIT_OVERHEAD_S,
    JOB_OVERHEAD_S,
    MAX_EXECUTIONS_PER_JOB,
    PROVIDERS,
    IbmCredentials,
    estimate_qpu_time,
    fake_backend,
    ibm_service,
    normalise_status,
    readout_inverses,
)
from qdist.backends.qpu_shots import PubShots
from qdist.errors import BackendError, TileError

__all__ = ["QpuTileSampler", "compute_uncompute", "JOB_OVERHEAD_S", "CIRCUIT_OVERHEAD_S",
           "MAX_EXECUTIONS_PER_JOB"]

logger = logging.getLogger(__name__)

Pub = tuple[QuantumCircuit, np.ndarray]


class QpuTileSampler:
    """Fidelity-kernel tiles from shots: ``K_hat(x, y) = n_{0...0} / s`` per pair.

    Parameters
    ----------
    circuit
        The feature map ``U`` (``p`` parameters in ``circuit.parameters`` order).
    provider
        ``"aer"``, ``"fake"``, ``"ibm"`` or ``"spool"`` (see the module docstring).
    backend_name
        Device: a fake device (``"fake_torino"``) for ``fake`` and ``spool`` (or ``"aer"`` for a
        noiseless spool), an IBM backend name for ``ibm``; for ``aer`` optional, a fake device
        whose noise model and coupling map to use.
    shots
        Shots per pair ``s``; ``Var[K_hat] = K (1 - K) / s``.
    optimization_level, initial_layout, seed
        Transpiler settings (``seed`` is ``seed_transpiler``, so every process builds the same ISA
        circuit). Sampling seeds are per job: see :meth:`submit`.
    readout_mitigation
        Apply tensored readout-error inversion in :meth:`tile_values`.
    spool_dir
        The spool folder for ``provider="spool"``.

    Notes
    -----
    Built from plain settings, so it can be built inside a Ray actor; pickling keeps only the
    settings and the feature map and rebuilds (re-transpiles, same seed) on unpickling. Jobs held
    in memory do not travel; re-attach by id.
    """

    def __init__(self, circuit: QuantumCircuit, *, provider: str = "aer", backend_name: str | None = None,
                 shots: int = 1024, optimization_level: int = 1, initial_layout: list[int] | None = None,
                 seed: int | None = None, readout_mitigation: bool = False,
                 spool_dir: str | None = None) -> None:
        self._circuit = circuit
        self._settings: dict[str, Any] = {
            "provider": provider, "backend_name": backend_name, "shots": shots,
            "optimization_level": optimization_level,
            "initial_layout": None if initial_layout is None else list(initial_layout),
            "seed": seed, "readout_mitigation": readout_mitigation, "spool_dir": spool_dir,
        }
        self._validate()
        self.provider = provider
        self.backend_name = backend_name
        self.shots = int(shots)
        self.readout_mitigation = bool(readout_mitigation)
        self._jobs: dict[str, Any] = {}
        self._batch: Any = None
        self._service: Any = None
        self._spool: Any = None
        self._device, self._mode = self._resolve_device()
        self.isa_circuit = self._transpile()
        self.parameter_names = [p.name for p in self.isa_circuit.parameters]
        self.physical_qubits = measured_physical_qubits(self.isa_circuit)
        self._inverses = (readout_inverses(self._device, self.physical_qubits)
                          if self.readout_mitigation else None)
        logger.info("QPU sampler ready: provider=%s backend=%s qubits=%s depth=%d", provider,
                    backend_name, self.physical_qubits, self.isa_circuit.depth())

    # -- construction -------------------------------------------------------------------------
    def _validate(self) -> None:
        s = self._settings
        if s["provider"] not in PROVIDERS:
            raise BackendError(f"The QPU provider must be one of {PROVIDERS}; got {s['provider']!r}.")
        if not isinstance(s["shots"], int | np.integer) or s["shots"] < 1:
            raise BackendError(f"shots must be a positive integer; got {s['shots']!r}.")
        if s["optimization_level"] not in (0, 1, 2, 3):
            raise BackendError(f"optimization_level must be 0, 1, 2 or 3; got {s['optimization_level']!r}.")
        layout = s["initial_layout"]
        if layout is not None and len(layout) != self._circuit.num_qubits:
            raise BackendError(f"initial_layout must list {self._circuit.num_qubits} physical qubits; "
                               f"got {layout!r}.")
        if s["provider"] in ("fake", "ibm") and not s["backend_name"]:
            raise BackendError(f"provider {s['provider']!r} needs backend_name (e.g. 'fake_torino' or "
                               "'ibm_torino').")
        if s["provider"] == "spool" and not s["spool_dir"]:
            raise BackendError("provider 'spool' needs spool_dir, the folder its service polls.")

    def _resolve_device(self) -> tuple[Any, Any]:
        provider, name = self.provider, self.backend_name
        if provider == "ibm":
            self._service = ibm_service(IbmCredentials.from_env())
            try:
                device = self._service.backend(name)
            except Exception as exc:  # unknown names and network errors alike
                raise BackendError(f"IBM backend {name!r} is not available to this instance: {exc}") from exc
            return device, None
        if provider == "spool":
            from qdist.backends.spool import SpoolClient

            self._spool = SpoolClient(self._settings["spool_dir"])
        if provider in ("aer", "spool") and name in (None, "", "aer"):
            from qiskit_aer import AerSimulator

            # a PUB's parameter rows are separate Aer experiments: run them on every core
            sim = AerSimulator(max_parallel_experiments=0)
            return sim, sim
        device = fake_backend(str(name))
        if provider == "aer":
            from qiskit_aer import AerSimulator

            return device, AerSimulator.from_backend(device, max_parallel_experiments=0)
        return device, device

    def _transpile(self) -> QuantumCircuit:
        from qiskit.transpiler import generate_preset_pass_manager

        pm = generate_preset_pass_manager(
            optimization_level=self._settings["optimization_level"], backend=self._device,
            initial_layout=self._settings["initial_layout"], seed_transpiler=self._settings["seed"])
        return pm.run(compute_uncompute(self._circuit))

    def __getstate__(self) -> dict[str, Any]:
        return {"circuit": self._circuit, "settings": dict(self._settings)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["circuit"], **state["settings"])  # type: ignore[misc]

    def __repr__(self) -> str:
        s = self._settings
        return (f"QpuTileSampler(provider={s['provider']!r}, backend_name={s['backend_name']!r}, "
                f"shots={s['shots']}, optimization_level={s['optimization_level']}, "
                f"readout_mitigation={s['readout_mitigation']})")

    # -- a tile's circuit inputs --------------------------------------------------------------
    @staticmethod
    def pairs(tile_rows: tuple[int, int], tile_cols: tuple[int, int], diagonal: bool) -> np.ndarray:
        """Local ``(i, j)`` pairs the tile needs; ``i < j`` only on a diagonal tile."""
        return tile_pairs(tuple(tile_rows), tuple(tile_cols), diagonal)  # type: ignore[arg-type]

    def make_pub(self, x_rows: np.ndarray, x_cols: np.ndarray, pairs: np.ndarray) -> Pub:
        """One PUB ``(isa_circuit, values)`` for the tile's pairs, values ``(n_pairs, 2p)``.

        Columns follow the ISA circuit's parameter order, matched by name. A tile with no pairs
        (a 1 x 1 diagonal tile) needs no job: call :meth:`tile_values` with ``shots=None``.
        """
        pairs = np.asarray(pairs).reshape(-1, 2)
        if pairs.shape[0] == 0:
            raise TileError("This tile has no pairs to measure (a 1 x 1 diagonal tile); submit nothing "
                            "and call tile_values(None, pairs, shape, diagonal=True).")
        return self.isa_circuit, pub_values(self.parameter_names, x_rows, x_cols, pairs)

    # -- jobs ---------------------------------------------------------------------------------
    def submit(self, pubs: Sequence[Pub], tile_seed: int) -> str:
        """Submit ``pubs`` as one job with ``shots`` per pair; returns the job id.

        ``tile_seed`` seeds the simulator in local modes (a rerun of the tile gives the same
        counts); hardware ignores it.
        """
        pubs = list(pubs)
        execs = sum(int(v.shape[0]) for _, v in pubs) * self.shots
        if execs > MAX_EXECUTIONS_PER_JOB:
            raise TileError(f"One job would run {execs} circuit executions (pairs x shots); the provider "
                            f"caps a job at {MAX_EXECUTIONS_PER_JOB}. Use smaller tiles or fewer shots.")
        if self._spool is not None:
            job_id = self._spool.submit([c for c, _ in pubs], [v for _, v in pubs], shots=self.shots,
                                        seed=int(tile_seed), backend=self.backend_name or "aer")
        else:
            job = self._sampler(int(tile_seed)).run(pubs, shots=self.shots)
            job_id = str(job.job_id())
            self._jobs[job_id] = job
        logger.info("Submitted job %s: %d pub(s), %d execution(s), seed %d", job_id, len(pubs), execs,
                    tile_seed)
        return job_id

    def _sampler(self, seed: int) -> Any:
        """A Sampler for one job. ``ibm`` and ``fake`` submit inside one ``Batch`` per run (on a
        fake backend, local testing mode runs the Batch in process, so the tests exercise the
        hardware path's execution mode too); local simulators are seeded per tile."""
        from qiskit_ibm_runtime.executor_sampler import Sampler

        if self.provider in ("ibm", "fake"):
            from qiskit_ibm_runtime import Batch

            if self._batch is None:
                self._batch = Batch(backend=self._device)
            sampler = Sampler(mode=self._batch)
        else:
            sampler = Sampler(mode=self._mode)
        if self.provider != "ibm":
            sampler.options.simulator.seed_simulator = seed
        return sampler

    def close(self) -> None:
        """Close the run's Batch, if any: it accepts no more jobs, and jobs already submitted run
        to the end (so a driver can stop without cancelling paid work)."""
        if self._batch is not None:
            batch, self._batch = self._batch, None
            try:
                batch.close()
            except Exception as exc:  # closing is a courtesy; the jobs are unaffected
                logger.warning("Could not close the QPU batch: %s", exc)

    def attach(self, job_id: str) -> None:
        """Take over a job submitted by an earlier process (ibm, spool)."""
        if job_id in self._jobs:
            return
        if self._spool is not None:
            self._spool.check(job_id)
        elif self.provider == "ibm":
            try:
                self._jobs[job_id] = self._service.job(job_id)
            except Exception as exc:  # unknown ids and network errors alike
                raise BackendError(f"Cannot re-attach to IBM job {job_id!r}: {exc}") from exc
        else:
            raise BackendError(
                f"Job {job_id!r} ran in a local {self.provider!r} simulator of an earlier process; local "
                "jobs cannot be re-attached. Resubmit the tile."
            )

    def _job(self, job_id: str) -> Any:
        if job_id not in self._jobs:
            raise BackendError(f"Unknown job {job_id!r}; call attach(job_id) first.")
        return self._jobs[job_id]

    def status(self, job_id: str) -> str:
        """``QUEUED``, ``RUNNING``, ``DONE``, ``ERROR`` or ``CANCELLED``."""
        if self._spool is not None:
            return str(self._spool.status(job_id)[0])
        return normalise_status(self._job(job_id).status())

    def result(self, job_id: str, timeout: float | None = None) -> list[PubShots]:
        """Every shot of every PUB of the job (:class:`PubShots`); waits for the job to finish.

        Raises :class:`~qdist.errors.TileError` with the provider's message for a failed job.
        """
        if self._spool is not None:
            return self._spool.result(job_id, timeout=timeout)  # type: ignore[no-any-return]
        job = self._job(job_id)
        try:
            res = job.result(timeout=timeout) if self.provider == "ibm" else job.result()
        except Exception as exc:  # a failed job becomes a TileError with its reason
            raise TileError(f"QPU job {job_id} failed ({self.status(job_id)}): {exc}") from exc
        return [PubShots.from_bit_array(pub.data.meas) for pub in res]

    # -- shots to kernel values ---------------------------------------------------------------
    def tile_values(self, shots: PubShots | None, pairs: np.ndarray, shape: tuple[int, int],
                    diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
        """Kernel values (float64) and shots per entry (int32) of a ``shape`` tile.

        ``K_hat = n_{0...0} / s`` per pair (readout-mitigated when enabled), clipped to [0, 1];
        a diagonal tile gets 1.0 with 0 shots on its diagonal (exact) and is mirrored. A tile
        with no pairs (1 x 1 diagonal) takes ``shots=None``.
        """
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        got = 0 if shots is None else len(shots)
        if got != pairs.shape[0]:
            raise TileError(f"Got shots for {got} pairs but the tile has {pairs.shape[0]}; the job "
                            "result does not belong to this tile.")
        values = np.full(shape, np.nan)
        per_entry = np.zeros(shape, dtype=np.int32)
        if shots is not None and got:
            k = np.clip(shots.zero_probabilities(self._inverses), 0.0, 1.0)
            i, j = pairs[:, 0], pairs[:, 1]
            values[i, j], per_entry[i, j] = k, shots.shots
            if diagonal:
                values[j, i], per_entry[j, i] = k, shots.shots
        if diagonal:
            np.fill_diagonal(values, 1.0)
        if np.isnan(values).any():
            raise TileError(f"{int(np.isnan(values).sum())} entries of the {shape} tile have no shots; "
                            "the pairs do not cover the tile.")
        return values, per_entry

    def estimate(self, n_pairs_total: int, n_jobs: int) -> dict[str, Any]:
        """A rough QPU-time estimate, not a quote: jobs, circuits, shots and seconds.

        See :func:`qdist.backends.qpu_providers.estimate_qpu_time` for the model.
        """
        return estimate_qpu_time(self._device, self.isa_circuit, self.shots, n_pairs_total, n_jobs)
