"""Shared test fixtures: where the golden H100 captures are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SHARED_GOLDEN = Path(os.environ.get("FP8SIM_SHARED_GOLDEN", ROOT.parent / "shared" / "golden"))
"""The full captures: ../shared/golden beside the checkout, or $FP8SIM_SHARED_GOLDEN."""


def pytest_collection_modifyitems(config, items):
    """Skips `golden` tests when ../shared/golden is not beside the checkout."""
    if SHARED_GOLDEN.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_GOLDEN} not present")
    for item in items:
        if "golden" in item.keywords:
            item.add_marker(skip)
