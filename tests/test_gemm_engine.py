"""The numba GEMM engine against the pure-Python reference, bit for bit.

Random and adversarial inputs: every code of both formats (NaN, Inf, subnormals,
signed zeros), C from subnormal to near-overflow, shapes that cross tile edges and
the 128-column group of scale_b, every preset with a fast kernel.
"""

from __future__ import annotations

import os

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fp8sim import gemm
from fp8sim.engine import reference
from fp8sim.engine.mma import HOPPER, PRESETS
from fp8sim.formats.info import E4M3, E5M2

# make test-all runs ten times as many examples
SCALE = int(os.environ.get("FP8SIM_EXAMPLES_SCALE", "1"))

FAST_STEPS = [PRESETS["hopper"], PRESETS["ideal"], PRESETS["exact"], PRESETS["ada"],
              PRESETS["blackwell"], HOPPER.replace(frac_bits=16), HOPPER.replace(frac_bits=23),
              HOPPER.replace(frac_bits=10), HOPPER.replace(frac_bits=28, terms=64)]


def bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def codes(rng: np.random.Generator, shape, kind: str) -> np.ndarray:
    """FP8 codes: every code equally likely, finite only, mostly tiny, or sparse."""
    if kind == "all":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == "finite":
        out = rng.integers(0, 256, shape, dtype=np.uint8)
        return np.where((out & 0x7F) >= 0x7B, out & 0x8F, out).astype(np.uint8)
    if kind == "tiny":  # zeros and subnormals with a few large codes
        out = rng.integers(0, 8, shape, dtype=np.uint8) | (rng.integers(0, 2, shape) << 7)
        big = rng.random(shape) < 0.05
        return np.where(big, 0x70, out).astype(np.uint8)
    out = rng.integers(0, 0x78, shape, dtype=np.uint8)  # sparse
    return np.where(rng.random(shape) < 0.7, 0, out).astype(np.uint8)


def c_values(rng: np.random.Generator, shape, kind: str) -> np.ndarray:
    """Accumulator inputs: normal, subnormal, huge, special, signed zeros."""
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32) * np.float32(100)
    if kind == "bits":
        return rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32).view(np.float32)
    pool = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-40, -3e-39, 1.1754944e-38, 3.4e38, -3.4e38,
                     np.inf, -np.inf, np.nan, 1.0, -1.5, 65504.0, 2.0**-20], dtype=np.float32)
    return pool[rng.integers(0, pool.size, shape)]


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 5),
    n=st.integers(1, 6),
    k=st.integers(1, 200),
    fmts=st.sampled_from([(E4M3, E4M3), (E4M3, E5M2), (E5M2, E4M3), (E5M2, E5M2)]),
    kind=st.sampled_from(["all", "finite", "tiny", "sparse"]),
    promote=st.sampled_from([0, 32, 64, 96]),
    c_kind=st.sampled_from([None, "normal", "bits", "edge"]),
    step=st.sampled_from(FAST_STEPS),
)
def test_engine_matches_reference(seed, m, n, k, fmts, kind, promote, c_kind, step):
    rng = np.random.default_rng(seed)
    a = codes(rng, (m, k), kind)
    b = codes(rng, (k, n), kind)
    c = None if c_kind is None else c_values(rng, (m, n), c_kind)
    if promote % step.terms:
        promote = 0
    got = gemm(a, b, a_format=fmts[0], b_format=fmts[1], promote=promote, c=c, preset=step)
    want = reference.gemm(a, b, fmts[0], fmts[1], step, promote=promote, c=c)
    assert np.array_equal(bits(got), bits(want))


@settings(max_examples=60 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 4),
    n=st.integers(1, 5),
    k=st.integers(1, 300),
    promote=st.sampled_from([32, 64, 128]),
    kind=st.sampled_from(["all", "finite", "sparse"]),
)
def test_group_scaling_matches_reference(seed, m, n, k, promote, kind):
    """DeepGEMM-style scales applied with one fma at each promotion."""
    rng = np.random.default_rng(seed)
    a = codes(rng, (m, k), kind)
    b = codes(rng, (k, n), kind)
    g = -(-k // promote)
    sa = np.ldexp(rng.random((m, g)) + 0.5, rng.integers(-30, 30, (m, g))).astype(np.float32)
    sb = np.ldexp(rng.random((g, 1)) + 0.5, rng.integers(-30, 30, (g, 1))).astype(np.float32)
    got = gemm(a, b, promote=promote, scale_a=sa, scale_b=sb, scaling="group")
    want = reference.gemm(a, b, E4M3, E4M3, HOPPER, promote=promote, group_scale=(sa, sb))
    assert np.array_equal(bits(got), bits(want))


def test_tiles_and_scale_groups_cross_edges():
    """M > one tile of rows, N > 128 so scale_b's second column group is used."""
    rng = np.random.default_rng(7)
    m, n, k = 9, 131, 96
    a = codes(rng, (m, k), "finite")
    b = codes(rng, (k, n), "finite")
    sa = rng.random((m, 3)).astype(np.float32) + np.float32(0.5)
    sb = np.array([[1.0, 2.0**-7], [3.0, 0.375], [2.0**10, 5.0]], dtype=np.float32)
    got = gemm(a, b, promote=32, scale_a=sa, scale_b=sb)
    want = reference.gemm(a, b, E4M3, E4M3, HOPPER, promote=32, group_scale=(sa, sb))
    assert np.array_equal(bits(got), bits(want))
    c = c_values(rng, (m, n), "edge")
    assert np.array_equal(bits(gemm(a, b, c=c)),
                          bits(reference.gemm(a, b, E4M3, E4M3, HOPPER, c=c)))


@pytest.mark.parametrize("scaling", ["group", "group-a-first", "group-column"])
def test_engine_group_epilogue_rounds_once(scaling):
    """The engine's epilogue at promotion is one fma: K = 64, promote = 32. Group 0's
    partial is -1 (scales 1): acc = -1. Group 1's partial is p = 1 + 2**-12 (1 * 1 plus
    2**-6 * 2**-6, kept by 13 fractional bits) and its scale s = 1 + 2**-12 (scale_b; every
    epilogue's right-hand factor). fma(p, s, -1) = 2**-11 + 2**-24 exactly, while
    fl(fl(p * s) - 1) = 2**-11 (p * s = 1 + 2**-11 + 2**-24 rounds to even)."""
    p = s = np.float32(1 + 2.0**-12)
    assert np.float32(p * s) + np.float32(-1.0) == np.float32(2.0**-11)  # mul, then add
    a = np.zeros((1, 64), np.uint8)
    a[0, 0] = 0xB8  # -1 in group 0
    a[0, 32], a[0, 33] = 0x38, 0x08  # 1 and 2**-6 in group 1
    b = np.zeros((64, 1), np.uint8)
    b[0, 0], b[32, 0], b[33, 0] = 0x38, 0x38, 0x08
    sa = np.ones((1, 2), np.float32)
    sb = np.array([[1.0], [1 + 2.0**-12]], np.float32)  # (G, 1): one block, or one column
    got = gemm(a, b, promote=32, scale_a=sa, scale_b=sb, scaling=scaling)
    assert got[0, 0] == np.float32(2.0**-11 + 2.0**-24)
    assert reference.fma_float32(p, s, np.float32(-1.0)) == got[0, 0]


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has a single thread")
@pytest.mark.parametrize("threads", sorted({2, numba.config.NUMBA_NUM_THREADS}))
def test_same_bits_whatever_the_thread_count(threads):
    """One thread against 2 and all of numba's (M = 70, N = 150: 6 tiles, so `_threads_for`
    keeps up to 6; tests/test_engine_properties.py checks the count the kernel launches with)."""
    rng = np.random.default_rng(3)
    a = codes(rng, (70, 700), "finite")
    b = codes(rng, (700, 150), "finite")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = gemm(a, b, promote=128)
        numba.set_num_threads(threads)
        assert numba.get_num_threads() == threads > 1
        many = gemm(a, b, promote=128)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(bits(one), bits(many))


@pytest.mark.parametrize("k", [1, 31, 33, 40, 100, 257])
@pytest.mark.parametrize("promote", [0, 32, 128])
def test_short_last_step_is_zero_padding(k, promote):
    """K not a multiple of 32: same bits as padding A and B with zero codes, as TMA does."""
    rng = np.random.default_rng(k)
    a = codes(rng, (5, k), "finite")
    b = codes(rng, (k, 7), "finite")
    pad = -k % 32
    a_pad = np.pad(a, ((0, 0), (0, pad)))
    b_pad = np.pad(b, ((0, pad), (0, 0)))
    assert np.array_equal(bits(gemm(a, b, promote=promote)),
                          bits(gemm(a_pad, b_pad, promote=promote)))


def test_zero_products_do_not_raise_emax():
    """Subnormal C next to all-zero products keeps its bits down to 2**(-126-13)."""
    c = np.array([[np.float32(2.0**-126 * 1.5), np.float32(-1e-44)]], dtype=np.float32)
    a = np.zeros((1, 32), np.uint8)
    b = np.zeros((32, 2), np.uint8)
    out = gemm(a, b, c=c)
    assert bits(out)[0, 0] == bits(c)[0, 0]
    assert bits(out)[0, 1] == 0  # -1e-44 truncated to nothing: +0


def test_special_values():
    nan, inf = 0x7F, 0x7C
    a = np.array([[0x38, 0x00]], np.uint8)  # 1.0, 0 (e5m2: 0x3C is 1.0)
    out = gemm(np.array([[0x3C, 0x00]], np.uint8), np.array([[inf], [0x3C]], np.uint8),
               a_format="e5m2", b_format="e5m2")
    assert np.isposinf(out[0, 0])
    out = gemm(np.array([[0x00]], np.uint8), np.array([[inf]], np.uint8),
               a_format="e5m2", b_format="e5m2")
    assert bits(out)[0, 0] == 0x7FFFFFFF  # 0 * Inf
    out = gemm(a, np.array([[nan], [0x38]], np.uint8))
    assert bits(out)[0, 0] == 0x7FFFFFFF


def test_ml_dtypes_inputs_give_the_format():
    import ml_dtypes
    rng = np.random.default_rng(0)
    a = codes(rng, (4, 64), "finite")
    b = codes(rng, (64, 3), "finite")
    want = gemm(a, b, a_format="e5m2", b_format="e4m3", promote=32)
    got = gemm(a.view(ml_dtypes.float8_e5m2), b.view(ml_dtypes.float8_e4m3fn), promote=32)
    assert np.array_equal(bits(got), bits(want))


def _round16(x: np.ndarray, mant: int, emin: int, emax: int) -> np.ndarray:
    """float32 values rounded once to nearest even into a binary format of `mant` stored
    bits, exponents [emin, emax] with subnormals: exact Python integers and Fractions, not
    numpy's or ml_dtypes' casts. Bits of the 16-bit result (NaN: 0x7FFF, the GPU's)."""
    from fractions import Fraction
    bias = -emin + 1
    out = []
    for v in np.asarray(x, np.float32).ravel().tolist():
        if v != v:
            out.append(0x7FFF)
            continue
        sign = 0x8000 if np.signbit(np.float32(v)) else 0
        if v in (float("inf"), float("-inf")):
            out.append(sign | ((2 * bias + 1) << mant))
            continue
        f = abs(Fraction(v))
        if f == 0:
            out.append(sign)
            continue
        e = f.numerator.bit_length() - f.denominator.bit_length()  # 2**e <= f < 2**(e + 2)
        e = e + 1 if f >= Fraction(2) ** (e + 1) else e
        e = max(e, emin)
        q = f / Fraction(2) ** (e - mant)  # significand in units of the last place
        n = q.numerator // q.denominator
        rem = q - n
        if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2):
            n += 1
        if n == 2 << mant:  # carried into the next binade
            n, e = n // 2, e + 1
        if e > emax:
            out.append(sign | ((2 * bias + 1) << mant))  # overflow: Inf
        elif n < 1 << mant:
            out.append(sign | n)  # subnormal (or zero)
        else:
            out.append(sign | ((e + bias) << mant) | (n - (1 << mant)))
    return np.array(out, np.uint16).reshape(np.shape(x))


def bf16_bits(x: np.ndarray) -> np.ndarray:
    return _round16(x, 7, -126, 127)


def f16_bits(x: np.ndarray) -> np.ndarray:
    return _round16(x, 10, -14, 15)


def _f32(u: int) -> float:
    return float(np.uint32(u).view(np.float32))


# float32 values and their bfloat16 and float16 bits, by hand: ties go to the even neighbour
HAND_ROUNDED = [
    (1 + 2.0**-8, 0x3F80, 0x3C04),         # bf16 tie, down to even 1.0
    (1 + 3 * 2.0**-8, 0x3F82, 0x3C0C),     # bf16 tie, up to even 1 + 2**-6
    (-(1 + 2.0**-8), 0xBF80, 0xBC04),
    (1 + 2.0**-11, 0x3F80, 0x3C00),        # f16 tie, down to 1.0
    (1 + 3 * 2.0**-11, 0x3F80, 0x3C02),    # f16 tie, up to 1 + 2**-9
    (65504.0, 0x4780, 0x7BFF),             # f16's largest
    (65512.0, 0x4780, 0x7BFF),             # below f16's overflow midpoint: 65504
    (65520.0, 0x4780, 0x7C00),             # f16 tie between 65504 (odd) and 2**16: Inf
    (1.5 * 2.0**-24, 0x33C0, 0x0002),      # f16 subnormal tie: up to even 2**-23
    (2.5 * 2.0**-24, 0x3420, 0x0002),      # f16 subnormal tie: down to even 2**-23
    (2.0**-25, 0x3300, 0x0000),            # half the smallest f16 subnormal: +0
    (-(2.0**-25), 0xB300, 0x8000),         # ... -0
    (_f32(0x00018000), 0x0002, 0x0000),    # float32 subnormal, bf16 subnormal tie: up
    (_f32(0x00008000), 0x0000, 0x0000),    # bf16 subnormal tie: down to +0
    (_f32(0x7F7F4000), 0x7F7F, 0x7C00),    # bf16's largest
    (_f32(0x7F7F8000), 0x7F80, 0x7C00),    # bf16 tie between its largest (odd) and Inf
]


def test_16_bit_outputs_round_the_reference_once():
    """bfloat16 and float16 outputs are the reference's float32 result rounded once to
    nearest even (rounded here with exact integers): ties, subnormal and overflow results.
    Row 0 has no products and passes C = the hand-rounded values through (C keeps 14
    significant bits, all these need); rows 1.. are sparse products of every size."""
    rng = np.random.default_rng(1)
    n = len(HAND_ROUNDED)
    a = codes(rng, (24, 64), "finite")
    a[:, 3:] = np.where(rng.random((24, 61)) < 0.85, 0, a[:, 3:])  # short sums: many ties
    a[0] = 0
    b = codes(rng, (64, n), "finite")
    c = np.zeros((24, n), np.float32)
    c[0] = [v for v, _, _ in HAND_ROUNDED]
    c[1:4] = rng.standard_normal((3, n)).astype(np.float32) * np.float32(2.0**-20)
    want = reference.gemm(a, b, E4M3, E4M3, HOPPER, promote=32, c=c)
    assert np.array_equal(bits(gemm(a, b, promote=32, c=c)), bits(want))
    for out_dtype, rounded, col in (("bfloat16", bf16_bits, 1), ("float16", f16_bits, 2)):
        with np.errstate(over="ignore"):
            got = gemm(a, b, promote=32, c=c, out_dtype=out_dtype).view(np.uint16)
        assert got[0].tolist() == [row[col] for row in HAND_ROUNDED], out_dtype
        assert np.array_equal(rounded(c[:1]), got[:1])  # the rounding here, on the hand cases
        assert np.array_equal(got, rounded(want)), out_dtype
    # the random rows alone reach ties and f16 overflow too
    w = bits(want[1:])
    assert np.count_nonzero((w & 0xFFFF) == 0x8000) > 0  # bf16 ties
    assert np.count_nonzero(np.abs(want[1:]) >= 65520) > 0  # f16 overflow


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    a = codes(rng, (4, 64), "finite")
    b = codes(rng, (64, 4), "finite")
    ta = torch.from_numpy(a).view(torch.float8_e4m3fn)
    tb = torch.from_numpy(b).view(torch.float8_e5m2)
    assert np.array_equal(bits(gemm(ta, tb)), bits(gemm(a, b, b_format="e5m2")))


def test_zero_results_are_positive_zero():
    """C = -0 with zero products, and products that cancel, give +0 (H100 capture)."""
    c = np.full((1, 2), -0.0, np.float32)
    a = np.array([[0x80, 0x38, 0xB8] + [0] * 29], np.uint8)  # -0, 1, -1
    b = np.zeros((32, 2), np.uint8)
    b[1:3, 1] = 0x38
    out = gemm(a, b, c=c)
    assert bits(out).tolist() == [[0, 0]]


def test_16_bit_nan_is_7fff():
    a = np.array([[0x7F]], np.uint8)  # e4m3 NaN
    b = np.array([[0x38]], np.uint8)
    assert gemm(a, b, out_dtype="bfloat16").view(np.uint16)[0, 0] == 0x7FFF
    assert gemm(a, b, out_dtype="float16").view(np.uint16)[0, 0] == 0x7FFF


def _edge_scales(rng, shape, exps: list[int]) -> np.ndarray:
    """float32 scales 2**(e + 0..3) * (1 or a random 24-bit significand), e from exps."""
    sig = np.where(rng.random(shape) < 0.5, 1.0, rng.random(shape) + 1.0)
    e = np.asarray(exps)[rng.integers(0, len(exps), shape)] + rng.integers(0, 4, shape)
    return np.ldexp(sig, e).astype(np.float32)


@pytest.mark.parametrize("scaling", ["tensor", "row", "group"])
def test_scalings_and_16_bit_outputs_match_the_reference(scaling):
    """Tensor (fl(acc * fl(sa * sb))), row (fl(fl(acc * sb[j]) * sa[i])) and group (one fma
    per promotion) scales against the reference, float32 bit for bit and bfloat16/float16
    rounded once here. Scales from 2**-142 to 2**123, so results run from float32
    subnormals (and zero) through f16 and bf16 overflow to Inf."""
    rng = np.random.default_rng({"tensor": 11, "row": 12, "group": 13}[scaling])
    m, k, n = 24, 96, 20
    a = codes(rng, (m, k), "finite")
    b = codes(rng, (k, n), "finite")
    if scaling == "tensor":
        sa, sb = _edge_scales(rng, (), [-10])[()], _edge_scales(rng, (), [8])[()]
    elif scaling == "row":
        sa = _edge_scales(rng, (m, 1), [-78, -40, -3, 50, 60])
        sb = _edge_scales(rng, (1, n), [-64, -3, 58])
    else:  # a row's three groups near one size: the largest group does not hide the others
        sa = _edge_scales(rng, (m, 1), [-145, -138, -35, -3, 112, 118]) * \
            _edge_scales(rng, (1, 3), [0])
        sb = _edge_scales(rng, (3, 1), [-1])
    from fp8sim.engine.epilogue import epilogue
    ep = epilogue(scaling)
    want = reference.gemm(a, b, E4M3, E4M3, HOPPER, promote=32, epilogue=ep, scale_a=sa,
                          scale_b=sb)
    kw = {"promote": 32, "scale_a": sa, "scale_b": sb, "scaling": scaling}
    with np.errstate(over="ignore"):
        assert np.array_equal(bits(gemm(a, b, **kw)), bits(want))
        for out_dtype, rounded in (("bfloat16", bf16_bits), ("float16", f16_bits)):
            got = gemm(a, b, **kw, out_dtype=out_dtype).view(np.uint16)
            assert np.array_equal(got, rounded(want)), out_dtype
    w = np.abs(want[np.isfinite(want)])
    if scaling != "tensor":  # one scale for all: not every range in one GEMM
        assert np.count_nonzero((w > 0) & (w < 2.0**-126)) > 0  # float32 subnormal results
        assert np.count_nonzero(np.isinf(want)) > 0
        assert np.count_nonzero((w < 2.0**-14) & (w >= 2.0**-25)) > 0  # f16 subnormal
    assert np.count_nonzero(w >= 65520) > 0  # finite, f16 Inf

def test_int8_exponent_tables_exact():
    """Pass 1's int8 exponents are log2 of the 2**e tables of every wgmma format; others refused."""
    from fp8sim.engine import _gemm_kernels as kern
    from fp8sim.engine.gemm import _tables
    from fp8sim.formats.info import FORMATS

    for name in ("e4m3", "e5m2"):
        _, pow2 = _tables(FORMATS[name])
        e = kern._exponents(pow2)
        real = pow2 != 0
        assert np.array_equal(np.ldexp(np.float32(1), e[real].astype(np.int32)), pow2[real])
        assert (e[~real] == kern.NO_EXP).all() and e[real].min() >= -16 and e[real].max() <= 15
    with pytest.raises(ValueError, match="exponent"):
        kern._exponents(np.array([2.0**16], np.float32))
