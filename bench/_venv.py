"""Re-run a benchmark under the project's virtual environment when started with a python
that lacks the project's packages, and read a process's peak memory (standard library
only, so it imports anywhere: the benchmarks' side processes in other environments use
it too)."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB: ``VmHWM`` on Linux, where
    ``ru_maxrss`` also counts the peak of the process that launched it (an exec'd child
    inherits it, and a bench that has just built its data holds gigabytes)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status
                        if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def use_project_python() -> None:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        venv = ROOT / ".venv" / "bin" / "python"
        if venv.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
            os.execv(str(venv), [str(venv), *sys.argv])
        raise


def side_python(name: str, packages: list[str], wait: str = "a minute or two") -> Path:
    """Python of the benchmark's own environment ``bench/.venv-<name>`` holding
    ``packages``, created on first use (for tools that cannot share the product's)."""
    import subprocess

    venv = ROOT / "bench" / f".venv-{name}"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.exists() or stamp.read_text() != " ".join(packages):
        print(f"creating {venv} with {' '.join(packages)} ({wait})", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        stamp.write_text(" ".join(packages))
    return python
