"""fp8sim.linear against one nn.Linear layer as torchao 0.18 ran it on an H200, bit for bit.

golden/thirdparty_public_a.npz ``layer/``: x (256, 512), w (384, 512), gy (256, 384) in
bfloat16 and y, gx, gw under five recipes. The committed subset (tests/data/
stacks_layers.npz) keeps the whole inputs and 16 rows of every output; the full file
runs when ../shared/golden is there. Also: the Hopper bf16 GEMM model against its
reference, the DeepSeek-V3 recipe against DeepGEMM's own outputs, and bad input.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from conftest import DATA, SHARED_GOLDEN

import fp8sim
from fp8sim.engine.bf16 import HOPPER_BF16, gemm_bf16, gemm_bf16_reference
from fp8sim.recipes.layers import (
    GEMMS,
    LINEAR_RECIPES,
    LinearGemm,
    LinearRecipe,
    OperandCast,
    linear,
)

SUBSET = DATA / "stacks_layers.npz"
CAPTURED = {  # fp8sim recipe -> the capture's name
    "torchao-blockwise": "blockwise_cublas",
    "torchao-blockwise-triton": "blockwise_triton",
    "torchao-tensorwise": "tensorwise",
    "torchao-rowwise": "rowwise",
    "torchao-rowwise-gw-hp": "rowwise_with_gw_hp",
}
OUTPUTS = ("y", "gx", "gw")


def _bf16(bits) -> np.ndarray:
    return np.asarray(bits, np.uint16).view(ml_dtypes.bfloat16)


def _to_bf16(v) -> np.ndarray:
    """float64 test data as bfloat16 through float32 (ml_dtypes' own float64 cast changed)."""
    return np.asarray(v, np.float32).astype(ml_dtypes.bfloat16)


def _bits(a) -> np.ndarray:
    return np.asarray(a).view(np.uint16)


@pytest.fixture(scope="module")
def subset():
    z = np.load(SUBSET)
    return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def full():
    z = np.load(SHARED_GOLDEN / "thirdparty_public_a.npz")
    return {k: z[k] for k in z.files if k.startswith("layer/")}


_CACHE: dict[str, tuple] = {}


def _layer(recipe: str, x, w, gy) -> tuple:
    """linear on the captured layer, computed once per recipe for the whole module."""
    if recipe not in _CACHE:
        _CACHE[recipe] = linear(_bf16(x), _bf16(w), _bf16(gy), recipe=recipe)
    return _CACHE[recipe]


@pytest.mark.parametrize("recipe", list(CAPTURED))
def test_layer_committed(recipe, subset):
    s = subset
    got = _layer(recipe, s["layer_x"], s["layer_w"], s["layer_gy"])
    for out, name in zip(got, OUTPUTS, strict=True):
        want = s[f"layer_{CAPTURED[recipe]}_{name}"]
        rows = s[f"rows_{name}"]
        np.testing.assert_array_equal(_bits(out)[rows], want, err_msg=f"{recipe} {name}")


@pytest.mark.golden
@pytest.mark.parametrize("recipe", list(CAPTURED))
def test_layer_full(recipe, full):
    got = _layer(recipe, full["layer/x"], full["layer/w"], full["layer/gy"])
    for out, name in zip(got, OUTPUTS, strict=True):
        want = full[f"layer/{CAPTURED[recipe]}/{name}"]
        diff = int(np.count_nonzero(_bits(out) != want))
        assert diff == 0, f"{recipe} {name}: {diff} of {want.size} differ"


def test_rowwise_and_rowwise_gw_hp_grad_x_differ_where_w_goes_subnormal(subset):
    """The open question: rowwise_with_gw_hp casts w per tensor for grad_x, rowwise per column.

    Both scales are powers of two, and a power-of-two scale on a column of B commutes with
    the MMA steps, promotion and the bf16 rounding: the two grad_x agree except where a
    value of w lands on an E4M3 subnormal under the smaller per-tensor scale (1024 vs 2048
    here) and loses bits it keeps under its column's scale. The captured pair differs in 3
    elements, in columns holding such values.
    """
    s = subset
    x, w, gy = s["layer_x"], s["layer_w"], s["layer_gy"]
    a = _layer("torchao-rowwise", x, w, gy)[1]
    b = _layer("torchao-rowwise-gw-hp", x, w, gy)[1]
    differ = np.argwhere(_bits(a) != _bits(b))
    assert 1 <= len(differ) <= 3
    w16 = _bf16(w)
    col = OperandCast(block=(None, 1), convention="torchao", pow2_scale=True)
    ten = OperandCast(block=(None, None), convention="torchao", pow2_scale=True)
    (cc, sc), (ct, st) = col.cast(w16), ten.cast(w16)
    assert st[0, 0] > sc.min()  # scales are 1 / multiplier: per tensor is the larger
    vc = fp8sim.decode(cc.view(np.uint8), "e4m3").astype(np.float64) * sc
    vt = fp8sim.decode(ct.view(np.uint8), "e4m3").astype(np.float64) * st
    lost = vc != vt
    # the scaled values were below 2**-6, E4M3's smallest normal: subnormal spacing
    assert np.all(np.abs(fp8sim.decode(ct.view(np.uint8), "e4m3")[lost]) <= 2.0**-6)
    assert set(differ[:, 1]) <= set(np.nonzero(lost.any(axis=0))[0])
    # a rowwise_with_gw_hp whose w is cast per column gives rowwise's grad_x exactly
    r = LINEAR_RECIPES["torchao-rowwise-gw-hp"]
    same = r.replace(grad_input=LINEAR_RECIPES["torchao-rowwise"].grad_input)
    np.testing.assert_array_equal(_bits(linear(_bf16(x), w16, _bf16(gy), recipe=same)[1]),
                                  _bits(a))


@pytest.mark.golden
def test_open_question_matches_the_capture(full):
    """The simulated pair differs exactly where the captured pair differs."""
    x, w, gy = full["layer/x"], full["layer/w"], full["layer/gy"]
    a = _layer("torchao-rowwise", x, w, gy)[1]
    b = _layer("torchao-rowwise-gw-hp", x, w, gy)[1]
    captured = full["layer/rowwise/gx"] != full["layer/rowwise_with_gw_hp/gx"]
    np.testing.assert_array_equal(_bits(a) != _bits(b), captured)


def test_scales_after_the_kernel_is_torchaos_arithmetic():
    """scales="after": bf16(fl32(bf16(unit-scale GEMM) * fl32(sa[i] * sb[j]))), as torchao's
    addmm_float8_unwrapped for row-wise scales without fast accumulation. With float32
    (not power-of-two) scales this differs from the row epilogue and from rounding the
    scale product to bf16, which power-of-two scales cannot tell apart."""
    rng = np.random.default_rng(3)
    a = _to_bf16(rng.standard_normal((40, 256)) * 3)
    b = _to_bf16(rng.standard_normal((256, 48)))
    gemm = LinearGemm(a=OperandCast(block=(1, None), convention="torchao"),
                      b=OperandCast(block=(None, 1), convention="torchao"),
                      kernel="cublaslt", scales="after")
    ac, sa, bc, sb = gemm.cast(a, b)
    unit = fp8sim.KERNELS["cublaslt"](ac, bc, scale_a=np.float32(1), scale_b=np.float32(1),
                                      out_dtype="bfloat16")
    post = sa * sb  # (M, 1) * (1, N) in float32
    want = (unit.astype(np.float32) * post).astype(ml_dtypes.bfloat16)
    got = gemm.run(a, b)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    row = fp8sim.KERNELS["torch-rowwise"](ac, bc, scale_a=sa, scale_b=sb)
    assert np.count_nonzero(_bits(row) != _bits(got)) > 0
    rounded = (unit.astype(np.float32) * post.astype(ml_dtypes.bfloat16).astype(np.float32))
    assert np.count_nonzero(_bits(rounded.astype(ml_dtypes.bfloat16)) != _bits(got)) > 0


def test_deepseek_v3_forward_is_deepgemm(subset):
    """deepseek-v3's forward GEMM on DeepGEMM's captured inputs gives DeepGEMM's output."""
    s = subset
    y, gx, gw = linear(_bf16(s["dg_x"]), _bf16(s["dg_y"]), recipe="deepseek-v3")
    assert gx is None and gw is None
    np.testing.assert_array_equal(_bits(y), s["dg_out"])


@pytest.mark.golden
@pytest.mark.parametrize("case", ["64x256x512/normal", "128x384x1024/outlier"])
def test_deepseek_v3_forward_is_deepgemm_full(case):
    z = np.load(SHARED_GOLDEN / "deepgemm_public.npz")
    y, _, _ = linear(_bf16(z[case + "/x"]), _bf16(z[case + "/y"]), recipe="deepseek-v3")
    np.testing.assert_array_equal(_bits(y), z[case + "/out"])


# --- the recipes as data ------------------------------------------------------------------


def test_recipes_cover_the_contract():
    assert set(LINEAR_RECIPES) == {"torchao-blockwise", "torchao-blockwise-triton",
                                   "torchao-tensorwise", "torchao-rowwise",
                                   "torchao-rowwise-gw-hp", "deepseek-v3"}
    assert fp8sim.linear is linear and fp8sim.LINEAR_RECIPES is LINEAR_RECIPES
    tw = LINEAR_RECIPES["torchao-tensorwise"]
    assert tw.grad_input.a.fmt == "e5m2" and tw.forward.a.fmt == "e4m3"
    assert LINEAR_RECIPES["torchao-rowwise-gw-hp"].grad_weight.high_precision
    # torchao runs row-wise GEMMs without fast accumulation as cuBLASLt with unit scales and
    # multiplies afterwards; with power-of-two scales the row epilogue gives the same bits,
    # so only the data can say which one the recipe follows
    for gemm in (LINEAR_RECIPES["torchao-rowwise"].grad_input,
                 LINEAR_RECIPES["torchao-rowwise"].grad_weight,
                 LINEAR_RECIPES["torchao-rowwise-gw-hp"].grad_input):
        assert (gemm.kernel, gemm.scales) == ("cublaslt", "after")
    for r in LINEAR_RECIPES.values():
        assert r.description and set(r.verified) <= set(GEMMS)


def test_linear_shapes_and_batch_dims():
    rng = np.random.default_rng(0)
    x = _to_bf16(rng.standard_normal((2, 3, 64)))
    w = _to_bf16(rng.standard_normal((32, 64)))
    gy = _to_bf16(rng.standard_normal((2, 3, 32)))
    y, gx, gw = linear(x, w, gy, recipe="torchao-rowwise")
    assert y.shape == (2, 3, 32) and gx.shape == (2, 3, 64) and gw.shape == (32, 64)
    assert y.dtype == gx.dtype == gw.dtype == ml_dtypes.bfloat16
    y2, gx2, gw2 = linear(x.reshape(6, 64), w, gy.reshape(6, 32), recipe="torchao-rowwise")
    np.testing.assert_array_equal(_bits(y).reshape(6, 32), _bits(y2))
    np.testing.assert_array_equal(_bits(gw), _bits(gw2))
    # float32 inputs are rounded to bfloat16 first
    y3, _, _ = linear(x.astype(np.float32), w.astype(np.float64), recipe="torchao-rowwise")
    np.testing.assert_array_equal(_bits(y3), _bits(y))


def test_linear_bad_input():
    x = np.ones((4, 8), ml_dtypes.bfloat16)
    w = np.ones((6, 8), ml_dtypes.bfloat16)
    with pytest.raises(ValueError, match="^recipe:"):
        linear(x, w, recipe="fp8")
    with pytest.raises(ValueError, match="^x:"):
        linear(np.ones((4, 7), ml_dtypes.bfloat16), w, recipe="torchao-tensorwise")
    with pytest.raises(ValueError, match="^grad_output:"):
        linear(x, w, np.ones((4, 5), ml_dtypes.bfloat16), recipe="torchao-tensorwise")
    with pytest.raises(TypeError, match="^x:"):
        linear(np.ones((4, 8), np.int32), w, recipe="torchao-tensorwise")
    with pytest.raises(ValueError, match=r"^w: expected a 2-D \(OUT, IN\)"):
        linear(x, np.ones(8, ml_dtypes.bfloat16), recipe="torchao-tensorwise")
    with pytest.raises(ValueError, match=r"^x: expected shape \(\.\.\., 8\).*0-D"):
        linear(np.ones((), ml_dtypes.bfloat16), w, recipe="torchao-tensorwise")
    with pytest.raises(ValueError, match="^block:"):
        OperandCast(block=(0, 128))
    with pytest.raises(ValueError, match="^convention:"):
        OperandCast(convention="te")
    with pytest.raises(ValueError, match="^a, b:"):
        LinearGemm(a=OperandCast(), b=None, kernel="deepgemm")
    with pytest.raises(ValueError, match="^scales:"):
        LinearGemm(a=OperandCast(), b=OperandCast(), kernel="deepgemm", scales="before")
    with pytest.raises(ValueError, match="^kernel:"):
        LinearGemm(a=None, b=None, kernel="deepgemm")
    bad = LINEAR_RECIPES["torchao-tensorwise"].replace(
        forward=LinearGemm(a=OperandCast(), b=OperandCast(), kernel="no-such-kernel"))
    with pytest.raises(ValueError, match="^kernel:"):
        linear(x, w, recipe=bad)
    with pytest.raises(TypeError, match="^bogus:"):
        LINEAR_RECIPES["torchao-tensorwise"].replace(bogus=1)
    assert isinstance(bad, LinearRecipe) and bad.verified == ()


# --- the Hopper bf16 GEMM ------------------------------------------------------------------


def _bf16_data(rng, shape, zeros=0.1) -> np.ndarray:
    v = rng.standard_normal(shape) * 2.0 ** rng.integers(-20, 20, size=shape)
    v[rng.random(shape) < zeros] = 0
    return _to_bf16(v)


@pytest.mark.parametrize("shape", [(3, 40, 5), (2, 16, 3), (4, 1, 2), (1, 77, 7)])
def test_bf16_gemm_matches_reference(shape):
    m, k, n = shape
    rng = np.random.default_rng(k)
    a, b = _bf16_data(rng, (m, k)), _bf16_data(rng, (k, n))
    got = gemm_bf16(a, b, out_dtype="float32")
    ref = gemm_bf16_reference(a, b)
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))
    for step in (HOPPER_BF16.replace(terms=8), HOPPER_BF16.replace(frac_bits=23)):
        np.testing.assert_array_equal(gemm_bf16(a, b, out_dtype="float32", step=step)
                                      .view(np.uint32),
                                      gemm_bf16_reference(a, b, step=step).view(np.uint32))


def test_bf16_gemm_truncates():
    """1 + 8 x 1.5 * 2**-25 in one step: each small term is cut to 2**-25 (25 fractional
    bits below emax = 0), so the sum is 1 + 2**-22, not the exact 1 + 3 * 2**-23."""
    a = np.array([[1.0] + [1.5 * 2.0**-25] * 8], np.float32).astype(ml_dtypes.bfloat16)
    b = np.ones((9, 1), ml_dtypes.bfloat16)
    got = gemm_bf16(a, b, out_dtype="float32")
    assert got[0, 0] == np.float32(1 + 2.0**-22)
    assert np.float32(1 + 3 * 2.0**-23) == 1 + 3 * 2.0**-23  # the exact sum is a float32
    # the same cut when 1 arrives as the C of the next step: C takes part in emax
    a2 = np.array([[1.0] + [0.0] * 15 + [1.5 * 2.0**-25] * 8], np.float32)
    got2 = gemm_bf16(a2.astype(ml_dtypes.bfloat16), np.ones((24, 1), ml_dtypes.bfloat16),
                     out_dtype="float32")
    assert got2[0, 0] == np.float32(1 + 2.0**-22)


def test_bf16_gemm_steps_are_16_products():
    """16 small products, then a large one: in 16-term steps the small ones are summed
    exactly first (1 + 24 * 2**-25); one 32-term step would cut each to 2**-25 (1 + 2**-21)."""
    a = np.array([[1.5 * 2.0**-25] * 16 + [1.0]], np.float32).astype(ml_dtypes.bfloat16)
    b = np.ones((17, 1), ml_dtypes.bfloat16)
    assert gemm_bf16(a, b, out_dtype="float32")[0, 0] == np.float32(1 + 24 * 2.0**-25)
    wide = HOPPER_BF16.replace(terms=32)
    assert gemm_bf16(a, b, out_dtype="float32", step=wide)[0, 0] == np.float32(1 + 2.0**-21)


def test_float64_operands_round_to_bfloat16_as_torch_does():
    """float64 -> bfloat16 goes through float32 (torch's BFloat16 is built from a float),
    whatever ml_dtypes' own float64 cast does (0.5 went through float32, 0.7 rounds once)."""
    above = 1 + 2.0**-8 + 2.0**-40  # above the midpoint of 1 and 1 + 2**-7; float32 drops 2**-40
    a = np.array([[above]])
    one = np.ones((1, 1), ml_dtypes.bfloat16)
    assert gemm_bf16(a, one, out_dtype="float32")[0, 0] == 1.0  # tie to even from float32
    y, _, _ = linear(a, one, recipe="torchao-tensorwise")
    assert _bits(y)[0, 0] == _bits(linear(np.float32(a), one, recipe="torchao-tensorwise")[0])[0, 0]


def test_bf16_gemm_bad_input():
    a = np.ones((2, 3), ml_dtypes.bfloat16)
    with pytest.raises(ValueError, match="^a, b:"):
        gemm_bf16(a, a)
    with pytest.raises(ValueError, match="^out_dtype:"):
        gemm_bf16(a, a.T, out_dtype="float16")
    with pytest.raises(ValueError, match="^step:"):
        gemm_bf16(a, a.T, step=fp8sim.PRESETS["ideal"])
    with pytest.raises(TypeError, match="^a:"):
        gemm_bf16(np.ones((2, 3), np.int8), a.T)


@pytest.mark.parametrize("recipe", list(LINEAR_RECIPES))
def test_linear_with_zero_tokens_gives_nn_linears_empty_shapes(recipe):
    """x (0, IN) gives y (0, OUT), grad_x (0, IN) and grad_w zeros, as nn.Linear does
    (once: "k: expected a positive int" from the grad_weight GEMM)."""
    w = np.ones((6, 8), ml_dtypes.bfloat16)
    for lead in ((0,), (3, 0)):
        x = np.ones((*lead, 8), ml_dtypes.bfloat16)
        gy = np.ones((*lead, 6), ml_dtypes.bfloat16)
        y, gx, gw = linear(x, w, gy, recipe=recipe)
        assert (y.shape, gx.shape, gw.shape) == ((*lead, 6), (*lead, 8), (6, 8))
        assert y.dtype == gx.dtype == gw.dtype == ml_dtypes.bfloat16
        assert not np.any(gw.view(np.uint16))  # +0.0 everywhere
        assert linear(x, w, recipe=recipe)[0].shape == (*lead, 6)


def test_linear_with_empty_in_or_out_names_w():
    """IN = 0 or OUT = 0 leaves a GEMM with nothing to reduce: refused naming w (once a
    numpy reshape error)."""
    for w_shape, x_shape, g_shape in (((6, 0), (4, 0), (4, 6)), ((0, 8), (4, 8), (4, 0))):
        w = np.ones(w_shape, ml_dtypes.bfloat16)
        x = np.ones(x_shape, ml_dtypes.bfloat16)
        g = np.ones(g_shape, ml_dtypes.bfloat16)
        with pytest.raises(ValueError, match=r"^w: expected shape \(OUT, IN\) with OUT >= 1"):
            linear(x, w, g, recipe="torchao-tensorwise")


def test_linear_refuses_what_cannot_fit_before_allocating(monkeypatch):
    """Broadcast views cost nothing until the casts copy them: the layer's estimate is
    checked first (once: fp8sim.gemm refused only after the casts had allocated, or the OS
    killed the process)."""
    from fp8sim import _memory

    monkeypatch.setattr(_memory, "available_memory", lambda: 10**9)
    one = np.ones((1, 256), ml_dtypes.bfloat16)
    x = np.broadcast_to(one, (20000, 256))
    w = np.broadcast_to(one, (20000, 256))
    with pytest.raises(MemoryError, match=r"^linear: x \(20000, 256\) and w \(20000, 256\)"):
        linear(x, w, recipe="deepseek-v3")
    monkeypatch.setattr(_memory, "available_memory", lambda: 64 * 10**9)
    big = np.ones((1, 4096), ml_dtypes.bfloat16)
    with pytest.raises(MemoryError, match="run the tokens in smaller batches"):
        linear(np.broadcast_to(big, (10**6, 4096)), np.broadcast_to(big, (10**5, 4096)),
               recipe="torchao-tensorwise")
