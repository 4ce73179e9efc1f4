"""Shared fixtures: the demo store (built once if absent) and small generated frames."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "tests"):  # the project, and helpers shared by test folders
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from analysis.scenarios import rental  # noqa: E402
from analysis.store import DEFAULT_STORE, Store  # noqa: E402


@pytest.fixture(scope="session")
def demo_store() -> Store:
    """The default-size demo store that scripts/setup.sh builds (built here if absent)."""
    store = Store(DEFAULT_STORE)
    if rental.ground_truth()["dataset"] not in store.datasets():
        rental.build_store(store)
    return store


@pytest.fixture(scope="session")
def ground_truth() -> dict:
    return rental.ground_truth()



@pytest.fixture(scope="session")
def demo_investigation(demo_store) -> dict:
    """The Data vs concept page's default investigation of the demo, kept in the store
    (computed here, in this process, when set-up has not)."""
    from analysis.investigation import investigate_store
    return investigate_store(demo_store, rental.ground_truth()["dataset"])


@pytest.fixture(autouse=True)
def no_job_left_behind():
    """A test's worker processes (jobs started in this process) end with the test."""
    from analysis import jobs
    yield
    for path in jobs.started_here():
        jobs.cancel(path)
