"""Torch tensors at every entry point: one conversion (`fp8sim._torch_arrays`), bits kept,
and a TypeError naming the argument for what has no numpy form (never torch's message)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fp8sim

torch = pytest.importorskip("torch")
fp8torch = pytest.importorskip("fp8sim.torch")


def test_bfloat16_and_grad_tensors_encode_as_their_values():
    x = torch.linspace(-500, 500, 97, dtype=torch.float32)
    want = fp8sim.encode(x.numpy(), "e4m3")
    assert np.array_equal(fp8sim.encode(x.requires_grad_(), "e4m3"), want)
    xb = x.detach().to(torch.bfloat16)
    widened = xb.to(torch.float32).numpy()
    assert np.array_equal(fp8sim.encode(xb, "e5m2"), fp8sim.encode(widened, "e5m2"))
    strided = xb[::3]
    assert np.array_equal(fp8sim.encode(strided, "e5m2"), fp8sim.encode(widened[::3], "e5m2"))


def test_float8_tensors_keep_their_bits():
    t = torch.randn(8, 64).to(torch.float8_e5m2)
    codes = t.view(torch.uint8).numpy()
    assert np.array_equal(fp8sim.decode(t), fp8sim.decode(codes, "e5m2"))
    assert np.array_equal(fp8sim.decode(t.t()), fp8sim.decode(codes.T, "e5m2"))


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: fp8sim.encode(torch.ones(2, dtype=torch.complex64), "e4m3"), TypeError,
     r"^x: expected a float32 or float64 array, got dtype complex64"),
    (lambda: fp8sim.decode(torch.empty(3, dtype=torch.uint8, device="meta")), TypeError,
     r"^codes: .*meta device"),
    (lambda: fp8sim.gemm(torch.zeros(4, 32).to(torch.float8_e4m3fnuz),
                         np.zeros((32, 4), np.uint8)), ValueError, r"^a_format: e4m3fnuz"),
    (lambda: fp8sim.linear(torch.randn(4, 256, dtype=torch.bfloat16),
                           torch.randn(128, 256).to(torch.float8_e4m3fn),
                           recipe="deepseek-v3"), TypeError, r"^w: expected a bfloat16"),
    (lambda: fp8sim.compare(torch.ones(2, 2, dtype=torch.complex64),
                            np.zeros((2, 32), np.uint8), np.zeros((32, 2), np.uint8)),
     TypeError, r"^actual: .*complex64"),
])
def test_tensors_without_a_numpy_form_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_meta_scale_names_the_scale():
    a = torch.randn(16, 64).to(torch.float8_e4m3fn)
    b = torch.randn(32, 64).to(torch.float8_e4m3fn).t()
    meta = torch.empty((), device="meta")
    with pytest.raises(TypeError, match=r"^scale_a: .*meta device"):
        fp8torch.scaled_mm(a, b, meta, torch.tensor(1.0), out_dtype=torch.float32)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_the_layer_refuses_fp8_input_it_would_return_rounded_to_fp8(dtype):
    layer = fp8torch.Float8SimLinear(128, 32, bias=False, recipe="deepseek-v3",
                                     dtype=torch.bfloat16)
    with pytest.raises(TypeError, match=r"^x: expected float16, bfloat16, float32 or float64"):
        layer(torch.randn(4, 128).to(dtype))


def test_bfloat16_tensor_reaches_the_linear_unchanged():
    x = torch.randn(4, 128, dtype=torch.bfloat16)
    w = torch.randn(32, 128, dtype=torch.bfloat16)
    y_t, _, _ = fp8sim.linear(x, w, recipe="deepseek-v3")
    as_np = x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    y_n, _, _ = fp8sim.linear(as_np, w.view(torch.int16).numpy().view(ml_dtypes.bfloat16),
                              recipe="deepseek-v3")
    assert np.array_equal(y_t.view(np.uint16), y_n.view(np.uint16))
