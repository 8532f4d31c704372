"""The GPU port of the casts and of a recipe's Linear layer, bit for bit against the CPU ones.

The port (`fp8sim.recipes.gpu_casts`, `fp8sim.recipes.gpu_linear`) is written once for any
array module: with numpy it replays on this CPU the very operations CuPy runs on the GPU,
so CI checks the arithmetic here. The tests marked `gpu` run the same on a CUDA device
(CuPy, and torch for the layer) and skip elsewhere.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fp8sim
from fp8sim.casts import quantize as _quantize
from fp8sim.casts.block import pow2_ceil as _pow2_ceil
from fp8sim.casts.block import pow2_floor_log2f as _pow2_floor_log2f
from fp8sim.engine import _gpu, _gpu_arrays
from fp8sim.recipes import gpu_casts, gpu_linear
from fp8sim.recipes.layers import GEMMS, LINEAR_RECIPES, linear

NO_GPU = _gpu.available()
gpu = pytest.mark.skipif(NO_GPU is not None, reason=f"GPU engine unavailable: {NO_GPU}")
GPU_RECIPES = [n for n, r in LINEAR_RECIPES.items()
               if not any(r.gemm(g).high_precision for g in GEMMS)]


def _float32_cases() -> np.ndarray:
    """Every bfloat16 bit pattern and 100,000 random float32 ones (NaN, Inf, subnormals)."""
    rng = np.random.default_rng(5)
    every_bf16 = (np.arange(65536, dtype=np.uint32) << 16).view(np.float32)
    rnd = rng.integers(0, 2**32, 100_000, dtype=np.uint32).view(np.float32)
    return np.concatenate([every_bf16, rnd])


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("saturate", [False, True])
def test_encode_replay_matches_fp8sim_encode(fmt, saturate):
    """The integer/binade encode gives fp8sim.encode's code for every case, NaN/Inf too."""
    x = _float32_cases()
    with np.errstate(over="ignore", invalid="ignore"):
        want = fp8sim.encode(x, fmt, saturate=saturate)
    got = gpu_casts.encode(x, fmt, np, saturate=saturate)
    assert np.array_equal(got, want)


def test_pow2_floor_log2f_replay_matches_the_cpu_cast():
    """Bits and the ulp table give 2**floor(fl32(log2 m)), also just below every power of two."""
    x = _float32_cases()
    pos = np.abs(x[np.isfinite(x) & (x != 0)])
    e = np.arange(-149, 127)
    near = [(2.0 ** (e + 1) - d * 2.0 ** (np.maximum(e, -126) - 23)).astype(np.float32)
            for d in range(1, 70)]
    m = np.concatenate([pos, *near, np.float32([0, np.inf, np.nan, 2.0**-149, 3.4e38])])
    m = m[m >= 0]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        want = _pow2_floor_log2f(m)
    got = gpu_casts.pow2_floor_log2f(m, np)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_pow2_ceil_and_bf16_rounding_replay():
    x = _float32_cases()
    pos = np.abs(x[np.isfinite(x) & (x > 2.0**-126)])
    with np.errstate(over="ignore"):
        want = _pow2_ceil(pos)
    assert np.array_equal(gpu_casts.pow2_ceil(pos, np).view(np.uint32), want.view(np.uint32))
    fin = x[np.isfinite(x)]
    with np.errstate(over="ignore"):
        want16 = fin.astype(ml_dtypes.bfloat16).view(np.uint16)
    assert np.array_equal(gpu_casts.bf16_bits(fin, np, nan="quiet"), want16)
    assert gpu_casts.bf16_bits(np.float32([np.nan]), np)[0] == 0x7FFF


def _operand(rng, shape, extreme: bool = True) -> np.ndarray:
    """bfloat16-valued float32 data over a wide range, with a zero row (and with `extreme`
    subnormals and a value near the float32 maximum)."""
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, (shape[0], 1))
    if shape[0] > 1:
        x[1] = 0.0
    if extreme:
        x[2, :5] = [1e-39, -1e-39, 3e38, -2.5e-40, 1e-45]
    return x.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def _cast_id(op) -> str:
    return f"{op.convention}-{op.fmt}-{op.block}-{'pow2' if op.pow2_scale else 'f32'}"


def _casts():
    """Every distinct OperandCast of the recipes."""
    seen = {}
    for r in LINEAR_RECIPES.values():
        for g in GEMMS:
            gm = r.gemm(g)
            for op in (gm.a, gm.b):
                if op is not None:
                    seen[repr(op)] = op
    return list(seen.values())


@pytest.mark.parametrize("op", _casts(), ids=_cast_id)
def test_quantize_replay_matches_the_cpu_casts(op):
    """Codes and scales of every cast the recipes run, with partial edge blocks."""
    rng = np.random.default_rng(7)
    x = _operand(rng, (200, 300))
    block = op.resolve(x.shape)
    want_c, want_s = _quantize(x, op.fmt, block=block, pow2_scale=op.pow2_scale,
                               convention=op.convention)
    got_c, got_s = gpu_casts.quantize(x, op.fmt, block=block, pow2_scale=op.pow2_scale,
                                      convention=op.convention, xp=np)
    assert np.array_equal(got_c, want_c)
    assert np.array_equal(got_s.view(np.uint32), want_s.view(np.uint32))


@pytest.mark.parametrize("convention", ["deepgemm", "torchao"])
def test_quantize_replay_pow2_both_conventions(convention):
    rng = np.random.default_rng(8)
    x = _operand(rng, (130, 260))
    for block in [(1, 128), (128, 128), (130, 260)]:
        want = _quantize(x, "e4m3", block=block, pow2_scale=True, convention=convention)
        got = gpu_casts.quantize(x, "e4m3", block=block, pow2_scale=True,
                                 convention=convention, xp=np)
        assert np.array_equal(got[0], want[0])
        assert np.array_equal(got[1].view(np.uint32), want[1].view(np.uint32))


def test_quantize_refuses_nonfinite_and_bad_shapes():
    with pytest.raises(ValueError, match="^x: contains NaN"):
        gpu_casts.quantize(np.float32([[1.0, np.inf]]), "e4m3", xp=np)
    with pytest.raises(ValueError, match="^x: expected a 2-D"):
        gpu_casts.quantize(np.ones(4, np.float32), "e4m3", xp=np)
    with pytest.raises(ValueError, match="^fmt: "):
        gpu_casts.encode(np.ones(4, np.float32), "e8m0", np)


@pytest.mark.parametrize("m, in_f, out_f", [(96, 160, 136), (256, 1, 128), (256, 128, 1)])
@pytest.mark.parametrize("recipe", GPU_RECIPES)
def test_gpu_linear_replay_matches_fp8sim_linear(recipe, m, in_f, out_f):
    """The device layer's flow (casts, scale paths, bf16 rounding) on numpy = fp8sim.linear;
    IN or OUT = 1 makes a GEMM's N 1, where two scale layouts have one shape (named, not
    inferred)."""
    rng = np.random.default_rng(9)
    x, w, gy = (_operand(rng, s, extreme=False)
                for s in ((m, in_f), (out_f, in_f), (m, out_f)))
    bf = ml_dtypes.bfloat16
    want = linear(x.astype(bf), w.astype(bf), gy.astype(bf), recipe=recipe)
    r = LINEAR_RECIPES[recipe]
    y = gpu_linear.linear_forward(r, x, w, np)
    gx, gw = gpu_linear.linear_backward(r, x, w, gy, np)
    for got, exp in zip((y, gx, gw), want, strict=True):
        assert np.array_equal(got, exp.view(np.uint16))


def test_gpu_linear_refuses_bf16_gemms():
    r = LINEAR_RECIPES["torchao-rowwise-gw-hp"]
    x = np.ones((4, 8), np.float32)
    with pytest.raises(ValueError, match="^kernel: 'hopper-bf16'"):
        gpu_linear.linear_backward(r, x, np.ones((8, 8), np.float32), x, np)


class _FakeDevice:
    """Any object with __cuda_array_interface__ counts as a GPU array."""

    __cuda_array_interface__ = {}
    shape = (4, 4)


def test_device_arrays_are_recognised_and_refused_by_the_cpu_engine():
    assert _gpu_arrays.is_device(None, _FakeDevice())
    assert not _gpu_arrays.is_device(np.zeros(3), None)
    with pytest.raises(TypeError, match="^b: a GPU array needs engine='gpu'"):
        fp8sim.gemm(np.zeros((4, 4), np.uint8), _FakeDevice())


# --- on a GPU ----------------------------------------------------------------------


@gpu
@pytest.mark.parametrize("op", _casts(), ids=_cast_id)
def test_gpu_quantize_matches_the_cpu_casts(op):
    import cupy as cp

    rng = np.random.default_rng(7)
    x = _operand(rng, (300, 520))
    block = op.resolve(x.shape)
    want = _quantize(x, op.fmt, block=block, pow2_scale=op.pow2_scale, convention=op.convention)
    got = gpu_casts.quantize(cp.asarray(x), op.fmt, block=block, pow2_scale=op.pow2_scale,
                             convention=op.convention, xp=cp)
    assert np.array_equal(got[0].get(), want[0])
    assert np.array_equal(got[1].get().view(np.uint32), want[1].view(np.uint32))


@gpu
def test_gpu_encode_matches_fp8sim_encode():
    import cupy as cp

    x = _float32_cases()
    for fmt in ("e4m3", "e5m2"):
        for sat in (False, True):
            with np.errstate(over="ignore", invalid="ignore"):
                want = fp8sim.encode(x, fmt, saturate=sat)
            got = gpu_casts.encode(cp.asarray(x), fmt, cp, saturate=sat).get()
            assert np.array_equal(got, want), (fmt, sat)


@gpu
@pytest.mark.parametrize("out_dtype", ["float32", "bfloat16"])
def test_gemm_on_device_arrays_returns_device_arrays(out_dtype):
    """CuPy in, CuPy out; torch CUDA in, torch CUDA out; the host engine's bits."""
    import cupy as cp

    rng = np.random.default_rng(3)
    a = rng.integers(0, 126, (100, 300), dtype=np.uint8)
    b = rng.integers(0, 126, (300, 260), dtype=np.uint8)
    sa = rng.random((100, 3), dtype=np.float32)
    sb = rng.random((3, 3), dtype=np.float32)
    kw = {"promote": 128, "out_dtype": out_dtype}
    want = fp8sim.gemm(a, b, scale_a=sa, scale_b=sb, **kw)
    got = fp8sim.gemm(cp.asarray(a), cp.asarray(b), scale_a=cp.asarray(sa),
                      scale_b=cp.asarray(sb), engine="gpu", **kw)
    assert isinstance(got, cp.ndarray)
    assert np.array_equal(got.get().view(np.uint8), want.view(np.uint8))
    torch = pytest.importorskip("torch")
    got_t = fp8sim.gemm(torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda"),
                        scale_a=torch.as_tensor(sa, device="cuda"),
                        scale_b=torch.as_tensor(sb, device="cuda"), engine="gpu", **kw)
    assert isinstance(got_t, torch.Tensor) and got_t.is_cuda
    bits = got_t.cpu().view(torch.int16 if out_dtype == "bfloat16" else torch.int32).numpy()
    assert np.array_equal(bits.view(np.uint8), want.view(np.uint8))


SMALL_SHAPE = (3, 32, 160, 136)
SPLIT_SHAPE = (4, 2048, 384, 256)
"""(batch, tokens, in, out) whose Wgrad (256 x 384, K = 8192 tokens) cuBLASLt splits."""


@gpu
@pytest.mark.parametrize("shape", [SMALL_SHAPE, SPLIT_SHAPE], ids=["small", "split"])
@pytest.mark.parametrize("recipe", GPU_RECIPES)
def test_float8simlinear_on_the_gpu_matches_the_cpu(recipe, shape):
    """forward, grad_input and grad_weight of Float8SimLinear(engine='gpu') = engine='cpu'."""
    torch = pytest.importorskip("torch")
    from fp8sim.torch import Float8SimLinear

    batch, tokens, d_in, d_out = shape
    torch.manual_seed(0)
    cpu = Float8SimLinear(d_in, d_out, bias=False, recipe=recipe)
    dev = Float8SimLinear(d_in, d_out, bias=False, recipe=recipe, engine="gpu").cuda()
    with torch.no_grad():
        dev.weight.copy_(cpu.weight)
    x = torch.randn(batch, tokens, d_in).to(torch.bfloat16)
    gy = torch.randn(batch, tokens, d_out).to(torch.bfloat16)
    outs = []
    for layer, xx, gg in ((cpu, x, gy), (dev, x.cuda(), gy.cuda())):
        xx = xx.clone().requires_grad_(True)
        y = layer(xx)
        y.backward(gg)
        outs.append([t.detach().float().cpu() for t in (y, xx.grad, layer.weight.grad)])
    for c, d in zip(*outs, strict=True):
        assert torch.equal(c.view(torch.int32), d.view(torch.int32))


def test_float8simlinear_engine_is_checked():
    torch = pytest.importorskip("torch")
    from fp8sim.torch import Float8SimLinear, swap_linears

    with pytest.raises(ValueError, match="^engine: expected 'cpu' or 'gpu', got 'tpu'"):
        Float8SimLinear(8, 8, recipe="deepseek-v3", engine="tpu")
    if NO_GPU is not None:
        with pytest.raises(ValueError, match="^engine: 'gpu' cannot run here"):
            swap_linears(torch.nn.Linear(8, 8), recipe="deepseek-v3", engine="gpu")


def test_float32_reciprocal_in_float64_equals_float32_division():
    """The deepgemm multiplier's 1 / amax, computed in float64 (no FTZ on the GPU), is the
    float32 quotient bit for bit, subnormal quotients of huge amax included."""
    rng = np.random.default_rng(12)
    bits = rng.integers(0x0080_0000, 0x7F80_0000, 200_000, dtype=np.uint32)
    amax = np.concatenate([bits.view(np.float32), np.float32([3e38, 3.4e38, 1e-4, 2.0**126,
                                                              2.0**127 * 1.5])])
    want = np.float32(1) / amax
    got = gpu_casts._fl32_in_float64(1.0 / amax.astype(np.float64), np)
    assert got.dtype == np.float64  # rounded in float64: the float32 cast comes later
    assert np.array_equal(got.view(np.uint64), want.astype(np.float64).view(np.uint64))


def test_gpu_modules_call_names_that_exist():
    """The GPU paths run only on a GPU, never in CI: every `g.NAME` they take from the CPU
    engine must still exist there (a rename once broke them unseen)."""
    import inspect
    import re

    from fp8sim.engine import gemm as g

    source = inspect.getsource(_gpu_arrays)
    names = set(re.findall(r"\bg\.([A-Za-z_]\w*)", source))
    assert names and not [n for n in names if not hasattr(g, n)]


class _DeviceLike(np.ndarray):
    """A host array that says it lives on a GPU (has __cuda_array_interface__)."""

    @property
    def __cuda_array_interface__(self):
        return {}


@pytest.mark.parametrize("out", ["float32", "bfloat16"])
@pytest.mark.parametrize("kernel", ["cublaslt", "cublaslt-blockwise"])
def test_split_k_on_device_arrays_takes_the_host_path_bits(monkeypatch, kernel, out):
    """gemm_split_k's device branch (slices on the GPU engine, host scales, bfloat16 bits)
    with numpy standing in for CuPy and the CPU engine for the GPU one: the bits of the
    host path, for the kernels a recipe runs split (Wgrad at few output tiles; row-wise
    scaling never splits K, and its kernels refuse slices)."""
    import types

    from fp8sim.engine import _gpu, splitk
    from fp8sim.engine.gemm import gemm as cpu_gemm

    fake_cp = types.SimpleNamespace(**{n: getattr(np, n) for n in (
        "asarray", "ascontiguousarray", "isnan", "where")}, asnumpy=np.asarray)
    monkeypatch.setattr(_gpu, "_cupy", lambda: fake_cp)
    monkeypatch.setattr(splitk, "gemm", lambda a, b, engine="cpu", **kw: cpu_gemm(
        np.asarray(a), np.asarray(b), **kw))
    rng = np.random.default_rng(13)
    m, k, n = 8, 3 * 1024, 24
    a = fp8sim.encode(rng.standard_normal((m, k)).astype(np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((k, n)).astype(np.float32), "e4m3")
    kern = fp8sim.KERNELS[kernel]
    if kernel == "cublaslt":
        sa, sb = np.float32(0.5), np.float32(3.0)
    else:
        sa, sb = rng.random((m, k // 128), np.float32) + 0.5, \
            rng.random((k // 128, 1), np.float32) + 0.5
    want = kern(a, b, scale_a=sa, scale_b=sb, out_dtype=out, slices=3)
    dev = [np.asarray(x).view(_DeviceLike) for x in (a, b, sa, sb)]
    got = kern(dev[0], dev[1], scale_a=dev[2], scale_b=dev[3], out_dtype=out, slices=3,
               a_format="e4m3", b_format="e4m3")
    assert np.array_equal(np.asarray(got).view(np.uint16 if out != "float32" else np.uint32),
                          want.view(np.uint16 if out != "float32" else np.uint32))
