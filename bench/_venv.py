"""Re-run a benchmark under the project's virtual environment when started with a python
that lacks the project's packages (standard library only, so it imports anywhere)."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_project_python() -> None:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        venv = ROOT / ".venv" / "bin" / "python"
        if venv.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
            os.execv(str(venv), [str(venv), *sys.argv])
        raise
