"""The torch wrapper (fp8sim[torch]): Float8SimLinear is bit-exact with fp8sim.linear (and so
differs from nn.Linear), in a swapped model too.

Skipped when torch is not installed.
"""

from __future__ import annotations

import copy

import ml_dtypes
import numpy as np
import pytest
from conftest import DATA

torch = pytest.importorskip("torch")

import fp8sim  # noqa: E402
from fp8sim.recipes.layers import linear  # noqa: E402
from fp8sim.torch import (  # noqa: E402
    Float8SimLinear,
    Float8SimLinearFunction,
    swap_linears,
)


def _tensor(bits: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(bits).view(np.int16)).view(torch.bfloat16)


def _bits(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().contiguous().view(torch.int16).numpy().view(np.uint16)
    return np.asarray(t).view(np.uint16)


@pytest.fixture(scope="module")
def layer():
    z = np.load(DATA / "stacks_layers.npz")
    return z["layer_x"][:64], z["layer_w"][:128], z["layer_gy"][:64, :128]


@pytest.mark.parametrize("recipe", ["torchao-tensorwise", "torchao-rowwise",
                                    "torchao-rowwise-gw-hp", "deepseek-v3"])
def test_module_is_bit_exact_with_linear(recipe, layer):
    xb, wb, gb = layer
    lin = torch.nn.Linear(wb.shape[1], wb.shape[0], bias=False, dtype=torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(_tensor(wb))
    mod = Float8SimLinear.from_linear(lin, recipe=recipe)
    assert mod.weight is lin.weight  # shared, not copied
    x = _tensor(xb).requires_grad_(True)
    y = mod(x)
    y.backward(_tensor(gb))
    want = linear(xb.view(ml_dtypes.bfloat16), wb.view(ml_dtypes.bfloat16),
                  gb.view(ml_dtypes.bfloat16), recipe=recipe)
    for got, ref in zip((y, x.grad, mod.weight.grad), want, strict=True):
        assert got.dtype == torch.bfloat16
        np.testing.assert_array_equal(_bits(got), _bits(ref))


def test_float32_model_rounds_operands_to_bf16(layer):
    xb, wb, gb = layer
    x32 = _tensor(xb).float().requires_grad_(True)
    lin = torch.nn.Linear(wb.shape[1], wb.shape[0], bias=True)
    with torch.no_grad():
        lin.weight.copy_(_tensor(wb).float())
        lin.bias.fill_(0.5)
    mod = Float8SimLinear.from_linear(lin, recipe="torchao-rowwise")
    y = mod(x32)
    assert y.dtype == torch.float32
    y.backward(_tensor(gb).float())
    ref = linear(xb.view(ml_dtypes.bfloat16), wb.view(ml_dtypes.bfloat16),
                 gb.view(ml_dtypes.bfloat16), recipe="torchao-rowwise")
    np.testing.assert_array_equal(_bits((y - 0.5).to(torch.bfloat16)), _bits(ref[0]))
    np.testing.assert_array_equal(_bits(x32.grad.to(torch.bfloat16)), _bits(ref[1]))
    np.testing.assert_array_equal(_bits(mod.weight.grad.to(torch.bfloat16)), _bits(ref[2]))
    np.testing.assert_array_equal(mod.bias.grad.numpy(), _tensor(gb).float().sum(0).numpy())


def _differ(t: torch.Tensor, ref: np.ndarray) -> float:
    """The share of elements whose bits differ."""
    return float(np.mean(_bits(t) != _bits(ref)))


@pytest.mark.parametrize("recipe", ["torchao-tensorwise", "deepseek-v3"])
def test_swapped_mlp_runs_fp8_linear_not_nn_linear(recipe):
    """A two-layer bfloat16 MLP after swap_linears: its output and all three gradients are
    fp8sim.linear's bits, layer by layer (torch's ReLU between, its backward too), not what
    the plain nn.Linear model computes; one SGD step moves the weights by those gradients."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 256, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128, bias=False)).to(torch.bfloat16)
    plain = copy.deepcopy(model)
    w0, w1 = model[0].weight, model[2].weight
    assert swap_linears(model, recipe=recipe) is model
    assert isinstance(model[0], Float8SimLinear) and isinstance(model[2], Float8SimLinear)
    assert model[0].weight is w0 and recipe in repr(model)
    x = torch.randn(64, 128).to(torch.bfloat16).requires_grad_(True)
    gy = torch.randn(64, 128).to(torch.bfloat16)
    y = model(x)
    y.backward(gy)

    def bf16(t):
        return _bits(t).view(ml_dtypes.bfloat16)

    h, _, _ = linear(bf16(x), bf16(w0), recipe=recipe)
    ht = _tensor(h.view(np.uint16)).requires_grad_(True)
    r = torch.relu(ht)
    y1, gr, gw1 = linear(bf16(r), bf16(w1), bf16(gy), recipe=recipe)
    r.backward(_tensor(gr.view(np.uint16)))  # ReLU's backward: the gradient of h
    _, gx, gw0 = linear(bf16(x), bf16(w0), bf16(ht.grad), recipe=recipe)
    for got, want in ((y, y1), (x.grad, gx), (w0.grad, gw0), (w1.grad, gw1)):
        assert got.dtype == torch.bfloat16
        np.testing.assert_array_equal(_bits(got), _bits(want))

    xp = x.detach().clone().requires_grad_(True)
    plain(xp).backward(gy)  # nn.Linear: other bits nearly everywhere
    for got, want in ((y, plain(xp)), (x.grad, xp.grad), (w0.grad, plain[0].weight.grad),
                      (w1.grad, plain[2].weight.grad)):
        assert _differ(got, _bits(want)) > 0.5

    before = [w0.detach().clone(), w1.detach().clone()]
    grads = [w0.grad.clone(), w1.grad.clone()]
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    for w, w_old, g in zip((w0, w1), before, grads, strict=True):
        assert torch.equal(w.detach(), w_old.add(g, alpha=-0.5))


def test_swap_filter_and_single_layer():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
    swap_linears(model, recipe="torchao-rowwise", module_filter_fn=lambda m, name: name == "1")
    assert not isinstance(model[0], Float8SimLinear) and isinstance(model[1], Float8SimLinear)
    single = swap_linears(torch.nn.Linear(4, 4), recipe="torchao-rowwise")
    assert isinstance(single, Float8SimLinear)
    assert fp8sim.Float8SimLinear is Float8SimLinear and fp8sim.swap_linears is swap_linears


def test_only_needed_gradients(layer):
    xb, wb, _ = layer
    w = _tensor(wb).requires_grad_(True)
    x = _tensor(xb)  # no grad wanted for x
    r = fp8sim.LINEAR_RECIPES["torchao-tensorwise"]
    Float8SimLinearFunction.apply(x, w, r).sum().backward()
    assert w.grad is not None and x.grad is None


def test_linear_takes_torch_tensors(layer):
    xb, wb, gb = layer
    got = linear(_tensor(xb), _tensor(wb), _tensor(gb), recipe="torchao-blockwise")
    want = linear(xb.view(ml_dtypes.bfloat16), wb.view(ml_dtypes.bfloat16),
                  gb.view(ml_dtypes.bfloat16), recipe="torchao-blockwise")
    for g, w in zip(got, want, strict=True):
        assert g.dtype == ml_dtypes.bfloat16
        np.testing.assert_array_equal(_bits(g), _bits(w))


def test_bad_input():
    with pytest.raises(TypeError, match="^linear:"):
        Float8SimLinear.from_linear(torch.nn.Conv1d(1, 1, 1), recipe="torchao-rowwise")
    with pytest.raises(ValueError, match="^recipe:"):
        Float8SimLinear(4, 4, recipe="fp4")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_and_bool_input_is_refused_as_nn_linear_does(dtype):
    """nn.Linear refuses int64 and bool input; Float8SimLinear once returned truncated ints."""
    layer = Float8SimLinear(8, 4, recipe="torchao-tensorwise")
    x = torch.ones((2, 8), dtype=dtype)
    with pytest.raises(RuntimeError):
        torch.nn.Linear(8, 4)(x)
    with pytest.raises(TypeError, match=f"^x: expected a floating-point tensor.*{dtype}"):
        layer(x)


def test_bad_shapes_name_x_and_the_expected_shape():
    """0-D input (once IndexError) and wrong in-features (once "b: expected shape ...")."""
    layer = Float8SimLinear(8, 4, recipe="torchao-tensorwise")
    with pytest.raises(ValueError, match=r"^x: expected shape \(\.\.\., 8\).*0-D"):
        layer(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"^x: expected shape \(\.\.\., 8\).*\(3, 7\)"):
        layer(torch.ones((3, 7)))


def test_swap_linears_names_its_module_argument():
    """swap_linears(42) once raised AttributeError from inside."""
    with pytest.raises(TypeError, match="^model: expected a torch nn.Module, got int"):
        swap_linears(42, recipe="torchao-rowwise")


def test_zero_tokens_train_as_nn_linear():
    """x (0, IN): y (0, OUT), grad_x (0, IN) and a zero weight gradient, as nn.Linear."""
    layer = Float8SimLinear(8, 4, bias=False, recipe="torchao-blockwise")
    x = torch.ones((0, 8), requires_grad=True)
    y = layer(x)
    assert y.shape == (0, 4)
    y.sum().backward()
    assert x.grad.shape == (0, 8) and torch.count_nonzero(layer.weight.grad) == 0


def _long_k_layer(seed=0):
    """64 tokens, 8192 -> 64: the forward GEMM (K = 8192) is one cuBLASLt splits."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((64, 8192)).astype(ml_dtypes.bfloat16)
    w = g.standard_normal((64, 8192)).astype(ml_dtypes.bfloat16)
    gy = g.standard_normal((64, 64)).astype(ml_dtypes.bfloat16)
    return x, w, gy


def test_module_passes_gpu_and_slices_as_linear_takes_them():
    """Float8SimLinear(gpu=, slices=) and swap_linears(gpu=, slices=): the bits of
    fp8sim.linear with the same arguments, forward and backward; other slices differ."""
    x, w, gy = _long_k_layer()
    kw = {"gpu": "H100", "slices": {"y": 2, "grad_w": 1}}
    want = linear(x, w, gy, recipe="torchao-tensorwise", **kw)
    base = torch.nn.Linear(8192, 64, bias=False, dtype=torch.bfloat16)
    with torch.no_grad():
        base.weight.copy_(_tensor(w))
    for mod in (Float8SimLinear.from_linear(base, recipe="torchao-tensorwise", **kw),
                swap_linears(torch.nn.Sequential(base), recipe="torchao-tensorwise", **kw)):
        xt = _tensor(x).requires_grad_(True)
        mod.zero_grad()
        y = mod(xt)
        y.backward(_tensor(gy))
        weight = mod.weight if isinstance(mod, Float8SimLinear) else mod[0].weight
        for got, ref in zip((y, xt.grad, weight.grad), want, strict=True):
            assert np.array_equal(_bits(got), _bits(ref))
    other = linear(x, w, gy, recipe="torchao-tensorwise", slices={"y": 3})[0]
    assert not np.array_equal(_bits(other), _bits(want[0]))
    assert "slices={'y': 2, 'grad_w': 1}" in repr(mod)


@pytest.mark.parametrize("kw, match", [
    ({"gpu": "B200"}, "^gpu: expected one of"),
    ({"slices": 0}, "^slices: expected a positive int"),
    ({"slices": 2, "recipe": "deepseek-v3"}, "^slices: none of deepseek-v3's GEMMs"),
])
def test_module_and_swap_refuse_bad_gpu_and_slices(kw, match):
    kw = {"recipe": "torchao-tensorwise"} | kw
    with pytest.raises(ValueError, match=match):
        Float8SimLinear(16, 16, **kw)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16))
    with pytest.raises(ValueError, match=match):
        swap_linears(model, **kw)
    assert type(model[0]) is torch.nn.Linear  # nothing swapped before the check
    with pytest.raises(ValueError, match=match):  # checked even with no layer to swap
        swap_linears(torch.nn.Sequential(torch.nn.ReLU()), **kw)
