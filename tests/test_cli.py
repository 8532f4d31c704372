"""The fp8sim CLI: output formats, every argument error (exit 2, one stderr line), sweep files."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from cli_helpers import TINY, assert_usage_error
from cli_helpers import invoke as run

import fp8sim
from fp8sim.analysis.studies import gemm_stats, random_case, random_codes
from fp8sim.cli.app import main

REQUIRED = {"m", "n", "k", "promote", "a_format", "b_format", "max_rel_error",
            "mean_rel_error", "seconds"}


def test_gemm_text_summary():
    r = run("gemm", *TINY, "--promote", "128")
    assert r.exit_code == 0, r.stderr
    for word in ("M=8 N=8 K=256", "e4m3", "every 128", "hopper", "max", "median", "ULP",
                 "ideal", "time"):
        assert word in r.output


def test_gemm_json_has_contract_keys_and_matches_studies():
    r = run("gemm", *TINY, "--promote", "32", "--seed", "3", "--dist", "positive",
            "--a-format", "e5m2", "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.output)
    assert REQUIRED <= set(row)
    assert (row["m"], row["n"], row["k"], row["promote"]) == (8, 8, 256, 32)
    assert (row["a_format"], row["b_format"]) == ("e5m2", "e4m3")
    a, b = random_case(8, 8, 256, dist="positive", a_format="e5m2", seed=3)
    stats = gemm_stats(a, b, a_format="e5m2", promote=32)
    assert row["max_rel_error"] == stats["max_rel_error"]
    assert row["share_differs_from_ideal"] == stats["share_differs_from_ideal"]


def test_gemm_defaults_positive_data_and_normwise_error():
    r = run("gemm", *TINY, "--json")
    row = json.loads(r.output)
    assert (row["dist"], row["promote"], row["preset"], row["seed"]) == ("positive", 0, "hopper", 0)
    a, b = random_case(8, 8, 256, dist="positive")
    out = fp8sim.gemm(a, b)
    exact = fp8sim.decode(a, "e4m3").astype(np.float64) @ fp8sim.decode(b, "e4m3")
    assert row["fro_rel_error"] == pytest.approx(
        np.linalg.norm(out - exact) / np.linalg.norm(exact), rel=1e-12)
    assert 0 < row["fro_rel_error"] <= row["max_rel_error"]


def test_gemm_csv_header_and_one_row():
    r = run("gemm", *TINY, "--dist", "codes", "--csv")
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert len(rows) == 1 and REQUIRED <= set(rows[0])
    assert rows[0]["k"] == "256" and rows[0]["dist"] == "codes"


@pytest.mark.parametrize("preset", ["ideal", "exact", "blackwell"])
def test_gemm_presets(preset):
    r = run("gemm", *TINY, "--preset", preset, "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.output)
    assert row["preset"] == preset
    if preset == "ideal":
        assert row["share_differs_from_ideal"] == 0.0


def test_gemm_recipe():
    pytest.importorskip("fp8sim.recipes.pipeline")
    r = run("gemm", *TINY, "--recipe", "deepseek-v3", "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.output)
    assert row["recipe"] == "deepseek-v3" and row["promote"] == 128
    assert REQUIRED <= set(row)


@pytest.mark.parametrize("args", [
    ["--a-format", "e3m4"],
    ["--b-format", "fp16"],
    ["--promote", "100"],
    ["--promote", "-32"],
    ["--m", "0"],
    ["--n", "-4"],
    ["--k", "0"],
    ["--k", "ten"],
    ["--dist", "cauchy"],
    ["--preset", "volta"],
    ["--recipe", "nope"],
    ["--json", "--csv"],
    ["--seed", "-1"],
    ["--scale", "block"],
    ["--scale", "tensor", "--recipe", "deepseek-v3"],
    ["--frac-bits", "-1"],
    ["--frac-bits", "40"],
    ["--frac-bits", "29"],  # wider than the fast kernels model
    ["--frac-bits", "16", "--preset", "ideal"],
    ["--bogus"],
])
def test_gemm_usage_errors(args):
    assert_usage_error(run("gemm", *TINY, *args))


def test_recipe_errors_from_the_pipeline_are_usage_errors():
    pytest.importorskip("fp8sim.recipes.pipeline")
    # group scaling needs a promotion interval: fp8_matmul raises ValueError
    assert_usage_error(run("gemm", *TINY, "--recipe", "deepseek-v3", "--promote", "0"))


def test_recipe_without_pipeline_is_a_usage_error(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "fp8sim.recipes.pipeline", None)  # import raises ImportError
    assert_usage_error(run("gemm", *TINY, "--recipe", "deepseek-v3"))


def test_unknown_command_and_version():
    assert_usage_error(run("nosuchcommand"))
    r = run("--version")
    assert r.exit_code == 0 and fp8sim.__version__ in r.output


def test_sweep_writes_csv_and_png(tmp_path):
    out = tmp_path / "s"
    r = run("sweep", "--k-values", "64,128", "--m", "4", "--n", "4", "--promote", "0",
            "--promote", "32", "--dist", "normal", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s.csv").read_text())))
    assert len(rows) == 4
    assert {(row["k"], row["promote"]) for row in rows} == {
        ("64", "0"), ("128", "0"), ("64", "32"), ("128", "32")}
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_over_format_pairs_and_metric(tmp_path):
    r = run("sweep", "--k-values", "64", "--m", "4", "--n", "4", "--promote", "0",
            "--dist", "positive", "--a-format", "e4m3", "--a-format", "e5m2",
            "--b-format", "e5m2", "--metric", "fro_rel_error", "--out", str(tmp_path / "f"))
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "f.csv").read_text())))
    assert [row["formats"] for row in rows] == ["e4m3 x e5m2", "e5m2 x e5m2"]
    a, b = random_case(4, 4, 64, dist="positive", a_format="e5m2", b_format="e5m2")
    want = gemm_stats(a, b, a_format="e5m2", b_format="e5m2")["fro_rel_error"]
    assert float(rows[1]["fro_rel_error"]) == want
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_gemm_frac_bits_is_the_what_if_accumulator():
    r = run("gemm", *TINY, "--frac-bits", "20", "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.output)
    assert row["preset"] == "hopper[frac_bits=20]"
    a, b = random_case(8, 8, 256, dist="positive")
    want = gemm_stats(a, b, preset=fp8sim.engine.mma.HOPPER.replace(frac_bits=20))
    assert row["max_rel_error"] == want["max_rel_error"]
    assert row["max_rel_error"] < json.loads(run("gemm", *TINY, "--json").output)["max_rel_error"]


def test_sweep_against_the_promotion_interval(tmp_path):
    r = run("sweep", "--k-values", "256", "--m", "4", "--n", "4", "--promote", "0",
            "--promote", "32", "--promote", "128", "--dist", "positive", "--frac-bits", "16",
            "--out", str(tmp_path / "p"))
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "p.csv").read_text())))
    assert [row["promote"] for row in rows] == ["0", "32", "128"]
    assert {row["preset"] for row in rows} == {"hopper[frac_bits=16]"}
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args", [
    ["--k-values", "128,abc"],
    ["--k-values", "0,128"],
    ["--promote", "48"],
    ["--dist", "cauchy"],
    ["--seed", "-2"],
    ["--a-format", "e3m4"],
    ["--metric", "p99"],
    ["--scale", "block"],
    ["--x", "m"],
    ["--frac-bits", "16", "--preset", "exact"],
])
def test_sweep_usage_errors(args, tmp_path):
    assert_usage_error(run("sweep", "--m", "2", "--n", "2", "--out", str(tmp_path / "x"),
                           *args))


def test_sweep_creates_a_missing_output_folder(tmp_path):
    r = run("sweep", "--k-values", "64", "--m", "2", "--n", "2", "--out",
            str(tmp_path / "missing" / "x"))
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "missing" / "x.csv").exists() and (tmp_path / "missing" / "x.png").exists()


def test_gemm_help_defines_the_exact_product():
    text = " ".join(run("gemm", "--help").output.split())
    assert "exact product is the float64 product of the decoded FP8 inputs" in text


def test_gemm_tensor_scale_uses_the_fp8_range():
    r = run("gemm", *TINY, "--scale", "tensor", "--dist", "normal", "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.output)
    assert row["scale"] == "tensor"
    a, b = random_case(8, 8, 256, dist="normal", seed=0, scale="tensor")
    assert row["max_rel_error"] == gemm_stats(a, b)["max_rel_error"]
    assert "per-tensor scaled" in run("gemm", *TINY, "--scale", "tensor").output


def test_encode_shows_fields_neighbours_and_roundings():
    r = run("encode", "0.3", "-1.5", "1000", "--format", "e4m3")
    assert r.exit_code == 0, r.stderr
    out = r.output
    # 0.3 = 1.2 * 2**-2 -> 0x2a = 1.25 * 2**-2 = 0.3125 (nearest), toward zero 0x29
    assert "0x2a = 0b0_0101_010" in out and "0.3125" in out
    assert "TowardZero 0x29 (0.28125)" in out
    assert "below 0x29 (0.28125)" in out and "above 0x2b (0.34375)" in out
    assert "0xbc" in out  # -1.5
    assert "saturating (satfinite) 0x7e (448.0)" in out  # 1000 saturates
    assert "Stochastic" in out


def test_encode_e5m2_and_errors():
    r = run("encode", "inf", "--format", "e5m2")
    assert r.exit_code == 0 and "0x7c" in r.output
    assert_usage_error(run("encode", "abc"))
    assert_usage_error(run("encode", "1.0", "--format", "e3m4"))
    assert_usage_error(run("encode"))


def test_decode():
    r = run("decode", "0x7e", "126", "0b00000001", "--format", "e4m3")
    assert r.exit_code == 0, r.stderr
    assert r.output.count("448.0") >= 2
    assert "subnormal" in r.output and "0.001953125" in r.output
    assert "NaN" in run("decode", "0x7f").output
    assert "zero" in run("decode", "0x80").output
    assert_usage_error(run("decode", "256"))
    assert_usage_error(run("decode", "0xzz"))


def test_presets_lists_presets_and_kernels():
    r = run("presets")
    assert r.exit_code == 0
    for name in fp8sim.PRESETS:
        assert name in r.output
    assert "verified on H100" in r.output and "not verified" in r.output
    assert "deepgemm" in r.output


@pytest.mark.parametrize("command", ["gemm", "sweep", "encode", "decode", "presets", "splits"])
def test_help(command):
    r = run(command, "--help")
    assert r.exit_code == 0 and r.output.startswith("Usage:")


def test_optional_commands_registered():
    pytest.importorskip("fp8sim.cli.oracle")
    assert "identify" in main.commands
    r = run("identify", "--help")
    assert r.exit_code == 0 and "Usage" in r.output
    try:
        import fp8sim.cli.capture  # noqa: F401
    except ImportError:
        return
    assert {"capture", "verify"} <= set(main.commands)


@pytest.mark.parametrize("dist", ["normal", "positive", "uniform", "codes"])
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_random_codes_are_finite(dist, fmt):
    codes = random_codes((64, 64), fmt, dist, 0)
    assert codes.dtype == np.uint8 and codes.shape == (64, 64)
    assert np.isfinite(fp8sim.decode(codes, fmt)).all()
    if dist == "positive":
        assert (codes < 0x80).all()


def test_random_case_validates():
    with pytest.raises(ValueError, match="^k:"):
        random_case(2, 2, 0)
    with pytest.raises(ValueError, match="^dist:"):
        random_case(2, 2, 2, dist="cauchy")
    with pytest.raises(ValueError, match="^seed:"):
        random_case(2, 2, 2, seed=-1)
    with pytest.raises(ValueError, match="^scale:"):
        random_case(2, 2, 2, scale="block")


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("dist", ["normal", "positive", "uniform"])
def test_tensor_scale_maps_amax_to_the_format_max(fmt, dist):
    unit = random_codes((32, 48), fmt, dist, 5)
    scaled = random_codes((32, 48), fmt, dist, 5, scale="tensor")
    info = fp8sim.formats.info.format_info(fmt)
    values = np.abs(fp8sim.decode(scaled, fmt))
    assert values.max() == info.max
    # the same draw, scaled up: every sign is kept
    assert np.array_equal(np.signbit(fp8sim.decode(unit, fmt)),
                          np.signbit(fp8sim.decode(scaled, fmt)))


def test_gemm_json_is_strict_json_when_a_statistic_is_not_finite(monkeypatch):
    import fp8sim.cli.gemm as cli

    def stats_with_nan(*args, **kwargs):
        s = gemm_stats(*args, **kwargs)
        return s | {"max_rel_error": float("nan"), "fro_rel_error": float("inf")}

    monkeypatch.setattr(cli, "gemm_stats", stats_with_nan)
    r = run("gemm", *TINY, "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.output, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert row["max_rel_error"] is None and row["fro_rel_error"] is None


def test_out_of_memory_is_one_line_with_status_2(monkeypatch):
    import fp8sim.cli.gemm as cli

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(cli, "gemm_stats", no_memory)
    r = run("gemm", *TINY)
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == ["Error: out of memory (nothing was computed)"]


@pytest.mark.parametrize("x_axis, label", [("k", "K (elements summed)"),
                                           ("promote", "promotion interval")])
def test_sweep_plot_axes(x_axis, label):
    from fp8sim.cli.sweep import plot_sweep as _plot_sweep
    rows = [{"m": 4, "n": 4, "k": k, "promote": p, "dist": "positive", "formats": "e4m3 x e4m3",
             "preset": "hopper", "max_rel_error": 1e-3 * (1 + p + k)}
            for k in (64, 128) for p in (0, 32)]
    ax = _plot_sweep(rows, "max_rel_error", x_axis).axes[0]
    assert ax.get_xlabel().startswith(label)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_legend() is not None and ax.get_title()
