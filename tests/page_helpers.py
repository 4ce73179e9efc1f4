"""What the AppTest page tests share: fresh Streamlit caches for every test, the store
the pages read pointed at a test's folder, and a page opened through the app."""
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clear_caches():
    """Streamlit's caches outlive an AppTest run; each test starts without them."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


def use_store(root: Path, monkeypatch) -> None:
    """Make the pages (and the store module) read the store at ``root``."""
    import analysis.store
    import ui
    monkeypatch.setenv("DRIFT_STORE", str(root))
    monkeypatch.setattr(analysis.store, "DEFAULT_STORE", Path(root))
    monkeypatch.setattr(ui, "DEFAULT_STORE", Path(root))


def open_page(page_file: str, timeout: float = 60) -> AppTest:
    """The app run once, then switched to ``page_file`` and run."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.run()
    at.switch_page(page_file)
    at.run()
    return at
