"""torch wrappers of `fp8sim.linear`: train a model on a CPU with bit-exact simulated FP8 layers.

Needs the optional extra ``pip install fp8sim[torch]``. Swap a model's ``nn.Linear``
layers for `Float8SimLinear` and train as usual: every forward and backward GEMM is
what the named stack (torchao, DeepGEMM) computes on an H100/H200, bit for bit::

    import fp8sim
    model = fp8sim.swap_linears(model, recipe="torchao-rowwise")
    loss = model(x).sum(); loss.backward()          # CPU tensors

As torchao's layers, the operands are bfloat16: inputs and weights of another dtype
are rounded to bfloat16 first (as ``torch.autocast`` to bfloat16 would) and the results
come back in the input's and the weight's dtypes. A bias is added after the FP8 GEMM,
in the output's dtype, as torchao does.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_dtypes
import numpy as np

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - tested where torch is missing
    raise ImportError("fp8sim.torch.linear needs torch: pip install 'fp8sim[torch]' "
                      "(a CPU build is enough)") from None

from fp8sim.engine.split_choice import check_gpu
from fp8sim.recipes.layers import (
    LinearRecipe,
    _linear_backward,
    _linear_forward,
    gemm_slices,
    get_linear_recipe,
    linear_shapes,
)

__all__ = ["Float8SimLinear", "Float8SimLinearFunction", "swap_linears"]


def _to_numpy_bf16(t: torch.Tensor, arg: str) -> np.ndarray:
    """A CPU tensor as a 2-D ml_dtypes bfloat16 array (rounded to nearest even when not bf16)."""
    if t.device.type != "cpu":
        raise TypeError(f"{arg}: fp8sim simulates on the CPU; got a tensor on {t.device}")
    t = t.detach().to(torch.bfloat16).contiguous()
    return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)


def _to_torch(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A bfloat16 array as a tensor of `dtype` (exact when dtype is bfloat16 or wider)."""
    t = torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    return t.to(dtype)


def _check_input(x, weight: torch.Tensor) -> None:
    """Refuses what nn.Linear refuses, naming x: non-float input, a shape not (..., IN).

    nn.Linear raises for integer and bool input; converting it to bfloat16 would return
    truncated integers. The layer's memory estimate is checked too (`linear_shapes`).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x: expected a floating-point tensor (nn.Linear refuses {x.dtype} "
                        f"too), got dtype {x.dtype}")
    if x.dtype.itemsize < 2:  # y comes back in x's dtype: FP8 would round it again
        raise TypeError(f"x: expected float16, bfloat16, float32 or float64 input (the layer "
                        f"casts it to FP8 itself and returns y in x's dtype), got {x.dtype}")
    linear_shapes(tuple(x.shape), tuple(weight.shape), w_arg="weight")


def _check_features(n, arg: str) -> int:
    """A layer size as a positive int; TypeError/ValueError naming `arg` otherwise."""
    if isinstance(n, bool | np.bool_) or not isinstance(n, int | np.integer):
        raise TypeError(f"{arg}: expected a positive int, got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"{arg}: expected a positive int, got {n}")
    return int(n)


def _check_engine(engine) -> str:
    """"cpu" or "gpu" (the latter checked to run here), else ValueError naming `engine`."""
    if engine not in ("cpu", "gpu"):
        raise ValueError(f"engine: expected 'cpu' or 'gpu', got {engine!r}")
    if engine == "gpu":
        from fp8sim.engine import _gpu

        _gpu.check()
    return engine


class Float8SimLinearFunction(torch.autograd.Function):
    """y = x @ w.T with the forward and both backward GEMMs simulated by `fp8sim.linear`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, recipe: LinearRecipe,
                split: dict | None = None, gpu: str = "H100", engine: str = "cpu"):
        """Runs the recipe's forward GEMM; keeps x and w for the backward pass.

        `split`: slices per GEMM name (`fp8sim.recipes.layers.gemm_slices`); `gpu`: the card
        whose split-K choice the cuBLASLt GEMMs reproduce; `engine` "gpu": casts and GEMMs
        on the device (`fp8sim.recipes.gpu_linear`, the kernels' default split)."""
        _check_input(x, weight)
        ctx.engine = engine
        if engine == "gpu":
            from fp8sim.recipes.gpu_linear import forward_torch

            ctx.save_for_backward(x, weight)
            ctx.recipe = recipe
            return forward_torch(recipe, x, weight)
        x16 = _to_numpy_bf16(x, "x").reshape(-1, x.shape[-1])
        w16 = _to_numpy_bf16(weight, "weight")
        ctx.save_for_backward(x, weight)
        ctx.recipe, ctx.split, ctx.gpu = recipe, split, gpu
        y = _linear_forward(recipe, x16, w16, split, gpu)
        return _to_torch(y, x.dtype).reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        """Runs the recipe's grad_input and grad_weight GEMMs (only those needed)."""
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_x or need_w):
            return None, None, None, None, None, None
        if ctx.engine == "gpu":
            from fp8sim.recipes.gpu_linear import backward_torch

            return (*backward_torch(ctx.recipe, x, weight, grad_output, need_x, need_w), None,
                    None, None, None)
        x16 = _to_numpy_bf16(x, "x").reshape(-1, x.shape[-1])
        w16 = _to_numpy_bf16(weight, "weight")
        g16 = _to_numpy_bf16(grad_output, "grad_output").reshape(-1, weight.shape[0])
        gx, gw = _linear_backward(ctx.recipe, x16, w16, g16, ctx.split, ctx.gpu,
                                  need_x=need_x, need_w=need_w)
        grad_x = _to_torch(gx, x.dtype).reshape(x.shape) if need_x else None
        grad_w = _to_torch(gw, weight.dtype) if need_w else None
        return grad_x, grad_w, None, None, None, None


class Float8SimLinear(nn.Linear):
    """An ``nn.Linear`` whose three GEMMs are FP8 as a named stack runs them, bit for bit."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 recipe: str | LinearRecipe, device=None, dtype=None, gpu: str = "H100",
                 slices: int | dict[str, int] | None = None, engine: str = "cpu") -> None:
        """As ``nn.Linear``, plus the recipe (a name in `fp8sim.LINEAR_RECIPES` or a recipe),
        the card `gpu` and the split of K `slices`, as `fp8sim.linear` takes them (checked
        here, naming the argument), and the engine: "cpu" (CPU tensors) or "gpu" (CUDA
        tensors, nothing leaves the GPU)."""
        in_features = _check_features(in_features, "in_features")
        out_features = _check_features(out_features, "out_features")
        r = get_linear_recipe(recipe)
        split = gemm_slices(r, slices)
        check_gpu(gpu)
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.recipe, self.gpu, self.slices, self._split = r, gpu, slices, split
        self.engine = _check_engine(engine)

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, recipe: str | LinearRecipe, gpu: str = "H100",
                    slices: int | dict[str, int] | None = None,
                    engine: str = "cpu") -> Float8SimLinear:
        """A Float8SimLinear sharing `linear`'s weight and bias Parameters (no copy)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected an nn.Linear, got {type(linear).__name__}")
        r = get_linear_recipe(recipe)
        with torch.device("meta"):
            new = cls(linear.in_features, linear.out_features, bias=False, recipe=r, gpu=gpu,
                      slices=slices, engine=engine)
        new.weight = linear.weight
        new.bias = linear.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = x @ weight.T (+ bias) through the simulated FP8 GEMMs."""
        y = Float8SimLinearFunction.apply(x, self.weight, self.recipe, self._split, self.gpu,
                                          self.engine)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y

    def extra_repr(self) -> str:
        """nn.Linear's description plus the recipe's name (and gpu, slices where set)."""
        extra = "" if self.gpu == "H100" else f", gpu={self.gpu!r}"
        extra += "" if self.slices is None else f", slices={self.slices!r}"
        extra += "" if self.engine == "cpu" else f", engine={self.engine!r}"
        return f"{super().extra_repr()}, recipe={self.recipe.name!r}{extra}"


def swap_linears(model: nn.Module, *, recipe: str | LinearRecipe,
                 module_filter_fn: Callable[[nn.Module, str], bool] | None = None,
                 gpu: str = "H100", slices: int | dict[str, int] | None = None,
                 engine: str = "cpu") -> nn.Module:
    """Swaps each ``nn.Linear`` of `model` in place for a `Float8SimLinear` sharing its parameters.

    Args:
        model: any module (an ``nn.Linear`` itself is returned swapped).
        recipe: a name in `fp8sim.LINEAR_RECIPES` or a LinearRecipe.
        module_filter_fn: optional ``fn(module, fully_qualified_name) -> bool``; only
            layers for which it returns True are swapped (torchao's convention).
        gpu, slices: the card and the split of K of every swapped layer, as
            `fp8sim.linear` takes them (checked before any layer is swapped).
        engine: "cpu" or "gpu" (CUDA tensors; casts and GEMMs stay on the GPU).

    Returns:
        The model (the new layer when `model` is an ``nn.Linear``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch nn.Module, got {type(model).__name__}")
    if module_filter_fn is not None and not callable(module_filter_fn):
        raise TypeError("module_filter_fn: expected a callable fn(module, name) -> bool or "
                        f"None, got {type(module_filter_fn).__name__}")
    r = get_linear_recipe(recipe)
    gemm_slices(r, slices)
    check_gpu(gpu)
    split = {"gpu": gpu, "slices": slices, "engine": _check_engine(engine)}

    def keep(mod: nn.Module, name: str) -> bool:
        return (isinstance(mod, nn.Linear) and not isinstance(mod, Float8SimLinear)
                and (module_filter_fn is None or module_filter_fn(mod, name)))

    if keep(model, ""):
        return Float8SimLinear.from_linear(model, recipe=r, **split)
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if keep(child, full):
                setattr(mod, child_name, Float8SimLinear.from_linear(child, recipe=r, **split))
    return model
