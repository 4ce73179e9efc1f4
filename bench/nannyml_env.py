"""A separate virtual environment with NannyML 0.13.1, for comparing our label-free
accuracy estimate with NannyML's CBPE.

NannyML is not a product dependency (it pins its own pandas and scikit-learn ranges):
it lives in ``bench/.venv-nannyml``, created on first use, and is driven by
``bench/_nannyml_cbpe.py`` through files, never imported by the product.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._venv import side_python  # noqa: E402

# NannyML 0.13.1 imports statsmodels without declaring it
PACKAGES = ["nannyml==0.13.1", "statsmodels==0.15.0"]


def nannyml_python() -> Path:
    """Path of the bench environment's python, creating the environment when absent."""
    return side_python("nannyml", PACKAGES, "a minute or two")
