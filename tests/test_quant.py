"""Scaled quantization (fp8sim.quant) against a per-block Python loop of the contract's formulas.

The reference below computes every scale and product exactly with Fractions, rounds to
float32 where the contract says so, and encodes one value at a time with
`fp8sim.engine.reference.encode_scalar`; the tests compare bits.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quant_helpers import _data, _enc

from fp8sim.casts import (
    cast_scaled,
    delayed_scale,
    dequantize,
    quantize,
    quantize_mx,
    retile,
)
from fp8sim.engine.reference import to_float32
from fp8sim.formats.convert import decode, encode, encode_e8m0
from fp8sim.formats.info import E8M0, format_info

FMTS = ("e4m3", "e5m2")
SCALE = int(os.environ.get("FP8SIM_EXAMPLES_SCALE", "1"))  # make test-all: 10x examples


def _bits32(x) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def _quantize_reference(x: np.ndarray, fmt: str, block: tuple[int, int], pow2: bool,
                        convention: str = "deepgemm"):
    """The contract's formulas, one block and one element at a time (Python, Fractions).

    "deepgemm": scale = fl32(amax * fl32(1 / fmt_max)), m = fl32(fmt_max * fl32(1 / amax)),
    amax >= fl32(1e-4); pow2: the smallest power of two >= scale, codes of x / scale.
    "torchao": amax >= 1e-12, m = fl32(fmt_max / amax) (pow2: 2**floor(fl32(log2 m))),
    codes of the clamped fl32(x * m), scale = fl32(1 / m).
    """
    info = format_info(fmt)
    fmt_max = Fraction(info.max)
    m, k = x.shape
    bm, bk = block
    codes = np.zeros((m, k), np.uint8)
    scales = np.zeros((-(-m // bm), -(-k // bk)), np.float32)
    torchao = convention == "torchao"
    for bi in range(scales.shape[0]):
        for bj in range(scales.shape[1]):
            rows = range(bi * bm, min((bi + 1) * bm, m))
            cols = range(bj * bk, min((bj + 1) * bk, k))
            amax = max((abs(float(x[i, j])) for i in rows for j in cols), default=0.0)
            e = 0
            if torchao:
                amax = Fraction(max(amax, 1e-12))
                mult = Fraction(float(to_float32(fmt_max / amax)))
                if pow2:  # floor of log2 as float32 (CUDA's log2f), then 2**that
                    mult = Fraction(2) ** math.floor(float(to_float32(Fraction(
                        math.log2(float(mult))))))
                scales[bi, bj] = to_float32(1 / mult)
            else:
                amax = Fraction(max(amax, float(np.float32(1e-4))))
                sf = to_float32(amax * Fraction(float(to_float32(1 / fmt_max))))
                if pow2:  # the smallest power of two >= sf
                    while Fraction(2) ** e < Fraction(float(sf)):
                        e += 1
                    while Fraction(2) ** (e - 1) >= Fraction(float(sf)):
                        e -= 1
                    scales[bi, bj] = 2.0**e
                else:
                    scales[bi, bj] = sf
                mult = Fraction(float(to_float32(fmt_max * Fraction(float(to_float32(
                    1 / amax))))))
            for i in rows:
                for j in cols:
                    v = Fraction(float(x[i, j]))
                    scaled = v / Fraction(2) ** e if pow2 and not torchao else v * mult
                    y = float(to_float32(scaled))
                    if y == 0 and math.copysign(1, float(x[i, j])) < 0:
                        y = -0.0  # Fractions lose the sign of zero
                    codes[i, j] = _enc(y, fmt, torchao)  # torchao clamps: saturation
    return codes, scales


SHAPE = (19, 150)
BLOCKS = [(1, 128), (128, 128), (1, 150), (19, 150), (3, 5), (7, 64), (1, 1), (19, 1), (64, 500)]


@pytest.mark.parametrize("convention", ["deepgemm", "torchao"])
@pytest.mark.parametrize("pow2", [False, True])
@pytest.mark.parametrize("block", BLOCKS)
def test_quantize_matches_reference(block, pow2, convention):
    x = _data(np.random.default_rng(hash(block) % 1000), SHAPE)
    for fmt in FMTS:
        codes, scales = quantize(x, fmt, block=block, pow2_scale=pow2, convention=convention)
        ref_codes, ref_scales = _quantize_reference(x, fmt, block, pow2, convention)
        assert scales.dtype == np.float32 and codes.dtype == np.uint8
        np.testing.assert_array_equal(_bits32(scales), _bits32(ref_scales))
        np.testing.assert_array_equal(codes, ref_codes)


@settings(max_examples=20 * SCALE, deadline=None)
@given(m=st.integers(1, 20), k=st.integers(1, 70), bm=st.integers(1, 25), bk=st.integers(1, 80),
       pow2=st.booleans(), fmt=st.sampled_from(FMTS), seed=st.integers(0, 2**32 - 1),
       lo=st.integers(-40, 40), convention=st.sampled_from(["deepgemm", "torchao"]))
def test_quantize_random_shapes(m, k, bm, bk, pow2, fmt, seed, lo, convention):
    x = _data(np.random.default_rng(seed), (m, k), log2_range=(lo, lo + 1))
    codes, scales = quantize(x, fmt, block=(bm, bk), pow2_scale=pow2, convention=convention)
    ref_codes, ref_scales = _quantize_reference(x, fmt, (bm, bk), pow2, convention)
    np.testing.assert_array_equal(_bits32(scales), _bits32(ref_scales))
    np.testing.assert_array_equal(codes, ref_codes)


def test_quantize_deepgemm_formula_directly():
    """The 1x128 cast as torch on CUDA runs DeepGEMM's per_token_cast_to_fp8: reciprocals."""
    x = _data(np.random.default_rng(7), (16, 256))
    amax = np.maximum(np.abs(x.reshape(16, 2, 128)).max(axis=2), np.float32(1e-4))
    mult = np.float32(448.0) * (np.float32(1) / amax)  # 448.0 / amax on CUDA
    want = encode(x.reshape(16, 2, 128) * mult[:, :, None], "e4m3")
    codes, scales = quantize(x)
    np.testing.assert_array_equal(codes, want.reshape(16, 256))
    recip = amax * (np.float32(1) / np.float32(448))
    np.testing.assert_array_equal(_bits32(scales), _bits32(recip))
    # the IEEE quotient, which the GPU does not compute, differs in many scales
    assert np.any(_bits32(scales) != _bits32(amax / np.float32(448.0)))


def test_quantize_torchao_formula_directly():
    """torchao's 1x128 Triton cast in numpy: float64 quotient, clamp, reciprocal scale."""
    x = _data(np.random.default_rng(8), (16, 256)) * np.float32(300)
    amax = np.maximum(np.abs(x.reshape(16, 2, 128)).max(axis=2).astype(np.float64), 1e-12)
    mult = (448.0 / amax).astype(np.float32)
    want = encode(np.clip(x.reshape(16, 2, 128) * mult[:, :, None], -448, 448), "e4m3")
    codes, scales = quantize(x, block=(1, 128), convention="torchao")
    np.testing.assert_array_equal(codes, want.reshape(16, 256))
    np.testing.assert_array_equal(_bits32(scales), _bits32(np.float32(1) / mult))


def test_all_zero_blocks_use_the_amax_floor():
    codes, scales = quantize(np.zeros((2, 256), np.float32), block=(1, 128))
    assert np.all(codes == 0)
    np.testing.assert_array_equal(scales, np.float32(1e-4) * (np.float32(1) / np.float32(448)))
    codes, scales = quantize(np.zeros((2, 256), np.float32), block=(1, 128), convention="torchao")
    assert np.all(codes == 0)
    np.testing.assert_array_equal(scales, np.float32(1) / np.float32(448 / 1e-12))
    _, s2 = quantize(np.zeros((2, 256), np.float32), pow2_scale=True)
    np.testing.assert_array_equal(s2, np.float32(2.0**-22))  # 1e-4 / 448 = 2.2e-7 <= 2**-22


# --- power-of-two scales: the rounding must never be the wrong way -------------------


@pytest.mark.parametrize("fmt", FMTS)
def test_pow2_ceil_of_float32_ratio_is_ceil_of_exact_ratio(fmt):
    """For every float32 mantissa of amax: ceil(log2(fl32(amax / fmt_max))) is exact.

    fmt_max = 1.75 * 2**emax for both formats, so float32 rounding of the ratio can
    never land on a power of two from above: the scale is always >= amax / fmt_max.
    """
    info = format_info(fmt)
    mant = (np.arange(2**23, dtype=np.uint32) | np.uint32(127 << 23)).view(np.float32)  # [1, 2)
    for e in (0, 9, 60):  # amax >= 1, above the 1e-4 clamp
        amax = mant * np.float32(2.0**e)
        _, scales = quantize(amax.reshape(-1, 1), fmt, block=(1, 1), pow2_scale=True)
        s = scales.reshape(-1).astype(np.float64)
        exact_ratio = amax.astype(np.float64) / info.max  # rounding of this is far below 2**-30
        # Transformer Engine's kernels multiply by float32(1 / fmt_max): the same scales
        frac, e2 = np.frexp(amax * (np.float32(1) / np.float32(info.max)))
        np.testing.assert_array_equal(np.ldexp(1.0, e2 - (frac == 0.5)), s)
        assert np.all(s * (1 + 2.0**-40) >= exact_ratio)  # rounded up
        assert np.all(s / 2 < exact_ratio)  # by less than a factor of two
        # the boundary itself: amax = fmt_max * 2**e gives exactly 2**e
        on = amax == np.float32(info.max * 2.0**e)
        assert np.all(s[on] == 2.0**e)


@pytest.mark.parametrize("fmt", FMTS)
def test_pow2_boundary_never_overflows(fmt):
    info = format_info(fmt)
    for e in range(-18, 60, 7):  # amax above the 1e-4 clamp
        edge = np.float32(info.max * 2.0**e)
        around = edge.reshape(1).view(np.uint32) + np.arange(-3, 4, dtype=np.int64).astype(
            np.uint32)
        for amax in around.view(np.float32):
            x = np.array([[amax, -amax, amax / 3, np.float32(np.nextafter(amax, 0))]], np.float32)
            codes, scales = quantize(x, fmt, block=(1, 4), pow2_scale=True)
            values = decode(codes, fmt)
            assert np.all(np.isfinite(values))
            assert np.all(np.abs(values) <= info.max)
            s = Fraction(float(scales[0, 0]))
            assert s >= Fraction(float(amax)) / Fraction(info.max) > s / 2
            if amax == edge:
                assert codes[0, 0] == info.max_code and scales[0, 0] == np.float32(2.0**e)
            ref = _quantize_reference(x, fmt, (1, 4), True)
            np.testing.assert_array_equal(codes, ref[0])


def test_e8m0_scale_codes():
    x = _data(np.random.default_rng(3), (20, 256))
    codes, scales = quantize(x, block=(1, 128), pow2_scale=True)
    codes8, e8 = quantize(x, block=(1, 128), pow2_scale=True, scale_format="e8m0")
    np.testing.assert_array_equal(codes, codes8)
    assert e8.dtype == np.uint8
    np.testing.assert_array_equal(e8, (np.frexp(scales)[1] - 1 + E8M0.bias).astype(np.uint8))
    np.testing.assert_array_equal(decode(e8, "e8m0"), scales)
    np.testing.assert_array_equal(dequantize(codes8, e8), dequantize(codes, scales))


# --- dequantize and retile ------------------------------------------------------------


@pytest.mark.parametrize("block", [(1, 128), (128, 128), (5, 7)])
def test_dequantize(block):
    x = _data(np.random.default_rng(5), (40, 300))
    codes, scales = quantize(x, block=block)
    exact = dequantize(codes, scales, block=block, dtype=np.float64)
    approx = dequantize(codes, scales, block=block)
    assert approx.dtype == np.float32 and exact.dtype == np.float64
    for i in range(0, 40, 7):
        for j in range(0, 300, 11):
            s = scales[i // block[0], j // block[1]]
            want = Fraction(float(decode(codes[i, j], "e4m3"))) * Fraction(float(s))
            assert Fraction(float(exact[i, j])) == want
            assert approx[i, j] == to_float32(want)
    # within half an E4M3 step of the block's largest value
    amax = np.repeat(np.repeat(scales * 448, block[0], 0), block[1], 1)[:40, :300]
    assert np.all(np.abs(exact - x) <= amax * 2.0**-4)


def test_retile_1x128_to_128x1():
    x = _data(np.random.default_rng(9), (256, 384))
    codes, scales = quantize(x, block=(1, 128))
    c2, s2 = retile(codes, scales)
    assert s2.shape == (2, 384) and c2.shape == x.shape
    want = quantize(dequantize(codes, scales), block=(128, 1))
    np.testing.assert_array_equal(c2, want[0])
    np.testing.assert_array_equal(_bits32(s2), _bits32(want[1]))
    back = dequantize(c2, s2, block=(128, 1), dtype=np.float64)
    amax = np.repeat(s2 * 448, 128, 0)
    assert np.all(np.abs(back - dequantize(codes, scales)) <= amax * 2.0**-4)
    c3, s3 = retile(codes, scales, pow2_scale=True)
    assert np.all(np.frexp(s3)[0] == 0.5)


# --- non-finite, empty and bad input ------------------------------------------------------


def test_nonfinite_raises_by_default():
    x = np.ones((2, 256), np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        x[1, 5] = bad
        with pytest.raises(ValueError, match="^x: contains NaN/Inf"):
            quantize(x)
        with pytest.raises(ValueError, match="^x: contains NaN/Inf"):
            quantize_mx(x)
    with pytest.raises(ValueError, match="^x: contains NaN/Inf"):
        quantize(np.array([[1e300]]))  # float64 beyond float32


def test_nonfinite_propagate_is_the_torch_result():
    x = np.full((2, 256), -0.5, np.float32)
    x[0, 3] = np.nan
    x[1, 200] = np.inf
    codes, scales = quantize(x, nonfinite="propagate")
    assert np.isnan(scales[0, 0]) and np.all(np.isnan(decode(codes[0, :128], "e4m3")))
    assert scales[1, 1] == np.inf
    block = decode(codes[1, 128:], "e4m3")
    assert np.isnan(block[200 - 128])
    others = np.delete(block, 200 - 128)
    assert np.all(others == 0) and np.all(np.signbit(others))  # -0.5 * 0 = -0
    np.testing.assert_array_equal(scales[[0, 1], [1, 0]], np.float32(0.5 / 448))
    _, e8 = quantize(x, pow2_scale=True, scale_format="e8m0", nonfinite="propagate")
    assert e8[0, 0] == E8M0.nan_code and e8[1, 1] == E8M0.nan_code
    mc, me = quantize_mx(x, nonfinite="propagate")
    assert me[0, 0] == E8M0.nan_code and np.all(np.isnan(decode(mc[0, :32], "e4m3")))


def test_empty_arrays():
    codes, scales = quantize(np.zeros((0, 256), np.float32))
    assert codes.shape == (0, 256) and scales.shape == (0, 2)
    codes, scales = quantize(np.zeros((3, 0), np.float32), block=(2, 4))
    assert codes.shape == (3, 0) and scales.shape == (2, 0)
    assert dequantize(codes, scales, block=(2, 4)).shape == (3, 0)


@pytest.mark.parametrize("block", [(0, 128), (1,), (1, 2, 3), (1.5, 128), (True, 128), "128",
                                   None, (1, -128)])
def test_bad_block(block):
    with pytest.raises(ValueError, match="^block:"):
        quantize(np.ones((4, 4), np.float32), block=block)


def test_bad_arguments():
    x = np.ones((4, 256), np.float32)
    with pytest.raises(ValueError, match="^x:"):
        quantize(np.ones(256, np.float32))
    with pytest.raises(TypeError, match="^x:"):
        quantize(np.ones((4, 256), np.int32))
    with pytest.raises(ValueError, match="^fmt:"):
        quantize(x, "e3m4")
    with pytest.raises(ValueError, match="^fmt:"):
        quantize(x, "e8m0")
    with pytest.raises(ValueError, match="^scale_format:"):
        quantize(x, scale_format="e8m0")
    with pytest.raises(ValueError, match="^scale_format:"):
        quantize(x, pow2_scale=True, scale_format="bf16")
    with pytest.raises(ValueError, match="^nonfinite:"):
        quantize(x, nonfinite="ignore")
    codes, scales = quantize(x)
    with pytest.raises(ValueError, match="^scales:"):
        dequantize(codes, scales[:, :1])
    with pytest.raises(TypeError, match="^scales:"):
        dequantize(codes, scales.astype(np.int32))
    with pytest.raises(ValueError, match="^dtype:"):
        dequantize(codes, scales, dtype=np.float16)
    with pytest.raises(ValueError, match="^codes:"):
        dequantize(codes[0], scales[0])


def test_input_dtypes():
    x = _data(np.random.default_rng(1), (8, 128))
    want = quantize(x)
    for other in (x.astype(np.float64), x.tolist()):
        got = quantize(np.asarray(other))
        np.testing.assert_array_equal(got[0], want[0])
    h = x.astype(np.float16)
    np.testing.assert_array_equal(quantize(h)[0], quantize(h.astype(np.float32))[0])
    assert encode_e8m0(np.float32(2.0**-22)) == 105


def test_te_current_scaling_codes_equal_per_tensor_quantize():
    """TE's scale = fl32(fmt_max / amax) multiplies x: torchao's per-tensor product."""
    x = _data(np.random.default_rng(12), (30, 70))
    for fmt in FMTS:
        scale = delayed_scale([np.abs(x).max()], fmt)
        codes, scales = quantize(x, fmt, block=x.shape, convention="torchao")
        np.testing.assert_array_equal(cast_scaled(x, scale, fmt), codes)
        # TE's scale_inv = 1 / scale and quantize's amax / fmt_max agree to one float32 ulp
        assert abs(_bits32(np.float32(1) / scale).astype(np.int64)
                   - _bits32(scales[0, 0]).astype(np.int64)) <= 1


def test_top_level_exports():
    import fp8sim

    assert fp8sim.quantize is quantize and fp8sim.dequantize is dequantize


@pytest.mark.parametrize("convention", ["deepgemm", "torchao"])
def test_blocks_longer_than_the_array_are_the_whole_axis(convention):
    """block=(2**20, 2**20) on (4, 256) is the per-tensor cast (it once padded to 4 TiB)."""
    x = np.random.default_rng(5).standard_normal((4, 256)).astype(np.float32)
    for huge, exact in (((2**20, 2**20), (4, 256)), ((1, 2**40), (1, 256)),
                        ((2**40, 1), (4, 1))):
        c1, s1 = quantize(x, block=huge, convention=convention)
        c2, s2 = quantize(x, block=exact, convention=convention)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(_bits32(s1), _bits32(s2))
        np.testing.assert_array_equal(_bits32(dequantize(c1, s1, block=huge)),
                                      _bits32(dequantize(c2, s2, block=exact)))
    c, s = quantize_mx(x, block=(2**20, 2**20))
    assert s.shape == (1, 1) and c.shape == x.shape


def test_quantize_and_quantize_mx_are_thin_calls_on_blockcast():
    """One description of a block cast: the public functions equal BlockCast(...).cast."""
    from fp8sim.casts import BlockCast

    x = np.random.default_rng(9).standard_normal((40, 300)).astype(np.float32)
    for conv, pow2 in (("deepgemm", False), ("deepgemm", True), ("torchao", True)):
        c1, s1 = quantize(x, "e5m2", block=(8, 64), pow2_scale=pow2, convention=conv)
        c2, s2 = BlockCast(fmt="e5m2", block=(8, 64), convention=conv,
                           pow2_scale=pow2).cast(x)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(_bits32(s1), _bits32(s2))
    for rounding, rule in (("floor", "mx"), ("up", "mx-up")):
        c1, s1 = quantize_mx(x, block=(1, 32), scale_rounding=rounding)
        c2, s2 = BlockCast(block=(1, 32), convention=rule).cast(x, scale_format="e8m0")
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(s1, s2)
    cast = BlockCast(block=(None, 1))
    assert cast.resolve((40, 300)) == (40, 1) and cast.scale_shape((40, 300)) == (1, 300)
    with pytest.raises(ValueError, match="^convention:"):
        BlockCast(convention="te")
    with pytest.raises(ValueError, match="^block:"):
        BlockCast(block=(0, 1))
    with pytest.raises(ValueError, match="^fmt:"):
        BlockCast(fmt="e8m0")
