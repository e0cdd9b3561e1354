"""One driver per store: an expiring lease file beside the Zarr group.

The lease is ``<store>.lease``, a small JSON record (holder id, host, pid, expiry) created with
``O_EXCL``. The holding driver renews it from a background thread every ``ttl / 3`` seconds. A
second driver is refused while the lease is live; it takes the lease over when the lease has
expired, or at once when the holder ran on the same host and its process is gone (a driver
killed with SIGKILL leaves its lease behind). Take-over writes a new record and re-reads it, so
of two drivers racing for a dead lease only one proceeds.

Local (and network) file systems only: object stores need a conditional-write lease instead.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from qdist.errors import StoreLockedError

__all__ = ["StoreLease"]

log = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class StoreLease:
    """An expiring, renewed lease on the store at ``store_location``."""

    def __init__(self, store_location: str | Path, ttl: float = 60.0) -> None:
        self.path = Path(f"{store_location}.lease")
        self.ttl = ttl
        self.holder = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> dict[str, Any]:
        return {"holder": self.holder, "host": socket.gethostname(), "pid": os.getpid(),
                "expires_at": time.time() + self.ttl}

    def _read(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
            return data
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, OSError):  # a torn record counts as stale
            return {"holder": "?", "host": "?", "pid": -1, "expires_at": 0.0}

    def _write(self) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{self.holder}.tmp")
        tmp.write_text(json.dumps(self._record()))
        os.replace(tmp, self.path)

    def _stale(self, rec: dict[str, Any]) -> bool:
        if float(rec.get("expires_at", 0.0)) < time.time():
            return True
        return rec.get("host") == socket.gethostname() and not _pid_alive(int(rec.get("pid", -1)))

    def acquire(self) -> None:
        """Take the lease or raise :class:`StoreLockedError` naming the live holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            rec = self._read()
            if rec is not None and not self._stale(rec):
                left = float(rec["expires_at"]) - time.time()
                raise StoreLockedError(
                    f"Another driver (pid {rec.get('pid')} on {rec.get('host')}) is running on "
                    f"this store; its lease {str(self.path)!r} is live for {left:.0f} s more. "
                    "Wait for it to finish, or stop it; if it died, the lease expires by itself."
                ) from None
            log.warning("taking over a stale lease %s (holder pid %s on %s)", self.path,
                        rec and rec.get("pid"), rec and rec.get("host"))
            self._write()
            if (self._read() or {}).get("holder") != self.holder:
                raise StoreLockedError(
                    f"Another driver took over the stale lease {str(self.path)!r} first."
                ) from None
        else:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self._record()))
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, name="qdist-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            rec = self._read()
            if rec is None or rec.get("holder") != self.holder:
                log.error("lost the store lease %s to another driver", self.path)
                return
            self._write()

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        rec = self._read()
        if rec is not None and rec.get("holder") == self.holder:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> StoreLease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
