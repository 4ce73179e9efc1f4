"""The Arrow allocator the package chooses (see ``analysis._use_jemalloc``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOW = "import analysis, pyarrow; print(pyarrow.default_memory_pool().backend_name)"


def _pool(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_importing_the_package_moves_arrow_to_jemalloc():
    assert _pool() == "jemalloc"


def test_the_environment_variable_still_chooses():
    assert _pool(ARROW_DEFAULT_MEMORY_POOL="system") == "system"
