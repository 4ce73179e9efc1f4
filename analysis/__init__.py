"""Drift Investigator's engine: statistics, store, queries, figures, demo data, CLI.

Importable without Streamlit; every number the dashboard shows comes from here.
"""
import os as _os

__version__ = "0.1.0"


def _use_jemalloc() -> None:
    """Arrow's memory from jemalloc rather than pyarrow's default (mimalloc): on the
    project's machine mimalloc took about 2 s to hand out the first gigabyte a process
    reads (the demo at ten times its size: 1.8M reference rows in 2.4 s instead of 0.6 s;
    bench/investigate.py), jemalloc and the system allocator a tenth of that.
    ``ARROW_DEFAULT_MEMORY_POOL`` still chooses when set."""
    if _os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow

    try:
        pyarrow.set_memory_pool(pyarrow.jemalloc_memory_pool())
    except NotImplementedError:       # a pyarrow built without jemalloc keeps its default
        pass


_use_jemalloc()
