"""Bad input at the command line (issue 19): every wrong option or file is one line on
stderr and exit status 2, NaN statistics are NaN, --out is checked before computing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import TINY, assert_usage_error
from cli_helpers import invoke as run

# --------------------------------------------------------------------------- issue 19: bad input

def test_frac_bits_out_of_range_names_the_option_and_range():
    r = run("gemm", *TINY, "--frac-bits", "100")
    assert_usage_error(r)
    assert "--frac-bits" in r.stderr and "0<=x<=28" in r.stderr


def test_a_decimal_scale_is_used_as_float32_and_said_so():
    r = run("gemm", *TINY, "--kernel", "cublaslt", "--scale-a", "0.1", "--scale-b", "1")
    assert r.exit_code == 0, r.stderr
    assert "--scale-a 0.1 is not a float32 number; used float32 0.10000000149011612" in r.output
    assert "--scale-b" not in r.output  # 1 is a float32: nothing to say
    r = run("gemm", *TINY, "--kernel", "cublaslt", "--scale-a", "0.1", "--scale-b", "1",
            "--json")
    row = json.loads(r.output)
    assert row["scale_a"] == float(np.float32(0.1)) and row["scale_b"] == 1.0


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_scales_are_taken_as_the_api_takes_them(value):
    r = run("gemm", *TINY, "--kernel", "cublaslt", "--scale-a", value, "--scale-b", "1",
            "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.output)
    assert row["nonfinite_outputs"] == 64
    assert row["max_rel_error"] is None and row["fro_rel_error"] is None  # nan, never 0.0


@pytest.mark.parametrize("value, words", [("1e39", "beyond float32's range"),
                                          ("abc", "expected a number")])
def test_bad_scale_numbers_are_one_line(value, words):
    r = run("gemm", *TINY, "--kernel", "cublaslt", "--scale-a", value, "--scale-b", "1")
    assert_usage_error(r)
    assert r.stderr.startswith("Error: --scale-a: ") and words in r.stderr


def test_all_nan_outputs_report_nan_statistics_without_warnings(tmp_path):
    """e5m2 Inf times zeros: every output NaN; numpy warnings would fail (filterwarnings)."""
    np.save(tmp_path / "A.npy", np.full((4, 64), 0x7C, np.uint8))  # e5m2 +Inf
    np.save(tmp_path / "B.npy", np.zeros((64, 4), np.uint8))
    args = ("gemm", "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy"),
            "--a-format", "e5m2")
    r = run(*args, "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.output)
    assert row["nonfinite_outputs"] == row["outputs"] == 16
    for key in ("max_rel_error", "mean_rel_error", "median_rel_error", "fro_rel_error",
                "max_ulp_error", "ideal_max_rel_error"):
        assert row[key] is None, key
    r = run(*args)
    assert "rel error max nan" in r.output and "nonfinite 16 outputs" in r.output


def test_error_statistics_of_nothing_are_nan():
    from fp8sim.analysis.stats import error_stats, normwise_error

    nan = np.full(3, np.nan)
    s = error_stats(nan, np.ones(3))
    assert all(np.isnan(s[k]) for k in ("max_rel_error", "mean_rel_error", "max_abs_error",
                                        "max_ulp_error"))
    assert np.isnan(normwise_error(nan, np.ones(3)))
    assert normwise_error(np.zeros(2), np.zeros(2)) == 0.0
    assert normwise_error(np.ones(2), np.zeros(2)) == np.inf
    assert normwise_error([3.0, np.inf], [4.0, 1.0]) == 0.25  # finite outputs only
    assert normwise_error([1.0], [2.0], relative_to=[4.0]) == 0.25


@pytest.mark.parametrize("where", ["file/D.npy", "folder"])
def test_an_unwritable_out_is_refused_before_computing(tmp_path, monkeypatch, where):
    import fp8sim.cli.gemm as cli

    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "folder.npy").mkdir()
    out = tmp_path / ("file/D.npy" if where.startswith("file") else "folder.npy")
    monkeypatch.setattr(cli, "gemm_stats", lambda *a, **k: pytest.fail("computed"))
    r = run("gemm", *TINY, "--out", str(out))
    assert_usage_error(r)
    assert r.stderr.startswith("Error: --out: ")


def test_sweep_refuses_an_unwritable_out_before_computing(tmp_path, monkeypatch):
    import fp8sim.cli.sweep as cli

    (tmp_path / "file").write_text("a file, not a folder")
    monkeypatch.setattr(cli, "sweep_point", lambda *a, **k: pytest.fail("computed"))
    r = run("sweep", "--k-values", "64", "--m", "2", "--n", "2", "--out",
            str(tmp_path / "file" / "s"))
    assert_usage_error(r)
    assert r.stderr.startswith("Error: --out: ")


def test_the_memory_refusal_counts_outputs_not_bytes():
    r = run("gemm", "--m", "1000000", "--n", "1000000", "--k", "64")
    assert_usage_error(r)
    assert "1.0e+12 outputs" in r.stderr and "TB outputs" not in r.stderr


@pytest.mark.parametrize("terminal", [False, True])
def test_sweep_says_where_it_connects_and_fails_in_one_line(tmp_path, monkeypatch, terminal):
    """An unreachable scheduler: one error line naming it; at a terminal, a status line
    before the wait says where it connects and when it gives up."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    from fp8sim.cli import sweep

    monkeypatch.setattr(sweep, "_at_terminal", lambda: terminal)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        r = run("sweep", "--k-values", "64", "--m", "2", "--n", "2", "--out",
                str(tmp_path / "s"), "--scheduler", "tcp://127.0.0.1:9")
    assert r.exit_code == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    if terminal:
        assert lines.pop(0) == (
            "fp8sim sweep: connecting to the Dask scheduler tcp://127.0.0.1:9 (gives up "
            "after 1s; DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT changes it) ...")
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--scheduler" in lines[0]
    assert "tcp://127.0.0.1:9" in lines[0]


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A folder of good and bad input files, as the working directory."""
    monkeypatch.chdir(tmp_path)
    save = np.save
    save("A.npy", np.full((8, 256), 0x38, np.uint8))
    save("B.npy", np.full((256, 8), 0x38, np.uint8))
    save("A3.npy", np.zeros((2, 8, 256), np.uint8))
    save("Ai.npy", np.zeros((8, 256), np.int32))
    save("Ac.npy", np.zeros((8, 256), np.complex64))
    save("E.npy", np.zeros((0, 256), np.uint8))
    save("S.npy", np.ones((3, 5), np.float32))
    save("SA.npy", np.ones((8, 2), np.float32))
    save("SB.npy", np.ones((2, 1), np.float32))
    (tmp_path / "text.npy").write_text("not an array")
    return tmp_path


@pytest.mark.parametrize("args, option", [
    (TINY + ["--kernel", "nosuch"], "--kernel"),
    (TINY + ["--kernel", "deepgemm"], "--scale-a"),  # a scaled kernel without scales
    (TINY + ["--a-format", "e3m4"], "--a-format"),
    (TINY + ["--promote", "48"], "--promote"),
    (TINY + ["--promote", "-32"], "--promote"),
    (["--m", "0"], "--m"),
    (["--k", "-1"], "--k"),
    (TINY + ["--preset", "nope"], "--preset"),
    (TINY + ["--recipe", "nope"], "--recipe"),
    (["--a", "nope.npy", "--b", "B.npy"], "--a"),
    (["--a", "text.npy", "--b", "B.npy"], "--a"),
    (["--a", ".", "--b", "B.npy"], "--a"),
    (["--a", "A3.npy", "--b", "B.npy"], "--a"),
    (["--a", "Ai.npy", "--b", "B.npy"], "--a"),
    (["--a", "Ac.npy", "--b", "B.npy"], "--a"),
    (["--a", "E.npy", "--b", "B.npy"], "--a"),
    (["--a", "A.npy", "--b", "A.npy"], "--b"),
    (["--a", "A.npy", "--b", "B.npy", "--kernel", "deepgemm", "--scale-a", "S.npy",
      "--scale-b", "SB.npy"], "--scale-a"),
    (["--a", "A.npy", "--b", "B.npy", "--kernel", "deepgemm", "--scale-a", "SA.npy",
      "--scale-b", "S.npy"], "--scale-b"),
    (["--a", "A.npy", "--b", "B.npy", "--scale-a", "S.npy", "--scale-b", "S.npy"],
     "--scale-a"),
    (["--a", "A.npy", "--b", "B.npy", "--scale-a", "nope.npy", "--scale-b", "1"], "--scale-a"),
])
def test_a_new_users_wrong_inputs_are_one_line_naming_the_option(files, args, option):
    r = run("gemm", *args)
    assert_usage_error(r)
    line = r.stderr.strip()
    assert line.startswith(f"Error: {option}") or f"'{option}'" in line, line


def test_gemm_refuses_an_out_that_is_an_input_and_options_the_files_replace(tmp_path):
    """--out A.npy would replace A with D; --m beside --a/--b would be ignored: exit 2."""
    a, b = tmp_path / "A.npy", tmp_path / "B.npy"
    np.save(a, np.full((8, 64), 0x38, np.uint8))
    np.save(b, np.full((64, 8), 0x38, np.uint8))
    before = a.read_bytes()
    r = run("gemm", "--a", str(a), "--b", str(b), "--out", str(a))
    assert_usage_error(r)
    assert "is an input file" in r.stderr and a.read_bytes() == before
    for option, value in (("--m", "16"), ("--k", "64"), ("--seed", "3"), ("--dist", "normal")):
        r = run("gemm", "--a", str(a), "--b", str(b), option, value)
        assert_usage_error(r)
        assert r.stderr.startswith(f"Error: {option}: --a and --b give the data"), r.stderr


def test_gemm_says_when_slices_cut_k_into_fewer_than_asked():
    r = run("gemm", "--m", "16", "--n", "16", "--k", "64", "--kernel", "cublaslt",
               "--slices", "2")
    assert r.exit_code == 0, r.stderr
    assert "--slices 2: K = 64 cuts into 1" in r.output


def test_sweep_refuses_an_empty_out_prefix():
    r = run("sweep", "--k-values", "64", "--m", "4", "--n", "4", "--out", "")
    assert_usage_error(r)
    assert "--out" in r.stderr


def test_identify_names_the_option_of_the_file_at_fault(tmp_path):
    np.save(tmp_path / "A.npy", np.full((8, 64), 0x38, np.uint8))
    np.save(tmp_path / "B32.npy", np.full((32, 8), 0x38, np.uint8))
    np.save(tmp_path / "D.npy", np.zeros((8, 8), np.float32))
    r = run("identify", "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B32.npy"),
            "--d", str(tmp_path / "D.npy"))
    assert_usage_error(r)
    assert r.stderr.startswith("Error: --b: B32.npy: expected shape (64, N)"), r.stderr


def test_file_options_say_what_the_path_is(tmp_path):
    np.save(tmp_path / "B.npy", np.full((64, 8), 0x38, np.uint8))
    for path, what in ((tmp_path, "is a folder"), ("/dev/null", "is not a regular file"),
                       (tmp_path / "none.npy", "no such file")):
        r = run("gemm", "--a", str(path), "--b", str(tmp_path / "B.npy"))
        assert_usage_error(r)
        assert r.stderr.startswith("Error: --a: ") and what in r.stderr, r.stderr


def test_identify_names_the_missing_array_and_decode_a_negative_code(tmp_path):
    np.savez(tmp_path / "case.npz", A=np.zeros((4, 32), np.uint8), B=np.zeros((32, 4), np.uint8))
    r = run("identify", str(tmp_path / "case.npz"))
    assert_usage_error(r)
    assert "has no D array" in r.stderr
    r = run("decode", "-1")
    assert_usage_error(r)
    assert "expected 0..255" in r.stderr


def test_a_recipe_on_float_files_with_nan_names_the_file_option(tmp_path):
    x = np.ones((8, 128), np.float32)
    x[0, 0] = np.nan
    np.save(tmp_path / "A.npy", x)
    np.save(tmp_path / "B.npy", np.ones((128, 8), np.float32))
    r = run("gemm", "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy"),
            "--recipe", "deepseek-v3")
    assert_usage_error(r)
    assert r.stderr.startswith("Error: --a: the float data holds NaN or Inf"), r.stderr


def test_huge_requests_print_readable_sizes():
    from fp8sim._memory import format_bytes

    assert format_bytes(2.5e15) == "2.5 PB" and format_bytes(6.4e18) == "6.4 EB"
    assert format_bytes(9e24) == "9e+06 EB"
