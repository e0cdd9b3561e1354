"""One driver per store: an expiring lease beside the Zarr group.

The lease is ``<store>.lease``, a small JSON record (holder id, host, pid, expiry). The holding
driver renews it from a background thread every ``ttl / 3`` seconds. A second driver is
refused while the lease is live; it takes the lease over when the lease has expired, or at
once when the holder ran on the same host and its process is gone (a driver killed with
SIGKILL leaves its lease behind).

:class:`Lease` holds that protocol; a backend supplies four primitives on a *version token*:
create-if-absent, read, replace-if-unchanged and delete. :class:`StoreLease` is the local
(and network) file system backend: writers take an ``flock`` on ``<store>.lease.lock``, so of
two drivers racing for a dead lease only one proceeds. The S3 backend
(:mod:`qdist.storage.s3_lease`) uses conditional writes instead. :func:`store_lease` picks one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from qdist.errors import StoreLockedError

__all__ = ["Lease", "StoreLease", "store_lease"]

log = logging.getLogger(__name__)

_TORN = {"holder": "?", "host": "?", "pid": -1, "expires_at": 0.0}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Lease:
    """An expiring, renewed lease named ``where``; subclasses supply the storage primitives."""

    def __init__(self, where: str, ttl: float = 60.0) -> None:
        self.where = where
        self.ttl = ttl
        self.holder = uuid.uuid4().hex
        self._token: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ primitives (backend)
    def _create(self, record: dict[str, Any]) -> Any:
        """Write ``record`` if no lease exists; its version token, or None if one exists."""
        raise NotImplementedError

    def _read(self) -> tuple[dict[str, Any] | None, Any]:
        """The current record (None if absent; a torn one reads as expired) and its token."""
        raise NotImplementedError

    def _replace(self, record: dict[str, Any], token: Any) -> Any:
        """Replace the lease if it is still at ``token``: the new token, or None if it moved."""
        raise NotImplementedError

    def _delete(self, token: Any) -> None:
        """Remove the lease at ``token`` (a lease that moved meanwhile is left alone)."""
        raise NotImplementedError

    # ------------------------------------------------------------ protocol
    def _record(self) -> dict[str, Any]:
        return {"holder": self.holder, "host": socket.gethostname(), "pid": os.getpid(),
                "expires_at": time.time() + self.ttl}

    def _stale(self, rec: dict[str, Any]) -> bool:
        if float(rec.get("expires_at", 0.0)) < time.time():
            return True
        return rec.get("host") == socket.gethostname() and not _pid_alive(int(rec.get("pid", -1)))

    def acquire(self) -> None:
        """Take the lease or raise :class:`StoreLockedError` naming the live holder."""
        token = self._create(self._record())
        if token is None:
            rec, found = self._read()
            if rec is not None and not self._stale(rec):
                left = float(rec["expires_at"]) - time.time()
                raise StoreLockedError(
                    f"Another driver (pid {rec.get('pid')} on {rec.get('host')}) is running on "
                    f"this store; its lease {self.where!r} is live for {left:.0f} s more. "
                    "Wait for it to finish, or stop it; if it died, the lease expires by itself."
                )
            if rec is None:  # released between our attempt and the read
                token = self._create(self._record())
            else:
                log.warning("taking over a stale lease %s (holder pid %s on %s)", self.where,
                            rec.get("pid"), rec.get("host"))
                token = self._replace(self._record(), found)
            if token is None:
                raise StoreLockedError(f"Another driver took over the stale lease {self.where!r} "
                                       "first. Wait for it to finish.")
        self._token = token
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, name="qdist-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            token = self._replace(self._record(), self._token)
            if token is None:
                log.error("lost the store lease %s to another driver", self.where)
                return
            self._token = token

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        rec, token = self._read()
        if rec is not None and rec.get("holder") == self.holder:
            self._delete(token)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class StoreLease(Lease):
    """The lease as the file ``<store_location>.lease``; the token is the holder id.

    Writers hold an exclusive ``flock`` on ``<store_location>.lease.lock`` (released by the
    kernel when a process dies) while they compare and write, so a take-over or renewal
    is a true compare-and-swap; readers need no lock, as every write is a rename.
    """

    def __init__(self, store_location: str | Path, ttl: float = 60.0) -> None:
        self.path = Path(f"{store_location}.lease")
        self.lock_path = Path(f"{store_location}.lease.lock")
        super().__init__(str(self.path), ttl)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _create(self, record: dict[str, Any]) -> Any:
        with self._locked():
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(record))
        return record["holder"]

    def _read(self) -> tuple[dict[str, Any] | None, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None, None
        except (json.JSONDecodeError, OSError):  # a torn record counts as stale
            return dict(_TORN), "?"
        return data, data.get("holder")

    def _replace(self, record: dict[str, Any], token: Any) -> Any:
        with self._locked():
            current, found = self._read()
            if current is None or found != token:
                return None
            tmp = self.path.with_name(f"{self.path.name}.{self.holder}.tmp")
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.path)
        return record["holder"]

    def _delete(self, token: Any) -> None:
        with self._locked():
            if self._read()[1] == token:
                self.path.unlink(missing_ok=True)


def store_lease(store_location: str, ttl: float = 60.0) -> Lease:
    """The lease for a store: a file beside a local store, an S3 object beside an S3 one."""
    from qdist.storage.location import is_remote

    if is_remote(store_location):
        from qdist.storage.s3_lease import S3Lease

        return S3Lease(store_location, ttl)
    return StoreLease(store_location, ttl)
