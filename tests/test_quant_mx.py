"""OCP MX quantization and Transformer Engine's delayed scaling against per-block Python
loops of their formulas (exact arithmetic with Fractions; the tests compare bits)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from quant_helpers import _data, _enc

from fp8sim.casts import cast_scaled, delayed_scale, quantize_mx
from fp8sim.engine.reference import to_float32
from fp8sim.formats.convert import decode
from fp8sim.formats.info import format_info

FMTS = ("e4m3", "e5m2")


def _mx_reference(x: np.ndarray, fmt: str, block: tuple[int, int], up: bool = False):
    """OCP MX: X = floor(log2(amax)) - emax_elem (>= -127), codes = sat(x / 2**X), per block.

    up: Transformer Engine's rule, X = the smallest e with 2**e >= float32(amax / fmt_max).
    """
    info = format_info(fmt)
    m, k = x.shape
    bm, bk = block
    codes = np.zeros((m, k), np.uint8)
    scales = np.zeros((-(-m // bm), -(-k // bk)), np.float32)
    for bi in range(scales.shape[0]):
        for bj in range(scales.shape[1]):
            rows = range(bi * bm, min((bi + 1) * bm, m))
            cols = range(bj * bk, min((bj + 1) * bk, k))
            amax = max((abs(float(x[i, j])) for i in rows for j in cols), default=0.0)
            if amax == 0:
                shared = -127
            elif up:
                ratio = Fraction(float(to_float32(Fraction(amax) / Fraction(info.max))))
                shared = -127
                while Fraction(2) ** shared < ratio:
                    shared += 1
            else:
                shared = max(math.frexp(amax)[1] - 1 - info.emax, -127)
            scales[bi, bj] = 2.0**shared
            for i in rows:
                for j in cols:
                    codes[i, j] = _enc(float(x[i, j]) / 2.0**shared, fmt, True)
    return codes, scales


# --- OCP MX ------------------------------------------------------------------------------


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("block", [(1, 32), (32, 1), (3, 10)])
def test_mx_matches_reference(block, up):
    x = _data(np.random.default_rng(11), (20, 70), log2_range=(-60, -59) if up else (-3, 3))
    x[0, :2] = [2.0**-140, 3e-42]  # float32 subnormals: amax / fmt_max rounds
    rounding = "up" if up else "floor"
    for fmt in FMTS:
        codes, e8 = quantize_mx(x, fmt, block=block, scale_rounding=rounding)
        ref_codes, ref_scales = _mx_reference(x, fmt, block, up)
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_array_equal(decode(e8, "e8m0"), ref_scales)
        _, s32 = quantize_mx(x, fmt, block=block, scale_format="float32",
                             scale_rounding=rounding)
        np.testing.assert_array_equal(s32, ref_scales)


def test_mx_worked_example():
    # amax 1.0: X = 0 - 8, scale 2**-8 (E8M0 code 119); 1.0 -> 256, 1.9 -> 486.4 -> 448 (saturated)
    x = np.zeros((1, 32), np.float32)
    x[0, :3] = [1.0, -0.5, 0.0]
    codes, e8 = quantize_mx(x)
    assert e8[0, 0] == 119
    np.testing.assert_array_equal(decode(codes[0, :3], "e4m3"), [256.0, -128.0, 0.0])
    x[0, 3] = 1.9
    codes, e8 = quantize_mx(x)
    assert e8[0, 0] == 119 and decode(codes[0, 3], "e4m3") == 448.0
    codes, e8 = quantize_mx(np.zeros((2, 64), np.float32))
    assert np.all(e8 == 0) and np.all(codes == 0)  # 2**-127, the smallest E8M0 scale
    tiny = np.full((1, 32), 2.0**-125, np.float32)  # X = -133, clamped at -127
    codes, e8 = quantize_mx(tiny)
    assert e8[0, 0] == 0 and decode(codes[0, 0], "e4m3") == 4.0
    # Transformer Engine's rounding up: amax 1.9 -> 2**ceil(log2(1.9 / 448)) = 2**-7, no clamping
    x[0, 3] = 1.9
    codes, e8 = quantize_mx(x, scale_rounding="up")
    assert e8[0, 0] == 120 and decode(codes[0, 3], "e4m3") == 240.0  # 243.2 -> 240
    with pytest.raises(ValueError, match="^scale_rounding:"):
        quantize_mx(x, scale_rounding="nearest")


# --- Transformer Engine delayed scaling ---------------------------------------------------


def test_delayed_scale():
    hist = np.array([1.0, 3.5, 2.0], np.float32)
    assert delayed_scale(hist) == np.float32(128.0)  # 448 / 3.5
    assert delayed_scale(hist, margin=1) == np.float32(64.0)
    assert delayed_scale(hist, algo="most_recent") == np.float32(448.0)
    assert delayed_scale(hist, "e5m2") == np.float32(57344 / 3.5)
    assert delayed_scale([0.0, 0.0], scale=2.0) == np.float32(2.0)  # kept
    assert delayed_scale([np.inf], scale=3.0) == np.float32(3.0)
    s = delayed_scale([3.0])
    assert s == np.float32(448) / np.float32(3) and isinstance(s, np.float32)
    with pytest.raises(ValueError, match="^amax_history:"):
        delayed_scale([])
    with pytest.raises(ValueError, match="^margin:"):
        delayed_scale([1.0], margin=-1)
    with pytest.raises(ValueError, match="^algo:"):
        delayed_scale([1.0], algo="mean")


def test_cast_scaled_saturates():
    x = np.array([1.0, 4.0, -100.0, 0.1], np.float32)
    codes = cast_scaled(x, np.float32(128.0))  # 4 * 128 = 512 > 448; 12.8 -> 13
    np.testing.assert_array_equal(decode(codes, "e4m3"), [128.0, 448.0, -448.0, 13.0])
