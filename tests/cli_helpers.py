"""Run ``python -m analysis ...`` in this process (its ``main``, with the working
directory, stdout and stderr of a command), or as a real subprocess.

In-process runs skip the 2-3 s a new Python spends importing pandas, scikit-learn and
DuckDB, which dominated the command-line tests; each test module keeps at least one
subprocess run, so the ``python -m analysis`` entry point stays covered."""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_command(*args, subprocess_run: bool = False) -> subprocess.CompletedProcess:
    """``python -m analysis *args`` from the project folder: its exit code, stdout and
    stderr, as :func:`subprocess.run` with ``capture_output=True, text=True`` gives."""
    if subprocess_run:
        return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=ROOT,
                              capture_output=True, text=True)
    from analysis.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:   # argparse: --help (0), a usage error (2)
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["python", "-m", "analysis", *args], code,
                                       out.getvalue(), err.getvalue())
