"""Fault injection on a fixed schedule, for the fault-tolerance tests.

``QDIST_FAULTS`` holds a JSON object mapping a tile key (or ``"*"`` for every tile) to
``[action, count]``; ``QDIST_FAULTS_DIR`` is a folder where each firing leaves a marker file, so
the schedule survives worker restarts. Actions:

- ``fail``: raise before computing the tile (``count`` times; -1 for always);
- ``kill``: SIGKILL the worker process after computing the tile, before writing it (mid-tile);
- ``sleep``: sleep ``count`` seconds before computing (slows a run down so a test can kill it).

With ``QDIST_FAULTS`` unset this is one dictionary lookup per tile.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

__all__ = ["inject", "FAULT_ENV"]

FAULT_ENV = ("QDIST_FAULTS", "QDIST_FAULTS_DIR")


def _fire(key: str, count: int) -> bool:
    folder = Path(os.environ.get("QDIST_FAULTS_DIR", "."))
    safe = key.replace("/", "_")
    fired = len(list(folder.glob(f"{safe}.fired.*")))
    if count >= 0 and fired >= count:
        return False
    (folder / f"{safe}.fired.{fired}").touch()
    return True


def inject(tile_key: str, stage: str) -> None:
    """Apply the scheduled fault for ``tile_key`` at ``stage`` (``start`` or ``before_write``)."""
    spec = os.environ.get("QDIST_FAULTS")
    if not spec:
        return
    schedule = json.loads(spec)
    for key in (tile_key, "*"):
        if key not in schedule:
            continue
        action, count = schedule[key]
        if action == "sleep" and stage == "start":
            time.sleep(float(count))
        elif action == "fail" and stage == "start" and _fire(tile_key, int(count)):
            raise RuntimeError(f"injected failure of tile {tile_key}")
        elif action == "kill" and stage == "before_write" and _fire(tile_key, int(count)):
            os.kill(os.getpid(), signal.SIGKILL)
