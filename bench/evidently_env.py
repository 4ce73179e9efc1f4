"""A separate virtual environment with Evidently 0.7.23, for benchmarks and parity checks.

Evidently is not a product dependency: it fails to import with pandas 3, so it lives in
``bench/.venv-evidently`` with pandas < 3, created on first use.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._venv import side_python  # noqa: E402

PACKAGES = ["evidently==0.7.23", "pandas<3"]


def evidently_python() -> Path:
    """Path of the bench environment's python, creating the environment when absent."""
    return side_python("evidently", PACKAGES, "about a minute")
