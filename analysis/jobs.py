"""Long computations in a worker process: started by a page, watched, cancellable.

An investigation takes from seconds to minutes. The dashboard must neither block on it
nor lose it when the analyst leaves the page, and two visitors asking for the same result
must not compute it twice. So a job runs in its own process (``python -m analysis.jobs
FILE``) and talks to the pages only through files beside the result it writes::

    <name>.result     the result (written by the job, atomically; what pages read)
    <name>.job        claims the job: kind, parameters, the worker's pid and start time
    <name>.progress   the job's last progress message
    <name>.error      why the last run failed (removed when a new run starts)
    <name>.log        the worker's stdout and stderr

The claim is created with ``O_EXCL``, so of two pages starting the same job one wins and
the other watches it. A claim whose worker is gone (killed, machine restarted) is stale:
:func:`state` reports it as failed and clears it, so the job can be started again.
Cancelling kills the worker's process group.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

STARTING_GRACE = 30.0   # seconds a claim without a pid yet counts as starting
_STARTED: set[Path] = set()   # results whose jobs this process started
_FRACTION = re.compile(r"^\[(\d+)/(\d+)\]")


@dataclass
class JobState:
    """Where a job stands: ``running``, ``failed`` or ``idle`` (not running: its result
    is there, or it was never started, or it was cancelled)."""

    state: str
    message: str = ""
    fraction: float | None = None
    elapsed: float | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


def _files(result: Path) -> dict[str, Path]:
    result = Path(result)
    return {k: result.with_suffix(f".{k}") for k in ("job", "progress", "error", "log")}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (None when it is gone or a zombie), so a pid
    reused by another process is not taken for the worker."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def start(kind: str, params: dict, result: Path) -> bool:
    """Start job ``kind`` writing ``result``; False when it is already running.

    ``params`` must be JSON; the worker hands them and ``result`` to the kind's function
    (see :data:`KINDS`), which writes ``result``."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    files = _files(result)
    Path(result).parent.mkdir(parents=True, exist_ok=True)
    if state(result).running:
        return False
    claim = {"kind": kind, "params": params, "result": str(result), "created": time.time()}
    try:
        fd = os.open(files["job"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        json.dump(claim, out)
    files["error"].unlink(missing_ok=True)
    files["progress"].unlink(missing_ok=True)
    with open(files["log"], "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "analysis.jobs", str(files["job"])],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=Path(__file__).resolve().parent.parent)
    # reap the worker when it ends, so it does not linger as a zombie of this process
    threading.Thread(target=proc.wait, daemon=True).start()
    _STARTED.add(Path(result))
    _write_atomic(files["job"], json.dumps({**claim, "pid": proc.pid,
                                            "pid_start": _process_start(proc.pid)}))
    return True


def state(result: Path) -> JobState:
    """The job's state, from its files; a stale claim is cleared and reported failed."""
    files = _files(result)
    claim = _read_json(files["job"])
    error = files["error"].read_text() if files["error"].exists() else None
    if claim is None:
        return JobState("failed", error=error) if error else JobState("idle")
    elapsed = time.time() - claim.get("created", time.time())
    pid = claim.get("pid")
    alive = (pid is None and elapsed < STARTING_GRACE) or (
        pid is not None and _process_start(pid) is not None
        and _process_start(pid) == claim.get("pid_start"))
    if not alive:
        if Path(result).exists():   # finished between our reads
            return JobState("idle")
        files["job"].unlink(missing_ok=True)
        return JobState("failed", error=error or "the computation stopped before it finished "
                                                 "(its process is gone); start it again")
    progress = _read_json(files["progress"]) or {}
    message = progress.get("message", "starting…")
    hit = _FRACTION.match(message)
    fraction = int(hit.group(1)) / max(int(hit.group(2)), 1) if hit else None
    return JobState("running", _FRACTION.sub("", message).strip(), fraction, elapsed)


def cancel(result: Path) -> None:
    """Stop the job (its whole process group) and clear its claim."""
    files = _files(result)
    claim = _read_json(files["job"]) or {}
    pid = claim.get("pid")
    if pid is not None and _process_start(pid) == claim.get("pid_start"):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while _process_start(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if _process_start(pid) is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    files["job"].unlink(missing_ok=True)
    files["progress"].unlink(missing_ok=True)


def started_here() -> list[Path]:
    """The results whose jobs this process started and that are still running."""
    return sorted(p for p in _STARTED if state(p).running)


def cancel_all(root: Path) -> list[Path]:
    """Cancel every running job under a store ``root`` (whoever started it); returns
    their results' paths."""
    running = [p.with_suffix(".result") for p in Path(root).glob("*/investigations/*.job")]
    running = [p for p in running if state(p).running]
    for path in running:
        cancel(path)
    return running


def wait(result: Path, timeout: float = 600.0, poll: float = 0.2) -> JobState:
    """Block until the job is no longer running (for set-up scripts and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        now = state(result)
        if not now.running:
            return now
        if time.monotonic() > deadline:
            raise TimeoutError(f"job for {result} still running after {timeout:.0f} s")
        time.sleep(poll)


# ----------------------------------------------------------------------------- worker

def _run_investigation(params: dict, result: Path, progress: Callable[[str], None]) -> None:
    from analysis import investigation as inv
    from analysis.engine import engine_from_json
    from analysis.store import Store

    inv.investigate_store(Store(params["root"]), params["dataset"],
                          inv.filters_from_json(params["filters"]), params["segment"],
                          params["unit"], params["metric"], progress=progress, path=result,
                          engine=engine_from_json(params.get("engine")))


def _run_evidence(params: dict, result: Path, progress: Callable[[str], None]) -> None:
    from analysis import investigation as inv
    from analysis.engine import engine_from_json
    from analysis.store import Store

    progress("retraining on the cell and comparing with the reference model")
    inv.cell_evidence_store(Store(params["root"]), params["dataset"],
                            inv.filters_from_json(params["filters"]), params["segment"],
                            params["cell_segment"], params["start"], params["end"], path=result,
                            engine=engine_from_json(params.get("engine")))


KINDS: dict[str, Callable[[dict, Path, Callable[[str], None]], None]] = {
    "investigation": _run_investigation, "evidence": _run_evidence}


def run_worker(job_file: Path) -> int:
    """Body of the worker process: run the claimed job, record an error if it fails,
    and release the claim."""
    files = _files(job_file)
    claim = _read_json(job_file)
    if claim is None:
        return 1

    def progress(message: str) -> None:
        _write_atomic(files["progress"], json.dumps({"message": message, "at": time.time()}))

    # SIGTERM (cancel) ends the worker through the normal exception path
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        # the result goes where the page waits for it, whatever this process would name it
        KINDS[claim["kind"]](claim["params"], Path(claim["result"]), progress)
        return 0
    except SystemExit:
        raise
    except Exception as exc:   # a failure the page must be able to show
        # bad input (InputError, StoreError... are ValueErrors) speaks for itself
        known = isinstance(exc, ValueError)
        _write_atomic(files["error"], str(exc) if known else f"{type(exc).__name__}: {exc}")
        raise
    finally:
        files["progress"].unlink(missing_ok=True)
        job_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(run_worker(Path(sys.argv[1])))
