"""quantize's cast conventions against the casts real stacks ran on an H200, bit for bit.

"deepgemm": DeepGEMM's own test casts (golden/deepgemm_public.npz); "torchao": torchao
0.18's blockwise Triton casts (golden/thirdparty_public_a.npz, quant/ -> gemm/ operands).
The committed crop (tests/data/stacks_layers.npz, whole tiles and blocks) always runs;
the full files run when ../shared/golden is there. The Float8 tensorwise / rowwise casts
are checked through the layer outputs (tests/test_layers.py).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from conftest import DATA, SHARED_GOLDEN

import fp8sim
from fp8sim.casts import CONVENTIONS, CastConvention, quantize, torchao_float8_cast

SUBSET = DATA / "stacks_layers.npz"


def _bf16(bits: np.ndarray) -> np.ndarray:
    return np.asarray(bits, np.uint16).view(ml_dtypes.bfloat16)


def _u32(a) -> np.ndarray:
    return np.asarray(a, np.float32).view(np.uint32)


def _check_cast(x_bits, codes, scales, block, convention, *, transpose=False):
    """quantize(x) reproduces the captured codes and scales; returns the mismatch counts."""
    got_c, got_s = quantize(_bf16(x_bits), "e4m3", block=block, convention=convention)
    if transpose:  # w (N, K) cast, stored as B (K, N) and scale_b (K/128, N/128)
        got_c, got_s = got_c.T, got_s.T
    assert got_c.shape == codes.shape and got_s.shape == scales.shape
    return int(np.count_nonzero(got_c != codes)), int(np.count_nonzero(_u32(got_s) != _u32(scales)))


# --- committed crop -------------------------------------------------------------------


@pytest.fixture(scope="module")
def subset():
    return np.load(SUBSET)


def test_deepgemm_casts_committed(subset):
    s = subset
    assert _check_cast(s["dg_x"], s["dg_A"], s["dg_scale_a"], (1, 128), "deepgemm") == (0, 0)
    assert _check_cast(s["dg_y"], s["dg_B"], s["dg_scale_b"], (128, 128), "deepgemm",
                       transpose=True) == (0, 0)
    assert s["dg_A"].size == 16 * 512 and s["dg_B"].size == 512 * 128


def test_deepgemm_casts_are_not_ieee_divisions(subset):
    """The capture tells the two formulas apart: amax / 448 misses many of its scales."""
    x = _bf16(subset["dg_x"]).astype(np.float32).reshape(16, 4, 128)
    amax = np.maximum(np.abs(x).max(axis=2), np.float32(1e-4))
    ieee = amax / np.float32(448)
    recip = amax * (np.float32(1) / np.float32(448))
    assert np.count_nonzero(_u32(ieee) != _u32(subset["dg_scale_a"])) > 10
    np.testing.assert_array_equal(_u32(recip), _u32(subset["dg_scale_a"]))


def test_deepgemm_kernel_reproduces_deepgemm_committed(subset):
    s = subset
    out = fp8sim.KERNELS["deepgemm"](s["dg_A"], s["dg_B"], scale_a=s["dg_scale_a"],
                                     scale_b=s["dg_scale_b"], out_dtype="bfloat16")
    np.testing.assert_array_equal(out.view(np.uint16), s["dg_out"])


def test_torchao_blockwise_casts_committed(subset):
    s = subset
    assert _check_cast(s["ao_x"], s["ao_A"], s["ao_scale_a"], (1, 128), "torchao") == (0, 0)
    assert _check_cast(s["ao_w"], s["ao_B"], s["ao_scale_b"], (128, 128), "torchao",
                       transpose=True) == (0, 0)


def test_conventions_differ_on_the_captures(subset):
    """Each capture rejects the other convention: the tests can tell them apart."""
    s = subset
    assert _check_cast(s["ao_x"], s["ao_A"], s["ao_scale_a"], (1, 128), "deepgemm")[1] > 0
    assert _check_cast(s["dg_x"], s["dg_A"], s["dg_scale_a"], (1, 128), "torchao")[1] > 0


# --- full captures ----------------------------------------------------------------------


@pytest.mark.golden
@pytest.mark.parametrize("case", ["64x256x512/normal", "128x384x1024/outlier"])
def test_deepgemm_casts_full(case):
    z = np.load(SHARED_GOLDEN / "deepgemm_public.npz")
    g = case + "/"
    assert _check_cast(z[g + "x"], z[g + "A"], z[g + "scale_a"], (1, 128), "deepgemm") == (0, 0)
    assert _check_cast(z[g + "y"], z[g + "B"], z[g + "scale_b"], (128, 128), "deepgemm",
                       transpose=True) == (0, 0)
    out = fp8sim.KERNELS["deepgemm"](z[g + "A"], z[g + "B"], scale_a=z[g + "scale_a"],
                                     scale_b=z[g + "scale_b"], out_dtype="bfloat16")
    np.testing.assert_array_equal(out.view(np.uint16), z[g + "out"])


@pytest.mark.golden
@pytest.mark.parametrize("case", ["128x128x512", "64x256x1024"])
def test_torchao_blockwise_casts_full(case):
    z = np.load(SHARED_GOLDEN / "thirdparty_public_a.npz")
    q, g = f"quant/{case}/normal/", f"gemm/{case}/normal/"
    assert _check_cast(z[q + "x"], z[g + "A"], z[g + "scale_a"], (1, 128), "torchao") == (0, 0)
    assert _check_cast(z[q + "w"], z[g + "B"], z[g + "scale_b"], (128, 128), "torchao",
                       transpose=True) == (0, 0)


@pytest.mark.golden
@pytest.mark.parametrize("case", ["128x128x512", "64x256x1024"])
@pytest.mark.parametrize("dist", ["outlier", "wgrad"])
def test_torchao_operands_without_inputs_are_torchao_casts(case, dist):
    """Operands captured without their bf16 inputs: every scale is fl32(1 / fl32(448 / amax))
    for a bfloat16 amax, and every tile's largest code is +-448: 1x128 tiles of A along K,
    and for B 128x128 blocks (forward) or 128x1 tiles along K (wgrad: scale_b (K/128, N))."""
    z = np.load(SHARED_GOLDEN / "thirdparty_public_a.npz")
    g = f"gemm/{case}/{dist}/"
    a, b, sa, sb = z[g + "A"], z[g + "B"], z[g + "scale_a"], z[g + "scale_b"]
    k, n = b.shape
    b_block = (128, 1) if dist == "wgrad" else (128, 128)
    assert sb.shape == (k // 128, n // b_block[1])
    for codes, scales, block in ((a, sa, (1, 128)), (b, sb, b_block)):
        vals = np.abs(fp8sim.decode(codes, "e4m3"))
        bm, bk = block
        tile_max = vals.reshape(vals.shape[0] // bm, bm, vals.shape[1] // bk, bk).max(axis=(1, 3))
        assert np.all(tile_max == 448), (dist, block)
        # an amax that gives each scale: bf16(448 * scale) or one of its neighbours
        guess = (scales.astype(np.float64) * 448).astype(np.float32).astype(ml_dtypes.bfloat16)
        found = np.zeros(scales.shape, bool)
        for step in (-2, -1, 0, 1, 2):
            amax = (guess.view(np.uint16).astype(np.int32) + step).astype(np.uint16)
            mult = (448.0 / amax.view(ml_dtypes.bfloat16).astype(np.float64)).astype(np.float32)
            found |= _u32(np.float32(1) / mult) == _u32(scales)
        assert found.all()


# --- the conventions themselves -----------------------------------------------------------


def test_torchao_float8_cast_is_quantize_over_the_reduced_axis():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((24, 40)) * 3).astype(np.float32).astype(ml_dtypes.bfloat16)
    for fmt in ("e4m3", "e5m2"):
        for dim, block, shape in ((None, (24, 40), (1, 1)), (-1, (1, 40), (24, 1)),
                                  (1, (1, 40), (24, 1)), (0, (24, 1), (1, 40))):
            for pow2 in (False, True):
                c, s = torchao_float8_cast(x, fmt, axiswise_dim=dim,
                                           round_scales_to_power_of_2=pow2)
                c2, s2 = quantize(x, fmt, block=block, convention="torchao", pow2_scale=pow2)
                assert s.shape == shape
                np.testing.assert_array_equal(c, c2)
                np.testing.assert_array_equal(_u32(s), _u32(s2))
                if pow2:
                    assert np.all(np.frexp(s)[0] == 0.5)


def test_torchao_pow2_rounds_the_multiplier_down():
    """amax 3.0: m = 448 / 3 = 149.33 -> 128, scale 1/128; 1.5 * 128 = 192 exactly."""
    x = np.array([[3.0, 1.5, -0.7]], np.float32)
    c, s = quantize(x, block=(1, 3), convention="torchao", pow2_scale=True)
    assert s[0, 0] == np.float32(1 / 128)
    np.testing.assert_array_equal(fp8sim.decode(c, "e4m3")[0], [384.0, 192.0, -88.0])  # -89.6
    c, s = quantize(x, block=(1, 3), convention="deepgemm", pow2_scale=True)
    assert s[0, 0] == np.float32(1 / 128)  # scale 3/448 rounded up: the same power of two


def test_a_what_if_convention_is_data():
    """DeepGEMM's casts with IEEE divisions (the old, wrong model) as a CastConvention."""
    x = np.random.default_rng(6).standard_normal((8, 256)).astype(np.float32)
    ieee = CastConvention(name="ieee", amax_floor=1e-4, multiplier="division",
                          scale="reciprocal-of-multiplier", pow2="scale-up")
    codes, scales = quantize(x, convention=ieee)
    amax = np.maximum(np.abs(x.reshape(8, 2, 128)).max(axis=2), np.float32(1e-4))
    mult = np.float32(448) / amax
    np.testing.assert_array_equal(codes, fp8sim.encode(x.reshape(8, 2, 128) * mult[:, :, None],
                                                       "e4m3").reshape(8, 256))
    np.testing.assert_array_equal(_u32(scales), _u32(np.float32(1) / mult))
    with pytest.raises(ValueError, match="^multiplier:"):
        CastConvention(name="x", amax_floor=0, multiplier="f16", scale="float32-reciprocal",
                       pow2="scale-up")
    with pytest.raises(ValueError, match="^amax_floor:"):
        CastConvention(name="x", amax_floor=-1, multiplier="division",
                       scale="float32-reciprocal", pow2="scale-up")
    assert all(c.verified for c in CONVENTIONS.values())


def test_bad_convention():
    with pytest.raises(ValueError, match="^convention:"):
        quantize(np.ones((2, 2), np.float32), convention="te")
    with pytest.raises(ValueError, match="^axiswise_dim:"):
        torchao_float8_cast(np.ones((2, 2), np.float32), axiswise_dim=2)
