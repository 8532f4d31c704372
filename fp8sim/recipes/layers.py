"""One FP8 Linear layer (forward, grad_input, grad_weight) as a named training stack runs it.

A Linear layer without bias runs three GEMMs, each on two operands cast to FP8:

* forward:     y      = x @ w.T   (A = x (M, IN),   B = w.T (IN, OUT))
* grad_input:  grad_x = gy @ w    (A = gy (M, OUT), B = w (OUT, IN))
* grad_weight: grad_w = gy.T @ x  (A = gy.T (OUT, M), B = x (M, IN))

A `LinearRecipe` says, per GEMM and as data, how each operand is cast (a `BlockCast`:
format, scaling block on the operand as the GEMM reads it, cast convention, power-of-two
scales), which kernel multiplies (a name in `fp8sim.KERNELS`, or "hopper-bf16" for a
GEMM kept in bfloat16), and whether the scales go into the kernel's epilogue or are
applied to its bfloat16 output afterwards (torchao's row-wise GEMMs without fast
accumulation). `linear` runs a recipe on bfloat16 inputs, bit for bit. A new stack is a
new `LinearRecipe`, not new code.

The torchao recipes were checked against torchao 0.18 on an H200
(golden/thirdparty_public_a.npz, one 256 x 512 -> 384 layer); see each recipe's
`verified`.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from fp8sim.engine.bf16 import _as_bf16
from fp8sim.recipes.catalog import DEEPGEMM_WGRAD, LINEAR_RECIPES, get_linear_recipe
from fp8sim.recipes.recipe import (
    GEMMS,
    HP_KERNELS,
    LinearGemm,
    LinearRecipe,
    OperandCast,
)

__all__ = ["OperandCast", "LinearGemm", "LinearRecipe", "LINEAR_RECIPES", "GEMMS", "linear",
           "get_linear_recipe", "HP_KERNELS", "DEEPGEMM_WGRAD"]

_BF16 = np.dtype(ml_dtypes.bfloat16)


def linear(
    x,
    w,
    grad_output=None,
    *,
    recipe: str | LinearRecipe,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One bias-free ``nn.Linear`` in FP8, forward and backward, as a named stack runs it on Hopper.

    Args:
        x: (..., IN) bfloat16 input (ml_dtypes array or torch CPU tensor; other float
            arrays are rounded to bfloat16 first). Leading dimensions are flattened into
            M = prod(...) rows, as the stacks do.
        w: (OUT, IN) bfloat16 weight.
        grad_output: (..., OUT) bfloat16 gradient of y, or None (forward only).
        recipe: a name in `LINEAR_RECIPES` ("torchao-blockwise", "torchao-blockwise-triton",
            "torchao-tensorwise", "torchao-rowwise", "torchao-rowwise-gw-hp",
            "deepseek-v3") or a `LinearRecipe`.

    Returns:
        (y, grad_x, grad_w) as ml_dtypes bfloat16 arrays: y = x @ w.T (..., OUT),
        grad_x = grad_output @ w (..., IN), grad_w = grad_output.T @ x (OUT, IN); the two
        gradients are None without grad_output.

    Raises:
        ValueError, TypeError: malformed arguments, naming the argument.
    """
    r = get_linear_recipe(recipe)
    x16, w16 = _as_bf16(x, "x"), _as_bf16(w, "w")
    if x16.ndim < 1 or w16.ndim != 2:
        raise ValueError(f"x, w: expected x (..., IN) and w (OUT, IN), got shapes "
                         f"{x16.shape} and {w16.shape}")
    out_f, in_f = w16.shape
    if x16.shape[-1] != in_f:
        raise ValueError(f"x: last dimension {x16.shape[-1]} differs from w's IN = {in_f}")
    lead = x16.shape[:-1]
    x2 = x16.reshape(-1, in_f)
    y = _linear_forward(r, x2, w16).reshape(*lead, out_f)
    if grad_output is None:
        return y, None, None
    g16 = _as_bf16(grad_output, "grad_output")
    if g16.shape != (*lead, out_f):
        raise ValueError(f"grad_output: expected shape {(*lead, out_f)}, got {g16.shape}")
    grad_x, grad_w = _linear_backward(r, x2, w16, g16.reshape(-1, out_f))
    return y, grad_x.reshape(*lead, in_f), grad_w


def _linear_forward(r: LinearRecipe, x2: np.ndarray, w16: np.ndarray) -> np.ndarray:
    """y (M, OUT) bfloat16 of 2-D bfloat16 x (M, IN) and w (OUT, IN)."""
    return _bf16_out(r.forward.run(x2, np.ascontiguousarray(w16.T)))


def _linear_backward(r: LinearRecipe, x2: np.ndarray, w16: np.ndarray, g2: np.ndarray, *,
                     need_x: bool = True, need_w: bool = True):
    """(grad_x (M, IN), grad_w (OUT, IN)) bfloat16 of 2-D operands; None where not needed."""
    grad_x = _bf16_out(r.grad_input.run(g2, w16)) if need_x else None
    grad_w = _bf16_out(r.grad_weight.run(np.ascontiguousarray(g2.T), x2)) if need_w else None
    return grad_x, grad_w


# --- helpers -------------------------------------------------------------------------


# --- helpers -------------------------------------------------------------------------


def _bf16_out(v: np.ndarray) -> np.ndarray:
    """An output as bfloat16 (float32 outputs rounded to nearest even)."""
    return v if v.dtype == _BF16 else np.asarray(v, np.float32).astype(ml_dtypes.bfloat16)
