"""fp8_matmul: each recipe is quantize + fp8sim.gemm bit for bit; the error split is as it says."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp8sim
from fp8sim.analysis.matmul import MatmulResult, fp8_matmul
from fp8sim.analysis.stats import error_stats, exact_product
from fp8sim.casts import dequantize, quantize, quantize_mx
from fp8sim.recipes.pipeline import RECIPES, Recipe, get_recipe


def _bits(x) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def _inputs(m=40, k=300, n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k))
    x[rng.random(x.shape) < 0.01] *= 100.0
    w = rng.standard_normal((k, n)) * 0.05
    return x, w


def test_deepseek_v3_is_quantize_plus_group_gemm():
    x, w = _inputs()  # K = 300 and N = 200: partial blocks on both
    r = fp8_matmul(x, w, "deepseek-v3")
    xc, xs = quantize(x.astype(np.float32), "e4m3", block=(1, 128))
    wc, ws = quantize(w.astype(np.float32), "e4m3", block=(128, 128))
    assert xs.shape == (40, 3) and ws.shape == (3, 2)
    want = fp8sim.gemm(xc, wc, scale_a=xs, scale_b=ws, scaling="group", promote=128)
    np.testing.assert_array_equal(_bits(r.out), _bits(want))
    np.testing.assert_array_equal(r.x_codes, xc)
    np.testing.assert_array_equal(r.w_scales, ws)


@settings(max_examples=10, deadline=None)
@given(m=st.integers(1, 70), k=st.integers(1, 400), n=st.integers(1, 300),
       seed=st.integers(0, 2**32 - 1), pow2=st.booleans())
def test_deepseek_v3_random_shapes(m, k, n, seed, pow2):
    x, w = _inputs(m, k, n, seed)
    r = fp8_matmul(x, w, "deepseek-v3-ue8m0" if pow2 else "deepseek-v3")
    xc, xs = quantize(x.astype(np.float32), block=(1, 128), pow2_scale=pow2)
    wc, ws = quantize(w.astype(np.float32), block=(128, 128), pow2_scale=pow2)
    want = fp8sim.gemm(xc, wc, scale_a=xs, scale_b=ws, scaling="group", promote=128)
    np.testing.assert_array_equal(_bits(r.out), _bits(want))


def test_deepseek_v3_ue8m0():
    x, w = _inputs(seed=1)
    r = fp8_matmul(x, w, "deepseek-v3-ue8m0")
    xc, xs = quantize(x.astype(np.float32), block=(1, 128), pow2_scale=True)
    wc, ws = quantize(w.astype(np.float32), block=(128, 128), pow2_scale=True)
    want = fp8sim.gemm(xc, wc, scale_a=xs, scale_b=ws, promote=128)
    np.testing.assert_array_equal(_bits(r.out), _bits(want))
    assert np.all(np.frexp(r.x_scales)[0] == 0.5) and np.all(np.frexp(r.w_scales)[0] == 0.5)


@pytest.mark.parametrize("name,promote", [("per-tensor", 128), ("fast-accum", 0)])
def test_per_tensor_recipes(name, promote):
    x, w = _inputs(seed=2)
    r = fp8_matmul(x, w, name)
    xc, xs = quantize(x.astype(np.float32), block=x.shape)
    wc, ws = quantize(w.astype(np.float32), block=w.shape)
    want = fp8sim.gemm(xc, wc, scale_a=xs[0, 0], scale_b=ws[0, 0], scaling="tensor",
                       promote=promote)
    np.testing.assert_array_equal(_bits(r.out), _bits(want))


def _per_column_group_gemm(xc, sa, wc, sw_cols, promote, **kw):
    """One engine call per output column: the plain meaning of per-column group scales."""
    out = np.empty((xc.shape[0], wc.shape[1]), np.float32)
    for j in range(wc.shape[1]):
        out[:, j:j + 1] = fp8sim.gemm(xc, wc[:, j:j + 1], scale_a=sa, scale_b=sw_cols[:, j:j + 1],
                                      scaling="group", promote=promote, **kw)
    return out


def test_mx_is_promotion_every_32_with_per_column_scales():
    x, w = _inputs(m=20, k=100, n=40, seed=3)
    w[:, 5] = w[:, 6]  # two columns with identical scales share one engine call
    r = fp8_matmul(x, w, "mx")
    xc, xs = quantize_mx(x.astype(np.float32), block=(1, 32), scale_format="float32")
    wc, ws = quantize_mx(w.astype(np.float32), block=(32, 1), scale_format="float32")
    assert xs.shape == (20, 4) and ws.shape == (4, 40)
    want = _per_column_group_gemm(xc, xs, wc, ws, 32)
    np.testing.assert_array_equal(_bits(r.out), _bits(want))
    np.testing.assert_array_equal(r.w_codes, wc)


def test_mx_te_scales_round_up():
    x, w = _inputs(m=8, k=64, n=130, seed=9)
    r = fp8_matmul(x, w, "mx-te")
    xc, xs = quantize_mx(x.astype(np.float32), scale_rounding="up", scale_format="float32")
    wc, ws = quantize_mx(w.astype(np.float32), block=(32, 1), scale_rounding="up",
                         scale_format="float32")
    np.testing.assert_array_equal(_bits(r.out), _bits(_per_column_group_gemm(xc, xs, wc, ws, 32)))


@pytest.mark.parametrize("w_block", [(128, 64), (128, 1), (256, 192), (128, 256)])
def test_group_scales_of_any_block_shape(w_block):
    """Weight blocks narrower or wider than the engine's 128 columns, K blocks of 2x promote."""
    x, w = _inputs(m=9, k=260, n=300, seed=4)
    r = fp8_matmul(x, w, "deepseek-v3", w_block=w_block, x_block=(4, 256), promote=128)
    xc, xs = quantize(x.astype(np.float32), block=(4, 256))
    wc, ws = quantize(w.astype(np.float32), block=w_block)
    g = np.arange(3) * 128  # promotion groups of K
    sa = np.repeat(xs, 4, axis=0)[:9][:, g // 256]
    sw_cols = np.repeat(ws[g // w_block[0]], w_block[1], axis=1)[:, :300]
    want = _per_column_group_gemm(xc, sa, wc, sw_cols, 128)
    np.testing.assert_array_equal(_bits(r.out), _bits(want))


def test_row_scaling():
    x, w = _inputs(seed=5)
    rec = Recipe(name="rowwise", x_block=(1, None), w_block=(None, 1), scaling="row", promote=0)
    r = fp8_matmul(x, w, rec)
    xc, xs = quantize(x.astype(np.float32), block=(1, 300))
    wc, ws = quantize(w.astype(np.float32), block=(300, 1))
    want = fp8sim.gemm(xc, wc, scale_a=xs, scale_b=ws, scaling="row")
    np.testing.assert_array_equal(_bits(r.out), _bits(want))


def test_error_split():
    x, w = _inputs(seed=6)
    r = fp8_matmul(x, w)
    exact = exact_product(x, w)
    q = exact_product(dequantize(r.x_codes, r.x_scales, dtype=np.float64),
                      dequantize(r.w_codes, r.w_scales, block=(128, 128), dtype=np.float64))
    np.testing.assert_array_equal(r.exact, exact)
    np.testing.assert_array_equal(r.quantized_exact, q)
    for got, want in ((r.total, error_stats(r.out, exact)),
                      (r.quantization, error_stats(q, exact)),
                      (r.accumulation, error_stats(r.out, q))):
        assert {k: got[k] for k in want} == want
        assert 0 < got["fro_rel_error"] < 0.1
    # 13-bit truncated MMA steps promoted every 128 cost far less than the E4M3 casts
    assert r.accumulation["fro_rel_error"] < r.quantization["fro_rel_error"] / 10
    assert "quantization" in r.summary() and isinstance(r, MatmulResult)


def test_quantization_error_zero_for_representable_inputs():
    """Small integers with power-of-two scales quantize exactly: only accumulation is left."""
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, size=(16, 256)).astype(np.float32)
    x[:, ::128] = 2.0  # amax 2 in every block: scale 2**-7, codes x * 128, exact
    w = rng.integers(-2, 3, size=(256, 8)).astype(np.float32)
    w[::128] = 2.0
    r = fp8_matmul(x, w, "deepseek-v3-ue8m0")
    assert r.quantization["max_abs_error"] == 0.0
    assert r.accumulation == r.total
    ideal = fp8_matmul(x, w, "deepseek-v3-ue8m0", preset="ideal")
    np.testing.assert_array_equal(ideal.out, exact_product(x, w))  # small integer sums


def test_out_dtype_and_overrides():
    x, w = _inputs(m=8, k=128, n=16, seed=8)
    r = fp8_matmul(x, w, "deepseek-v3", out_dtype="bfloat16")
    f32 = fp8_matmul(x, w, "deepseek-v3").out
    assert r.out.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(r.out, f32.astype(ml_dtypes.bfloat16))
    assert r.recipe.name == "deepseek-v3[out_dtype=bfloat16]"
    fast = fp8_matmul(x, w, RECIPES["per-tensor"].replace(promote=0))
    np.testing.assert_array_equal(_bits(fast.out), _bits(fp8_matmul(x, w, "fast-accum").out))


def test_recipes_are_frozen_and_exported():
    assert set(RECIPES) >= {"deepseek-v3", "per-tensor", "fast-accum", "mx", "mx-te"}
    assert fp8sim.RECIPES is RECIPES and fp8sim.fp8_matmul is fp8_matmul
    r = get_recipe("mx")
    assert r.pow2_scale and r.promote == 32 and r.x_block == (1, 32)
    assert not RECIPES["deepseek-v3"].pow2_scale
    with pytest.raises(AttributeError):
        r.promote = 128


def test_empty_outputs():
    r = fp8_matmul(np.zeros((0, 256)), np.ones((256, 4)))
    assert r.out.shape == (0, 4) and r.total["outputs"] == 0
    r = fp8_matmul(np.ones((3, 256)), np.ones((256, 0)), "mx")
    assert r.out.shape == (3, 0)


def test_errors():
    x, w = _inputs(m=4, k=128, n=8)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="^x: contains NaN/Inf"):
        fp8_matmul(bad, w)
    badw = w.copy()
    badw[3, 3] = -np.inf
    with pytest.raises(ValueError, match="^w: contains NaN/Inf"):
        fp8_matmul(x, badw)
    with pytest.raises(ValueError, match="^w:"):
        fp8_matmul(x, w[:64])
    with pytest.raises(ValueError, match="^x: K must be at least 1"):
        fp8_matmul(np.zeros((4, 0)), np.zeros((0, 8)))
    with pytest.raises(ValueError, match="^recipe:"):
        fp8_matmul(x, w, "deepseek")
    with pytest.raises(ValueError, match="^promote:"):
        fp8_matmul(x, w, promote=256)  # 1x128 blocks cannot be scaled every 256
    with pytest.raises(ValueError, match="^x_block:"):
        fp8_matmul(x, w, "deepseek-v3", scaling="tensor")
    with pytest.raises(ValueError, match="^x_block:"):
        fp8_matmul(x, w, x_block=(0, 128))
    with pytest.raises(ValueError, match="^w_block:"):
        fp8_matmul(x, w, w_block=128)
    with pytest.raises(ValueError, match="^scale_rule:"):
        fp8_matmul(x, w, scale_rule="log")
    with pytest.raises(ValueError, match="^scaling:"):
        fp8_matmul(x, w, scaling="block")
    with pytest.raises(ValueError, match="^x:"):
        fp8_matmul(x[0], w)
    with pytest.raises(TypeError, match="^x:"):
        fp8_matmul(x.astype(np.int64), w)
    with pytest.raises(TypeError, match="^promotion: not a Recipe field"):
        fp8_matmul(x, w, promotion=128)
    with pytest.raises(ValueError, match="^x_format:"):
        fp8_matmul(x, w, x_format="e3m4")
    with pytest.raises(ValueError, match="^w_format:"):
        fp8_matmul(x, w, w_format="e8m0")


def test_error_split_experiment_runs(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "error_split.py"
    spec = importlib.util.spec_from_file_location("error_split", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.run(8, 256, 16, ("deepseek-v3", "fast-accum"))
    assert [r["recipe"] for r in rows] == ["deepseek-v3", "fast-accum"]
    assert all(r["accumulation_fro_rel"] < r["quantization_fro_rel"] for r in rows)
    fig = mod.plot(rows)
    assert fig.axes[0].get_ylabel() and fig.axes[0].get_title()
    assert mod.main(["--m", "4", "--k", "64", "--n", "8", "--recipes", "mx",
                     "--json", str(tmp_path / "r.json")]) == 0


def test_a_gemm_recipe_is_the_layer_recipes_gemm():
    """One description: named GEMM recipes and Recipe(...) are LinearGemm values whose casts
    are BlockCast values; flat fields read back and replace() takes them."""
    from fp8sim.casts import BlockCast
    from fp8sim.recipes import pipeline
    from fp8sim.recipes.recipe import LinearGemm

    for r in RECIPES.values():
        assert isinstance(r, LinearGemm) and isinstance(r.a, BlockCast)
    r = RECIPES["mx-te"]
    assert (r.x_block, r.w_block, r.scale_rule, r.promote, r.scaling) == (
        (1, 32), (32, 1), "mx-up", 32, "group")
    assert r.a == BlockCast(block=(1, 32), convention="mx-up") and r.pow2_scale
    rec = Recipe(name="rw", x_block=(1, None), w_block=(None, 1), scaling="row", promote=0)
    assert isinstance(rec, LinearGemm) and get_recipe(rec) is rec
    same = RECIPES["deepseek-v3"].replace(promote=0, preset="ideal")
    assert (same.promote, same.preset, same.name) == (
        0, "ideal", "deepseek-v3[promote=0][preset=ideal]")
    assert not hasattr(pipeline, "fp8_matmul")  # analysis work: fp8sim.analysis.matmul
