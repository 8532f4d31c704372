"""The planted bugs of `make mutation` still apply: every snippet of tests/mutants.toml is
found exactly once in its file (a refactor that moves the code must move the mutant too)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_every_mutant_snippet_applies():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "mutation.py"), "--check"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "STALE" not in r.stdout
