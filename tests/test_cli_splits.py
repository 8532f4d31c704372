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


# --- fp8sim splits ------------------------------------------------------------------


def test_splits_lists_the_recorded_ranges_and_boundaries():
    """N = 128, K = 16384 on the H100: the text is invariance_text's, the JSON the ranges
    of fp8sim.splits, and every M's count is the kernel's own choice."""
    from fp8sim.engine.cublaslt_splits import invariance_text
    from fp8sim.engine.split_choice import split_choice

    r = run("splits", "--kernel", "cublaslt", "--n", "128", "--k", "16384",
            "--m-max", "2048")
    assert r.exit_code == 0, r.stderr
    want = invariance_text("cublaslt", 128, 16384, "H100", 2048)
    assert r.output.strip() == want.replace("(pass slices=)", "(fp8sim gemm --slices N runs one)")
    assert "M 1-48: 6 slices" in r.output and "M 1024-2048: 1 slice (no split)" in r.output
    r = run("splits", "--kernel", "cublaslt", "--n", "128", "--k", "16384",
            "--m-max", "2048", "--json")
    got = json.loads(r.output)
    ranges = [(d["m_lo"], d["m_hi"], d["slices"]) for d in got["ranges"]]
    assert ranges == fp8sim.splits("cublaslt", 128, 16384, m_max=2048)
    assert got["changes_at"] == [lo for lo, _, _ in ranges[1:]]
    assert got["batch_invariant"] is False and got["library"]["cublaslt_version"] == 130100
    for lo, hi, s in ranges:
        for m in {lo, (lo + hi) // 2, hi}:
            assert split_choice("cublaslt", m, 128, 16384)[0] == s


def test_ranges_tile_one_to_m_max():
    ranges = fp8sim.splits("cublaslt", 256, 65536, m_max=3000)
    assert ranges[0][0] == 1 and ranges[-1][1] == 3000
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(a[2] != b[2] for a, b in zip(ranges, ranges[1:], strict=False))


@pytest.mark.parametrize("kernel", ["deepgemm", "triton", "torchao-triton-blockwise"])
def test_kernels_that_never_split_print_one_range(kernel):
    r = run("splits", "--kernel", kernel, "--n", "7168", "--k", "16384")
    assert r.exit_code == 0, r.stderr
    assert "M 1-65536: 1 slice (no split)" in r.output
    assert "rows keep their bits at any batch size" in r.output
    got = json.loads(run("splits", "--kernel", kernel, "--n", "8", "--k", "8", "--json").output)
    assert got["ranges"] == [{"m_lo": 1, "m_hi": 65536, "slices": 1}]
    assert got["batch_invariant"] is True and got["library"] is None


def test_row_wise_scaling_is_batch_invariant():
    got = json.loads(run("splits", "--kernel", "torch-rowwise-fast", "--n", "128", "--k",
                         "131072", "--json").output)
    assert got["ranges"] == [{"m_lo": 1, "m_hi": 65536, "slices": 1}]


def test_a_range_never_recorded_does_not_claim_invariance():
    r = run("splits", "--kernel", "cublaslt", "--n", "17", "--k", "131072", "--m-max", "16")
    assert "M 1-16: not recorded" in r.output and "any batch size" not in r.output
    got = json.loads(run("splits", "--kernel", "cublaslt", "--n", "17", "--k", "131072",
                         "--m-max", "16", "--json").output)
    assert got["batch_invariant"] is None


@pytest.mark.parametrize("args, words", [
    (["--kernel", "nope", "--n", "8", "--k", "8"], "--kernel: unknown kernel 'nope'"),
    (["--kernel", "cublaslt", "--n", "0", "--k", "8"], "--n: expected a positive int"),
    (["--kernel", "deepgemm", "--n", "8", "--k", "-1"], "--k: expected a positive int"),
    (["--kernel", "cublaslt", "--n", "8", "--k", "999999"], "--k: 999999 is outside the "
                                                             "recorded range"),
    (["--kernel", "cublaslt", "--n", "50000", "--k", "16384"], "--n: 50000 is outside"),
    (["--kernel", "cublaslt", "--n", "8", "--k", "8", "--gpu", "A100"], "'--gpu'"),
    (["--kernel", "cublaslt", "--n", "8", "--k", "8", "--m-max", "0"], "--m-max:"),
    (["--kernel", "triton", "--n", "8", "--k", "8", "--m-max", "70000"], "--m-max:"),
    (["--n", "8", "--k", "8"], "--kernel"),
])
def test_splits_bad_input_is_one_line(args, words):
    r = run("splits", *args)
    assert_usage_error(r)
    assert words in r.stderr and "slices=" not in r.stderr


def test_splits_function_names_bad_arguments():
    with pytest.raises(ValueError, match="^gpu:"):
        fp8sim.splits("cublaslt", 8, 8, gpu="A100")
    with pytest.raises(ValueError, match="^n:"):
        fp8sim.splits("deepgemm", 0, 8)
    with pytest.raises(ValueError, match="^kernel:"):
        fp8sim.splits("nope", 8, 8)
