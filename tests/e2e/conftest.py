"""A real Streamlit server on a free port, and Debian's chromium for Playwright."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--disable-quic"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 1400}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(store_root: Path):
    """Start ``streamlit run app.py`` on ``store_root``; return (process, URL)."""
    port = _free_port()
    env = {**os.environ, "DRIFT_STORE": str(store_root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("streamlit server did not become healthy")
        time.sleep(0.3)


def _stop(proc, store_root: Path) -> None:
    """Stop the server, then the jobs it started (they run in their own sessions)."""
    from analysis import jobs
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    jobs.cancel_all(store_root)


@pytest.fixture(scope="session")
def server_url(demo_store, demo_investigation):
    """The dashboard on the demo store (its default investigation already kept)."""
    proc, url = _serve(demo_store.root)
    yield url
    _stop(proc, demo_store.root)


@pytest.fixture()
def small_store_url(tmp_path):
    """The dashboard on a fresh store holding one small dataset ('shop', reference only);
    yields (URL, store, a function making production CSV text)."""
    from smallstore import make_small_store
    store, frame = make_small_store(tmp_path)
    proc, url = _serve(store.root)
    yield url, store, frame
    _stop(proc, store.root)


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    """Where screenshots go: $DRIFT_SCREENSHOTS when set, else a temporary folder."""
    chosen = os.environ.get("DRIFT_SCREENSHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture()
def diabetes_store_url(tmp_path):
    """The dashboard on a fresh store of its own holding only a small upload
    ('diabetes': 242 reference and 200 production rows, two features shifted); yields
    (URL, store)."""
    from small_upload import diabetes_store
    store = diabetes_store(tmp_path, 1, dataset="diabetes")
    proc, url = _serve(store.root)
    yield url, store
    _stop(proc, store.root)


@pytest.fixture(scope="module")
def diabetes_url(tmp_path_factory):
    """The dashboard on issue #10's small upload (tests/small_upload.py, seed 3), shared
    by a module's tests."""
    from small_upload import diabetes_store
    store = diabetes_store(tmp_path_factory.mktemp("diabetes"), seed=3)
    proc, url = _serve(store.root)
    yield url
    _stop(proc, store.root)
