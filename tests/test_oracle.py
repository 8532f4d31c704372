"""fp8sim.oracle: a kernel output compared with fp8sim.gemm, bit for bit, and the report.

Outputs are made by fp8sim.gemm itself and then perturbed on purpose (one flipped bit,
a wrong promotion interval, a NaN), so the report's every claim can be checked.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8sim
from fp8sim.analysis._outputs import output_bits, ulp_distance_bits
from fp8sim.analysis.oracle import MatchReport, assert_matches, compare
from fp8sim.capture.golden import load_cases, output_spec

M, K, N = 24, 512, 40


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    a = fp8sim.encode(rng.standard_normal((M, K)).astype(np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((K, N)).astype(np.float32), "e4m3")
    return a, b


A, B = _inputs()
D128 = fp8sim.gemm(A, B, promote=128)


def test_exact_output_matches():
    r = compare(D128, A, B, promote=128)
    assert r.ok and r.mismatches == 0 and r.share == 0 and r.first == []
    assert str(r) == ("all 960 outputs match fp8sim.gemm (hopper, promote=128, "
                      "e4m3 x e4m3 -> float32) bit for bit")
    rep = assert_matches(D128, A, B, promote=128)
    assert isinstance(rep, MatchReport) and rep.ok and rep.mismatches == 0
    assert (rep.total, rep.shape, rep.out_dtype) == (960, (M, N), "float32")
    assert rep.recipe == "hopper, promote=128, e4m3 x e4m3 -> float32"
    assert rep.first == [] and rep.alternatives == [] and rep.max_ulp == 0
    assert str(rep) == str(r)


def _row(i, j, actual_bits, expected_bits, ulp):
    """One line of the report's table, written out here: index, both values and bits, ulp."""
    act = np.uint32(actual_bits).view(np.float32)
    exp = np.uint32(expected_bits).view(np.float32)
    return (f"    {str((i, j)):<14}{f'{act!s:>15} (0x{actual_bits:08x})':<34}"
            f"{f'{exp!s:>15} (0x{expected_bits:08x})':<34}{ulp}")


def test_report_names_each_mismatch_its_values_and_ulps():
    """Two outputs moved: one 2 ulps up its bit pattern, one negative 7 ulps toward zero
    (7 below its bit pattern): the report says which, by how much, with both values, and
    its text (the AssertionError's message) says the same."""
    d = D128.copy()
    u = d.view(np.uint32)
    i0, j0 = 3, 5
    i1, j1 = next((int(i), int(j)) for i, j in zip(*np.nonzero(D128 < 0), strict=True)
                  if (i, j) > (3, 5))
    neg = float(D128[i1, j1])
    u[i0, j0] += 2
    u[i1, j1] -= 7
    with pytest.raises(AssertionError) as info:
        assert_matches(d, A, B, promote=128, alternatives=False)
    r = compare(d, A, B, promote=128, alternatives=False)
    assert str(info.value) == str(r)
    assert r.mismatches == 2 and [mm.index for mm in r.first] == [(i0, j0), (i1, j1)]
    assert [mm.ulp for mm in r.first] == [2, 7] and r.max_ulp == 7 and r.mean_ulp == 4.5
    assert r.first[1].expected == neg and r.first[1].actual == float(d[i1, j1])
    e0, e1 = int(D128.view(np.uint32)[i0, j0]), int(D128.view(np.uint32)[i1, j1])
    assert str(r).splitlines() == [
        "2 of 960 outputs (0.208%) differ from fp8sim.gemm "
        "(hopper, promote=128, e4m3 x e4m3 -> float32)",
        "  ULP distance (float32) over 2 mismatches: max 7, mean 4.5",
        "  first 2 (row-major):",
        f"    {'index':<14}{'actual':<34}{'expected':<34}ulp",
        _row(i0, j0, e0 + 2, e0, 2),
        _row(i1, j1, e1 - 7, e1, 7),
    ]


@pytest.mark.parametrize("used", [32, 64, 256])
def test_the_promotion_interval_is_identified(used):
    """An output promoted every `used` elements, checked against promote=128: every
    element that differs is listed in order with both values, and the report names the
    interval that reproduces all of it."""
    d = fp8sim.gemm(A, B, promote=used)
    r = compare(d, A, B, promote=128, max_listed=1000)
    differ = np.argwhere(d.view(np.uint32) != D128.view(np.uint32))
    assert r.mismatches == len(differ) > 0
    assert [mm.index for mm in r.first] == [tuple(int(v) for v in x) for x in differ]
    assert all(mm.actual_bits == int(d.view(np.uint32)[mm.index])
               and mm.expected_bits == int(D128.view(np.uint32)[mm.index]) for mm in r.first)
    assert r.would_match == [f"hopper p{used}"]
    best = r.alternatives[0]
    assert (best["promote"], best["match"]) == (used, 1.0)
    assert f"  would match: hopper p{used}" in str(r).splitlines()


@settings(max_examples=40, deadline=None)
@given(i=st.integers(0, M - 1), j=st.integers(0, N - 1), bit=st.integers(0, 22))
def test_one_flipped_bit_is_found_and_located(i, j, bit):
    d = D128.copy()
    d.view(np.uint32)[i, j] ^= np.uint32(1 << bit)
    r = compare(d, A, B, promote=128, alternatives=False)
    assert r.mismatches == 1 and r.share == 1 / D128.size and not r.ok
    (mm,) = r.first
    assert mm.index == (i, j)
    assert mm.actual_bits == int(d.view(np.uint32)[i, j])
    assert mm.expected_bits == int(D128.view(np.uint32)[i, j])
    assert np.float32(mm.actual).view(np.uint32) == mm.actual_bits
    assert np.float32(mm.expected).view(np.uint32) == mm.expected_bits
    assert mm.ulp == r.max_ulp == 1 << bit  # a mantissa bit is 2**bit ulps (no carry)
    text = str(r)
    assert f"({i}, {j})" in text and f"0x{mm.actual_bits:08x}" in text
    assert "1 of 960 outputs" in text


def test_flipped_bit_report_names_no_other_recipe():
    d = D128.copy()
    d.view(np.uint32)[5, 7] ^= 1
    r = compare(d, A, B, promote=128)
    # 16 other intervals (split-K adds none new at K = 512), ideal at 0 and 128, exact
    assert r.would_match == [] and len(r.alternatives) == 19
    assert "none of the" in str(r)
    with pytest.raises(AssertionError) as info:
        assert_matches(d, A, B, promote=128)
    assert str(info.value) == str(r)


def test_wrong_promote_names_the_one_that_matches():
    r = compare(D128, A, B, promote=64)
    assert not r.ok and r.mismatches > D128.size // 2
    assert r.would_match == ["hopper p128"]
    assert "would match: hopper p128" in str(r)
    with pytest.raises(AssertionError, match="would match: hopper p128"):
        assert_matches(D128, A, B, promote=64)


def test_wrong_preset_names_hopper():
    r = compare(D128, A, B, promote=128, preset="ideal")
    assert "hopper p128" in r.would_match


def test_never_promoted_output_against_promote_128():
    d0 = fp8sim.gemm(A, B)
    r = compare(d0, A, B, promote=128)
    assert r.would_match[0] == "hopper p0"


@pytest.mark.parametrize("out", ["bfloat16", "float16"])
def test_16_bit_outputs(out):
    want = fp8sim.gemm(A, B, promote=128, out_dtype=out)
    assert compare(want, A, B, promote=128).ok
    d = want.copy()
    d.view(np.uint16)[2, 3] ^= 0x8000  # sign flip
    d.view(np.uint16)[4, 1] ^= 0x0001
    for actual, kw in [(d, {}), (d.view(np.uint16), {"out_dtype": out})]:
        r = compare(actual, A, B, promote=128, **kw)
        assert r.out_dtype == out and r.mismatches == 2
        assert [mm.index for mm in r.first] == [(2, 3), (4, 1)]
        assert r.first[1].ulp == 1
        assert r.first[0].expected == float(want[2, 3]) == -r.first[0].actual
        assert f"0x{int(want.view(np.uint16)[2, 3]):04x}" in str(r)


def test_golden_bf16_output_matches_and_is_checked():
    case = next(c for c in load_cases(DATA / "identify_cases.npz")
                if c.key == "e4m3_e4m3/normal/K1024")
    kw = output_spec(case, "cublas_slow_bf16")
    assert_matches(case.arrays["cublas_slow_bf16"], case.a, case.b, **kw)
    r = compare(case.arrays["cublas_slow_bf16"], case.a, case.b, **(kw | {"promote": 0}))
    assert r.would_match == ["hopper p128"]


def test_nan_mismatch_and_equal_nan():
    d = D128.copy()
    d[1, 1] = np.nan  # 0x7FC00000, where no NaN was expected
    r = compare(d, A, B, promote=128)
    assert r.nan_mismatches == 1 and r.first[0].ulp is None and r.max_ulp == 0
    assert "involve NaN" in str(r)
    a = A.copy()
    a[0, 0] = 0x7F  # NaN input: the H100 writes 0x7FFFFFFF in row 0
    want = fp8sim.gemm(a, B, promote=128)
    other = want.copy()
    other[0] = np.float32(np.nan)  # a different NaN pattern
    assert compare(other, a, B, promote=128).mismatches == N
    assert compare(other, a, B, promote=128, equal_nan=True).ok


def test_max_listed_and_ulp_statistics():
    d = D128.copy()
    d.view(np.uint32)[0, :5] += np.arange(1, 6, dtype=np.uint32)
    r = compare(d, A, B, promote=128, max_listed=3, alternatives=False)
    assert r.mismatches == 5 and len(r.first) == 3
    assert r.max_ulp == 5 and r.mean_ulp == 3.0
    assert isinstance(r, MatchReport)


def test_group_scaled_recipe():
    rng = np.random.default_rng(2)
    sa = rng.uniform(0.5, 2, (M, 4)).astype(np.float32)
    sb = rng.uniform(0.5, 2, (4, 1)).astype(np.float32)
    d = fp8sim.gemm(A, B, promote=128, scale_a=sa, scale_b=sb)
    assert_matches(d, A, B, promote=128, scale_a=sa, scale_b=sb)
    d.view(np.uint32)[0, 0] ^= 1
    r = compare(d, A, B, promote=128, scale_a=sa, scale_b=sb, scaling="group")
    assert r.mismatches == 1 and "group scales" in r.recipe
    assert all(-(-K // alt["promote"]) == 4 for alt in r.alternatives)


def test_torch_tensor():
    torch = pytest.importorskip("torch")
    r = compare(torch.from_numpy(D128.copy()), A, B, promote=128)
    assert r.ok
    want = fp8sim.gemm(A, B, promote=128, out_dtype="bfloat16")
    t = torch.from_numpy(want.view(np.int16).copy()).view(torch.bfloat16)
    assert compare(t, A, B, promote=128).ok


@pytest.mark.parametrize(("actual", "kwargs", "exc", "start"), [
    (np.zeros((3, 3), np.float32), {}, ValueError, "actual:"),
    (np.zeros((M, N), np.int8), {}, TypeError, "actual:"),
    (np.zeros((M, N), np.uint16), {}, ValueError, "actual:"),
    (np.zeros((M, N), np.float32), {"out_dtype": "bfloat16"}, ValueError, "actual:"),
    (np.zeros((M, N), np.float32), {"promote": 48}, ValueError, "promote:"),
    (np.zeros((M, N), np.float32), {"max_listed": -1}, ValueError, "max_listed:"),
    (np.zeros((M, N), np.float32), {"a_format": "e9m9"}, ValueError, "a_format:"),
])
def test_bad_arguments_name_themselves(actual, kwargs, exc, start):
    with pytest.raises(exc) as info:
        compare(actual, A, B, **kwargs)
    assert str(info.value).startswith(start)


def test_16_bit_ulp_distance_is_the_rank_difference():
    """Every bfloat16 and float16 pattern: ulp distance = distance in the sorted value list."""
    for dt in (ml_dtypes.bfloat16, np.float16):
        bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        with np.errstate(invalid="ignore"):
            vals = bits.view(dt).astype(np.float64)
        keep = ~np.isnan(vals) & (bits != 0x8000)  # -0 and +0 are one value
        bits, vals = bits[keep], vals[keep]
        order = np.argsort(vals, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        zero = bits[np.flatnonzero(vals == 0)[0]]
        name = output_bits(np.zeros(1, dt))[1]
        d = ulp_distance_bits(bits, np.full_like(bits, zero), name)
        assert np.array_equal(d, np.abs(rank - rank[vals == 0][0]))
        assert ulp_distance_bits(np.array([0x8000], np.uint16), np.array([0], np.uint16),
                                 name)[0] == 0


def test_a_near_match_never_reads_as_100_percent():
    from fp8sim.analysis.stats import percent

    assert percent(6143 / 6144) == 99.98 and percent(1.0) == 100.0
    assert percent(1 - 1e-9, 3) == 99.999
