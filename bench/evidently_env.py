"""A separate virtual environment with Evidently 0.7.23, for benchmarks and parity checks.

Evidently is not a product dependency: it fails to import with pandas 3, so it lives in
``bench/.venv-evidently`` with pandas < 3, created on first use.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv-evidently"
PACKAGES = ["evidently==0.7.23", "pandas<3"]


def evidently_python() -> Path:
    """Path of the bench environment's python, creating the environment when absent."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if not stamp.exists():
        print(f"creating {VENV} with {' '.join(PACKAGES)} (about a minute)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
        stamp.write_text(" ".join(PACKAGES))
    return python
