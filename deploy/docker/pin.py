"""Write constraints.txt: the installed versions of qdist[s3]'s runtime dependencies, recursively.

Run it in the environment whose test suite passed (``.venv/bin/python deploy/docker/pin.py``);
the images install exactly these versions. Test-only packages are left out.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement


def closure(root: str, extras: set[str]) -> dict[str, str]:
    """Installed name -> version for ``root[extras]`` and everything it requires."""
    seen: dict[str, str] = {}
    todo = [(root, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency for another platform or Python
        key = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if key in seen and not wanted:
            continue
        seen[key] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            env = {"extra": ""}
            if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in wanted | {""}):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return seen


def main() -> int:
    pins = closure("qdist", {"s3"})
    pins.pop("qdist", None)
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    out = Path(__file__).with_name("constraints.txt")
    out.write_text("# Versions of qdist[s3]'s runtime dependencies that the test suite passed with;\n"
                   "# written by deploy/docker/pin.py (do not edit by hand).\n"
                   + "\n".join(lines) + "\n")
    print(f"{len(lines)} pins written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
