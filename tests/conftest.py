"""Shared test fixtures: where the golden H100 captures are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import Phase, settings

# `make mutation` (scripts/mutation.py) only needs to know that a test fails: no shrinking,
# which can take minutes on the slow reference
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate])
if os.environ.get("FP8SIM_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["FP8SIM_HYPOTHESIS_PROFILE"])

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
