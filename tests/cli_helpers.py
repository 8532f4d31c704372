"""Helpers shared by the CLI tests: run fp8sim in a fresh process or in-process, read the
one error line a refusal prints."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from click.testing import CliRunner
from conftest import ROOT

from fp8sim.cli import main

ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def cli(*args, env=None):
    """Runs `python -m fp8sim ARGS` in a fresh process: (status, stdout, stderr, seconds)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fp8sim", *args], capture_output=True, text=True,
                       env=env or ENV, timeout=120)
    return r.returncode, r.stdout, r.stderr, time.perf_counter() - t0


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


TINY = ["--m", "8", "--n", "8", "--k", "256"]
"""A GEMM small enough for every CLI test."""


def invoke(*args: str):
    """Invokes the CLI in standalone mode (as the console script does), stderr apart."""
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always keeps stderr apart
        runner = CliRunner()
    return runner.invoke(main, list(args), catch_exceptions=False)


def assert_usage_error(result) -> None:
    """Exit status 2, exactly one stderr line, no traceback anywhere."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr and "Traceback" not in result.output
