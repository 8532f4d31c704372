"""fp8sim.identify: recovers each captured kernel's promotion interval from its outputs alone.

The committed cases (tests/data/identify_cases.npz, whole H100 captures: one per format
pair, and the per-tensor / row-wise scaled case) always run; every capture with
K <= 4096 in ../shared/golden and the long-K cuBLASLt outputs run when it is there.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DATA, SHARED_GOLDEN

import fp8sim
from fp8sim.analysis.identify import identify, promote_candidates
from fp8sim.capture.golden import known_unexplained, load_cases, output_spec
from fp8sim.cli.oracle import identify_cmd
from fp8sim.engine.mma import HOPPER

CASES = DATA / "identify_cases.npz"
GOLDEN_FILES = ["gemm_public0", "gemm_public1", "special", "extra_public"]


def _spec(case, name):
    """(true promote, identify keywords) of a captured output: its C, scales, out_dtype."""
    kw = output_spec(case, name)
    true = kw.pop("promote")
    kw.pop("preset")
    return true, kw


def _check_recovers(case, name):
    true, kw = _spec(case, name)
    r = identify(case.a, case.b, case.arrays[name], **kw)
    assert r["match"] == 1.0 and r["explained"], f"{case.key}/{name}: {r['note']}"
    if true < case.k:
        assert r["promote"] == true, f"{case.key}/{name}: {r['note']}"
        if true:
            assert r["equivalent"] == [r["label"]], r["note"]
    else:  # promoting once at the end differs from never only in the sign of zero
        assert r["promote"] == 0 and any("(once)" in lab for lab in r["equivalent"])
    return r


def _cases(path):
    return [pytest.param(c, id=c.key) for c in load_cases(path)] if path.exists() else []


@pytest.mark.parametrize("case", _cases(CASES))
def test_committed_cases(case):
    names = [n for n in case.outputs if output_spec(case, n) is not None]
    assert names
    for name in names:
        _check_recovers(case, name)


def test_committed_cases_cover_every_family():
    """cuBLASLt fast/slow (f32, bf16, f16, scaled), row-wise, Triton p0..p512, group scales."""
    names = {n for c in load_cases(CASES) for n in c.outputs}
    for want in ["cublas_fast_f32", "cublas_slow_f32", "cublas_fast_bf16", "cublas_slow_bf16",
                 "cublas_fast_f16_scaled", "rowwise_slow_bf16", "triton_p0", "triton_p512",
                 "triton_scaled_p128"]:
        assert want in names
    pairs = {c.key.split("/")[0] for c in load_cases(CASES)}
    assert pairs == {"e4m3_e4m3", "e4m3_e5m2", "e5m2_e4m3", "e5m2_e5m2"}
    assert CASES.stat().st_size < 1_000_000


def test_cublas_fast_is_0_and_slow_is_128():
    case = next(c for c in load_cases(CASES) if c.key == "e4m3_e4m3/normal/K1024")
    assert _check_recovers(case, "cublas_fast_f32")["promote"] == 0
    assert _check_recovers(case, "cublas_slow_f32")["promote"] == 128
    assert _check_recovers(case, "cublas_slow_bf16")["promote"] == 128


@pytest.mark.golden
@pytest.mark.parametrize("path", [SHARED_GOLDEN / f"{f}.npz" for f in GOLDEN_FILES],
                         ids=GOLDEN_FILES)
def test_full_golden(path):
    """Every output of every capture with K <= 4096 (771 outputs, a few seconds)."""
    count = 0
    for case in load_cases(path):
        for name in case.outputs:
            if output_spec(case, name) is not None and not known_unexplained(case, name):
                _check_recovers(case, name)
                count += 1
    assert count > 0


@pytest.mark.golden
@pytest.mark.parametrize("name", ["cublas_slow_f32", "triton_p0", "triton_p128"])
def test_long_k_explained(name):
    case = load_cases(SHARED_GOLDEN / "longk_public0.npz")[0]
    assert case.k == 16384
    _check_recovers(case, name)


@pytest.mark.golden
def test_long_k_cublas_fast_is_not_explained():
    """cuBLASLt fast accumulation at K = 16384 splits K: no single chain explains it, and
    the default (promotion-only) search says so rather than pretend."""
    case = load_cases(SHARED_GOLDEN / "longk_public0.npz")[0]
    assert case.k == 16384
    _, kw = _spec(case, "cublas_fast_f32")
    r = identify(case.a, case.b, case.arrays["cublas_fast_f32"], **kw)
    assert r["match"] < 1.0 and not r["explained"]
    assert r["note"].startswith("no candidate reproduces the output")
    promotes = {c["promote"] for c in r["candidates"]}
    assert {0, 128, 256, 1024, 16384} <= promotes  # what was tried is in the result
    assert r["tried"] == len(r["candidates"]) == len(promote_candidates(case.k))


LONG_K = [("longk_public0", 16384, 6), ("longk_public1", 16384, 6),
          ("longk_public0", 65536, 22), ("longk_public1", 65536, 22)]


def _check_split_found(path, k, slices):
    case = next(c for c in load_cases(path) if c.k == k)
    r = identify(case.a, case.b, case.arrays["cublas_fast_f32"], a_format=case.a_format,
                 b_format=case.b_format, search="split")
    assert r["explained"] and r["equivalent"] == [r["label"]], r["note"]
    assert (r["promote"], r["slices"]) == ({16384: 2816, 65536: 3072}[k], slices)
    assert r["label"] == f"hopper p{r['promote']} (split-K, {slices} slices)"


@pytest.mark.parametrize(("fname", "k", "slices"), LONG_K)
def test_split_search_finds_cublas_fast_split_k_committed(fname, k, slices):
    """cuBLASLt fast accumulation at long K is split-K, i.e. promotion every slice length
    (K = 16384: 6 slices of 2816); found even from the committed crops (16 or 4 outputs)."""
    _check_split_found(DATA / "golden" / f"{fname}.npz", k, slices)


@pytest.mark.golden
@pytest.mark.parametrize(("fname", "k", "slices"), LONG_K)
def test_split_search_finds_cublas_fast_split_k(fname, k, slices):
    _check_split_found(SHARED_GOLDEN / f"{fname}.npz", k, slices)


def _random_case(m=16, k=512, n=64, seed=0):
    rng = np.random.default_rng(seed)
    a = fp8sim.encode(rng.standard_normal((m, k)).astype(np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((k, n)).astype(np.float32), "e5m2")
    return a, b


@pytest.mark.parametrize(("frac_bits", "terms", "promote"),
                         [(12, 16, 256), (16, 32, 0), (20, 64, 128), (11, 8, 96), (23, 32, 384)])
def test_full_search_recovers_the_step(frac_bits, terms, promote):
    a, b = _random_case(m=32, k=1024)
    step = HOPPER.replace(frac_bits=frac_bits, terms=terms)
    d = fp8sim.gemm(a, b, b_format="e5m2", promote=promote, preset=step)
    r = identify(a, b, d, b_format="e5m2", search="full")
    assert r["explained"], r["note"]
    assert (r["frac_bits"], r["terms"], r["promote"]) == (frac_bits, terms, promote)
    assert r["tried"] > 1000


@pytest.mark.parametrize("preset", ["ideal", "exact"])
def test_full_search_names_other_presets(preset):
    a, b = _random_case()
    d = fp8sim.gemm(a, b, b_format="e5m2", preset=preset)
    r = identify(a, b, d, b_format="e5m2", search="full")
    assert r["explained"] and r["preset"] == preset and r["promote"] == 0


def test_promote_search_does_not_pretend():
    """An output no hopper recipe made: best match below 1, explained False, all tried listed."""
    a, b = _random_case()
    d = fp8sim.gemm(a, b, b_format="e5m2", preset="ideal")
    r = identify(a, b, d, b_format="e5m2")
    assert not r["explained"] and r["match"] < 1.0
    assert r["candidates"] == sorted(r["candidates"], key=lambda c: (c["rows"] != 16,
                                                                      -c["match"]))
    assert "no candidate reproduces" in r["note"]


def test_large_output_scores_a_row_subset_then_confirms():
    a, b = _random_case(m=256, k=1024)
    d = fp8sim.gemm(a, b, b_format="e5m2", promote=256)
    r = identify(a, b, d, b_format="e5m2")
    assert r["promote"] == 256 and r["match"] == 1.0
    rows = {c["rows"] for c in r["candidates"]}
    assert rows == {8, 256}  # 512 sampled outputs = 8 rows of 64; the best on all 256
    assert r["candidates"][0]["rows"] == 256


def test_one_wrong_element_is_reported_not_rounded_up():
    a, b = _random_case()
    d = fp8sim.gemm(a, b, b_format="e5m2", promote=128)
    d.view(np.uint32)[3, 5] ^= 1
    r = identify(a, b, d, b_format="e5m2")
    assert r["promote"] == 128 and not r["explained"]
    assert r["match"] == 1 - 1 / d.size


@pytest.mark.parametrize("out", ["bfloat16", "float16"])
def test_16_bit_outputs(out):
    a, b = _random_case()
    d = fp8sim.gemm(a, b, b_format="e5m2", promote=64, out_dtype=out)
    assert identify(a, b, d, b_format="e5m2")["promote"] == 64
    bits = d.view(np.uint16)
    r = identify(a, b, bits, b_format="e5m2", out_dtype=out)
    assert r["promote"] == 64 and r["out_dtype"] == out


def test_ml_dtypes_inputs_and_explicit_promotes():
    a, b = _random_case()
    d = fp8sim.gemm(a, b, b_format="e5m2", promote=192)
    r = identify(a.view(ml_dtypes.float8_e4m3fn), b.view(ml_dtypes.float8_e5m2), d,
                 promotes=[0, 192, 384])
    assert r["promote"] == 192 and r["tried"] == 3


def test_group_scales_limit_the_intervals():
    a, b = _random_case(k=512)
    rng = np.random.default_rng(3)
    sa = rng.uniform(0.5, 2, (16, 4)).astype(np.float32)
    sb = rng.uniform(0.5, 2, (4, 1)).astype(np.float32)
    d = fp8sim.gemm(a, b, b_format="e5m2", promote=128, scale_a=sa, scale_b=sb)
    r = identify(a, b, d, b_format="e5m2", scale_a=sa, scale_b=sb, scaling="group")
    assert r["promote"] == 128 and r["explained"]
    assert all(-(-512 // c["promote"]) == 4 for c in r["candidates"])


def test_promote_candidates():
    assert promote_candidates(32) == [(0, False), (32, True)]
    assert promote_candidates(100) == [(0, False), (32, False), (64, False), (96, False),
                                       (128, True)]
    p = [v for v, _ in promote_candidates(16384)]
    assert p[:3] == [0, 32, 64] and 1024 in p and 1056 not in p
    assert p[-4:] == [2048, 4096, 8192, 16384]
    assert all(v % 64 == 0 for v, _ in promote_candidates(4096, terms=64))


@pytest.mark.parametrize(("kwargs", "exc", "start"), [
    ({"d": np.zeros((3, 3), np.float32)}, ValueError, "d:"),
    ({"d": np.zeros((16, 64), np.float64)}, TypeError, "d:"),
    ({"d": np.zeros((16, 64), np.uint16)}, ValueError, "d:"),
    ({"search": "everything"}, ValueError, "search:"),
    ({"promotes": [0, 48]}, ValueError, "promotes:"),
    ({"promotes": "x"}, TypeError, "promotes:"),
    ({"a_format": "e3m4"}, ValueError, "a_format:"),
    ({"preset": "volta"}, ValueError, "preset:"),
    ({"sample_elements": 0}, ValueError, "sample_elements:"),
    ({"out_dtype": "float64"}, ValueError, "out_dtype:"),
])
def test_bad_arguments_name_themselves(kwargs, exc, start):
    a, b = _random_case()
    kw = {"d": np.zeros((16, 64), np.float32), "b_format": "e5m2"} | kwargs
    with pytest.raises(exc) as info:
        identify(a, b, **kw)
    assert str(info.value).startswith(start)


def test_fp8sim_identify_is_callable_after_importing_its_module():
    """Importing the module must not shadow the function `fp8sim.identify`."""
    a, b = _random_case()
    d = fp8sim.gemm(a, b, b_format="e5m2", promote=32)
    importlib.import_module("fp8sim.analysis.identify")
    assert fp8sim.identify(a, b, d, b_format="e5m2")["promote"] == 32


def test_torch_is_not_imported():
    code = ("import sys, fp8sim.analysis.identify, fp8sim.analysis.oracle; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- CLI ---------------------------------------------------------------------------------

def test_cli_plain_file(tmp_path):
    a, b = _random_case()
    d = fp8sim.gemm(a, b, b_format="e5m2", promote=256)
    path = tmp_path / "kernel.npz"
    np.savez(path, A=a, B=b, D=d)
    res = CliRunner().invoke(identify_cmd, [str(path), "--b-format", "e5m2", "--top", "3"])
    assert res.exit_code == 0, res.output
    assert "explained: hopper p256 reproduces all 1024 outputs" in res.output
    assert "more (--top 0 shows all)" in res.output


def test_cli_capture_key_json():
    res = CliRunner().invoke(identify_cmd, [str(CASES), "--key",
                                            "e4m3_e4m3/normal/K1024/cublas_slow_bf16", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["promote"] == 128 and out["match"] == 1.0 and out["out_dtype"] == "bfloat16"
    assert out["output"] == "e4m3_e4m3/normal/K1024/cublas_slow_bf16"


def test_cli_whole_case():
    res = CliRunner().invoke(identify_cmd, [str(CASES), "--key", "e4m3_e4m3/normal/K256",
                                            "--json"])
    assert res.exit_code == 0, res.output
    out = {r["output"].rsplit("/", 1)[1]: r["promote"] for r in json.loads(res.output)}
    assert out == {"cublas_fast_f32_scaled": 0, "cublas_fast_bf16_scaled": 0,
                   "cublas_fast_f16_scaled": 0, "cublas_slow_f32_scaled": 128,
                   "cublas_slow_bf16_scaled": 128, "cublas_slow_f16_scaled": 128,
                   "rowwise_fast_bf16": 0, "rowwise_slow_bf16": 128}


@pytest.mark.parametrize("args", [
    ["missing.npz"],
    [str(CASES)],
    [str(CASES), "--key", "e4m3_e4m3/normal/K1024/nothing"],
    [str(CASES), "--search", "everything"],
    [str(CASES), "--key", "e4m3_e4m3/normal/K1024/triton_p0", "--promotes", "0,48"],
    [str(CASES), "--key", "e4m3_e4m3/normal/K1024/triton_p0", "--out-dtype", "bfloat16"],
])
def test_cli_errors_exit_2_with_one_line(args):
    res = CliRunner().invoke(identify_cmd, args)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output


def _thirdparty_subproblem(case: str, family: str):
    """(a, b, d, scale_a, scale_b) of the committed crop where the scales stay whole: the
    kept rows, and the kept columns of the first 128-column block (every kept column for
    128x1 scales)."""
    with np.load(DATA / "thirdparty_gemm.npz") as z:
        rows, cols = z[case + "/rows"], z[case + "/cols"]
        sb = z[case + "/scale_b"]
        column = sb.shape[1] == int(z[case + "/orig_shape"][1]) and sb.shape[1] > 1
        keep = np.ones(cols.size, bool) if column else cols < 128
        sb = sb[:, cols[keep]] if column else sb[:, :1]
        return (z[case + "/A"], np.ascontiguousarray(z[case + "/B"][:, keep]),
                np.ascontiguousarray(z[f"{case}/{family}_f32"][:, keep]),
                z[case + "/scale_a"][rows], np.ascontiguousarray(sb))


@pytest.mark.parametrize("case", ["gemm/64x256x1024/normal", "gemm/128x128x512/outlier",
                                  "gemm/64x256x1024/wgrad"])
@pytest.mark.parametrize("family", ["cublas", "triton"])
def test_identify_names_the_blockwise_epilogue(case, family):
    """From the H200 outputs alone: cuBLASLt fma(p, fl(sa*sb), acc), torchao's Triton
    fma(fl(p*sa), sb, acc), and both fma(fl(p*sa), sb[g, j], acc) for 128x1 scales."""
    a, b, d, sa, sb = _thirdparty_subproblem(case, family)
    r = identify(a, b, d.view(np.float32), scale_a=sa, scale_b=sb, search="split")
    want = "group-column" if case.endswith("wgrad") else {"cublas": "group",
                                                         "triton": "group-a-first"}[family]
    assert r["explained"] and r["epilogue"] == want and r["promote"] == 128, r["note"]
    assert r["slices"] == 0 and r["equivalent"] == [r["label"]], r["note"]
    assert r["tried"] > 6  # every order and fusion, and the split-K slice counts


@pytest.mark.parametrize(("scaling", "slices"), [("group-a-first", 3), ("group", 6),
                                                 ("group-column", 2)])
def test_identify_finds_the_split_of_a_scaled_kernel(scaling, slices):
    from fp8sim.engine.splitk import gemm_split_k
    rng = np.random.default_rng(slices)
    m, k, n = 8, 2048, 136
    a = fp8sim.encode(rng.standard_normal((m, k)).astype(np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((k, n)).astype(np.float32), "e4m3")
    sa = rng.uniform(0.5, 2, (m, 16)).astype(np.float32)
    sb = rng.uniform(0.5, 2, (16, n if scaling == "group-column" else 2)).astype(np.float32)
    d = gemm_split_k(a, b, slices=slices, promote=128, scale_a=sa, scale_b=sb, scaling=scaling)
    r = identify(a, b, d, scale_a=sa, scale_b=sb, search="split")
    assert r["explained"] and r["slices"] == slices and r["epilogue"] == scaling, r["note"]
    assert r["equivalent"] == [r["label"]]
    plain = identify(a, b, d, scale_a=sa, scale_b=sb)
    assert not plain["explained"] and plain["slices"] == 0


def test_identify_with_a_fixed_epilogue_tries_only_it():
    a, b = _random_case(k=512)
    rng = np.random.default_rng(4)
    sa = rng.uniform(0.5, 2, (16, 4)).astype(np.float32)
    sb = rng.uniform(0.5, 2, (4, 1)).astype(np.float32)
    d = fp8sim.gemm(a, b, b_format="e5m2", promote=128, scale_a=sa, scale_b=sb,
                    scaling="group-a-first")
    fixed = identify(a, b, d, b_format="e5m2", scale_a=sa, scale_b=sb, scaling="group")
    assert not fixed["explained"] and {c["epilogue"] for c in fixed["candidates"]} == {"group"}
    free = identify(a, b, d, b_format="e5m2", scale_a=sa, scale_b=sb)
    assert free["explained"] and free["epilogue"] == "group-a-first"
    assert free["formula"] == "acc = fma(fl(p*sa), sb, acc) at each promotion"


@pytest.mark.golden
def test_identify_on_the_full_thirdparty_capture():
    """Every float32 GEMM output of thirdparty_public_a.npz: the epilogue, no split."""
    path = SHARED_GOLDEN / "thirdparty_public_a.npz"
    with np.load(path) as z:
        cases = sorted({k.rsplit("/", 1)[0] for k in z.files if k.startswith("gemm/")})
        for case in cases:
            for family, name in (("cublas", "group"), ("triton", "group-a-first")):
                if case.endswith("wgrad"):
                    name = "group-column"
                r = identify(z[case + "/A"], z[case + "/B"], z[f"{case}/{family}_f32"],
                             out_dtype="float32", scale_a=z[case + "/scale_a"],
                             scale_b=z[case + "/scale_b"], search="split")
                assert r["explained"] and r["epilogue"] == name and r["slices"] == 0, r["note"]
                assert r["equivalent"] == [r["label"]]
