"""The CLI's split of K: `fp8sim gemm --gpu/--slices` and what its summary says ran."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from test_cli import assert_usage_error, run

import fp8sim
from fp8sim.analysis.studies import random_case

SPLIT = ["--kernel", "cublaslt-fast", "--m", "64", "--n", "64", "--k", "16384"]
UNRECORDED = ["--kernel", "cublaslt-fast", "--m", "128", "--n", "160", "--k", "8192"]


def _json(*args) -> dict:
    r = run("gemm", *args, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.output)


def test_summary_says_the_recorded_split_ran():
    r = run("gemm", *SPLIT)
    assert r.exit_code == 0, r.stderr
    assert "slices    K in 6 slices on the H100 (cuBLASLt's recorded choice for this shape)" \
        in r.output
    row = _json(*SPLIT)
    assert (row["gpu"], row["slices"], row["split"]) == ("H100", 6, "table")


def test_slices_runs_the_kernel_with_that_split_bit_for_bit(tmp_path):
    """--slices 3 writes the kernel's own output with slices=3, and the summary says so."""
    out = tmp_path / "d.npy"
    r = run("gemm", *SPLIT, "--slices", "3", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert "K in 3 slices on the H100 (set by --slices)" in r.output
    a, b = random_case(64, 64, 16384, dist="positive", seed=0)
    one = np.float32(1)
    want = fp8sim.KERNELS["cublaslt-fast"](a, b, scale_a=one, scale_b=one, slices=3)
    got = np.load(out)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    six = fp8sim.KERNELS["cublaslt-fast"](a, b, scale_a=one, scale_b=one, slices=6)
    assert not np.array_equal(got.view(np.uint32), six.view(np.uint32))
    assert _json(*SPLIT, "--slices", "3")["split"] == "user"


def test_csv_has_the_split_columns():
    r = run("gemm", *SPLIT, "--slices", "2", "--csv")
    assert r.exit_code == 0, r.stderr
    row = next(csv.DictReader(io.StringIO(r.output)))
    assert (row["gpu"], row["slices"], row["split"]) == ("H100", "2", "user")


def test_rule_and_never_sources():
    short = _json("--kernel", "cublaslt-fast", "--m", "8", "--n", "8", "--k", "256")
    assert (short["slices"], short["split"]) == (1, "rule")
    triton = _json("--kernel", "triton", "--m", "8", "--n", "8", "--k", "256", "--gpu", "H200")
    assert (triton["gpu"], triton["slices"], triton["split"]) == ("H200", 1, "never")
    plain = _json("--m", "8", "--n", "8", "--k", "256")
    assert "split" not in plain and "slices" not in plain


def test_an_unrecorded_split_asks_for_the_option_and_slices_unlocks_it():
    r = run("gemm", *UNRECORDED)
    assert_usage_error(r)
    assert r.stderr.startswith("Error: --slices: cuBLASLt's split of (128, 160, 8192)")
    assert "pass --slices N" in r.stderr and "slices=" not in r.stderr
    assert _json(*UNRECORDED, "--slices", "2")["slices"] == 2


@pytest.mark.parametrize("args, words", [
    (["--kernel", "triton", "--slices", "2"], "--slices: kernel triton never splits K"),
    (["--kernel", "torch-rowwise", "--slices", "2", "--scale-a", "1", "--scale-b", "1"],
     "--slices: kernel torch-rowwise never splits K"),
    (["--slices", "2"], "--slices: applies to --kernel runs"),
    (["--gpu", "H200"], "--gpu: applies to --kernel runs"),
    (["--recipe", "deepseek-v3", "--slices", "2"], "--slices: applies to --kernel runs"),
    (["--kernel", "cublaslt", "--slices", "0"], "'--slices'"),
    (["--kernel", "cublaslt", "--gpu", "A100"], "'--gpu'"),
])
def test_bad_split_options_are_one_line(args, words):
    r = run("gemm", "--m", "8", "--n", "8", "--k", "256", *args)
    assert_usage_error(r)
    assert words in r.stderr
