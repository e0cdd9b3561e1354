"""The layering of DESIGN.md, enforced: import-linter contracts and module size."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    proc = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" in proc.stdout and "0 broken" in proc.stdout


@pytest.mark.parametrize("path", sorted((REPO / "qdist").rglob("*.py")), ids=lambda p: p.name)
def test_modules_stay_small(path):
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    assert len(lines) <= 400, f"{path} has {len(lines)} non-blank lines; split it"


def test_pure_core_imports_without_runtimes():
    code = ("import sys; import qdist.kernel.tiles, qdist.planning, qdist.config, qdist.events; "
            "bad = [m for m in ('ray', 'zarr', 'dask', 'mlflow', 'qiskit_aer') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
