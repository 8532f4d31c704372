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

import math

import ml_dtypes
import numpy as np

from fp8sim._torch_arrays import is_torch
from fp8sim.engine import budget
from fp8sim.engine.bf16 import _as_bf16
from fp8sim.engine.split_choice import check_gpu, check_slices, kernel_splits
from fp8sim.recipes.catalog import DEEPGEMM_WGRAD, LINEAR_RECIPES, get_linear_recipe
from fp8sim.recipes.recipe import (
    GEMMS,
    HP_KERNELS,
    LinearGemm,
    LinearRecipe,
    OperandCast,
)

__all__ = ["OperandCast", "LinearGemm", "LinearRecipe", "LINEAR_RECIPES", "GEMMS", "linear",
           "get_linear_recipe", "HP_KERNELS", "DEEPGEMM_WGRAD", "linear_shapes", "linear_bytes",
           "gemm_slices", "SLICE_KEYS"]

_BF16 = np.dtype(ml_dtypes.bfloat16)
_SMALL_BYTES = 1 << 28
"""Layers estimated below this (256 MB) skip the free-memory query (/proc reads)."""


def linear(
    x,
    w,
    grad_output=None,
    *,
    recipe: str | LinearRecipe,
    slices: int | dict[str, int] | None = None,
    gpu: str = "H100",
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
        slices: the split of K of the GEMMs whose kernel splits it (cuBLASLt's per-tensor
            and blockwise kernels; `fp8sim.engine.split_choice.kernel_splits`). None (the
            default): each GEMM takes the split the library picks for its shape on `gpu`
            (`fp8sim.engine.cublaslt_splits`), refusing a shape where that was never
            recorded. An int: that many slices for every GEMM of the recipe whose kernel
            splits (the others, DeepGEMM, Triton, row-wise, bfloat16, run as always; a
            recipe with no such GEMM is refused). A dict sets GEMMs by name, the others
            keep the library's split: {"forward" or "y": S, "grad_input" or "grad_x": S,
            "grad_weight" or "grad_w": S}; naming a GEMM whose kernel never splits is
            refused.
        gpu: "H100" (default) or "H200": the card whose split-K choice every cuBLASLt
            GEMM of the recipe reproduces. Kernels that never split give the same bits on
            both. Every named recipe defaulted to the H100's split before this argument
            existed (the torchao captures on the H200 are at K <= 512, unsplit on both).

    Returns:
        (y, grad_x, grad_w) as ml_dtypes bfloat16 arrays: y = x @ w.T (..., OUT),
        grad_x = grad_output @ w (..., IN), grad_w = grad_output.T @ x (OUT, IN); the two
        gradients are None without grad_output.

    Raises:
        ValueError, TypeError: malformed arguments, naming the argument.
    """
    r = get_linear_recipe(recipe)
    split = gemm_slices(r, slices)
    check_gpu(gpu)
    _check_float(x, "x")
    _check_float(w, "w")
    if grad_output is not None:
        _check_float(grad_output, "grad_output")
    lead, in_f, out_f = linear_shapes(np.shape(x), np.shape(w),
                                      None if grad_output is None else np.shape(grad_output))
    x2 = _as_bf16(x, "x").reshape(-1, in_f)
    w16 = _as_bf16(w, "w")
    y = _linear_forward(r, x2, w16, split, gpu).reshape(*lead, out_f)
    if grad_output is None:
        return y, None, None
    g2 = _as_bf16(grad_output, "grad_output").reshape(-1, out_f)
    grad_x, grad_w = _linear_backward(r, x2, w16, g2, split, gpu)
    return y, grad_x.reshape(*lead, in_f), grad_w


def linear_shapes(x_shape: tuple, w_shape: tuple, g_shape: tuple | None = None, *,
                  w_arg: str = "w") -> tuple[tuple[int, ...], int, int]:
    """(leading dims of x, IN, OUT) of a Linear layer's shapes, checked before any copy.

    Refuses, naming the argument: w not (OUT, IN) with OUT, IN >= 1 (each GEMM of the
    layer reduces over one of them, so there is no FP8 GEMM to simulate), x not
    (..., IN), grad_output not (..., OUT); and, as `fp8sim.gemm` does, a layer whose
    arrays cannot fit in the available memory (`InsufficientMemory`, a MemoryError),
    before allocating them. Zero tokens (x of shape (0, IN)) are fine.
    """
    w_shape, x_shape = tuple(w_shape), tuple(x_shape)
    if len(w_shape) != 2:
        raise ValueError(f"{w_arg}: expected a 2-D (OUT, IN) weight, got shape {w_shape}")
    out_f, in_f = (int(v) for v in w_shape)
    if out_f < 1 or in_f < 1:
        raise ValueError(f"{w_arg}: expected shape (OUT, IN) with OUT >= 1 and IN >= 1 (the "
                         f"layer's GEMMs reduce over IN and OUT), got {w_shape}")
    if len(x_shape) < 1 or x_shape[-1] != in_f:
        got = "a 0-D value" if not x_shape else f"shape {x_shape}"
        raise ValueError(f"x: expected shape (..., {in_f}) (IN of {w_arg} {w_shape}), got {got}")
    lead = x_shape[:-1]
    if g_shape is not None and tuple(g_shape) != (*lead, out_f):
        raise ValueError(f"grad_output: expected shape {(*lead, out_f)}, got {tuple(g_shape)}")
    m = math.prod(lead)
    need = linear_bytes(m, in_f, out_f, backward=g_shape is not None)
    budget.check_large(need, f"linear: x ({m}, {in_f}) and {w_arg} ({out_f}, {in_f})",
                       hint="run the tokens in smaller batches", small=_SMALL_BYTES)
    return lead, in_f, out_f


def linear_bytes(m: int, in_f: int, out_f: int, *, backward: bool) -> int:
    """A generous estimate of the bytes `linear` allocates for M tokens, IN -> OUT.

    Per GEMM (M x K x N): the casts of A and B (a bfloat16 copy, float32 values, padded
    blocks and the scaled values, uint8 codes: 15 bytes an element) and the engine's
    output (`budget.gemm_bytes`, 8 bytes an output, plus the bfloat16 result). The
    GEMMs run one after another, so the largest counts, plus the bfloat16 results kept.
    """
    def one(rows: int, k: int, n: int) -> int:
        return 15 * (rows * k + k * n) + budget.gemm_bytes(rows, n, k) + 2 * rows * n

    gemms = [one(m, in_f, out_f)]
    if backward:
        gemms += [one(m, out_f, in_f), one(out_f, m, in_f)]
    kept = 2 * (m * in_f + m * out_f + (out_f * in_f if backward else 0))
    return max(gemms) + kept


SLICE_KEYS = {"forward": "forward", "y": "forward", "grad_input": "grad_input",
              "grad_x": "grad_input", "grad_weight": "grad_weight", "grad_w": "grad_weight"}
"""The keys a `slices` dict takes, by the GEMM they name (`GEMMS`)."""


def gemm_slices(r: LinearRecipe, slices) -> dict[str, int | None]:
    """The `slices` argument of `linear` as a count (None: the library's) per GEMM name.

    Raises ValueError naming `slices` for a count that is not a positive int, an unknown
    key, a GEMM whose kernel never splits K, or an int for a recipe none of whose GEMMs
    split (slices=1, one chain through K, is accepted for those: it is what they run).
    """
    split: dict[str, int | None] = dict.fromkeys(GEMMS)
    if slices is None:
        return split
    splitting = [g for g in GEMMS if _splits(r.gemm(g))]
    if isinstance(slices, dict):
        for key, value in slices.items():
            if key not in SLICE_KEYS:
                raise ValueError(f"slices: unknown GEMM {key!r}; expected keys among "
                                 f"{', '.join(SLICE_KEYS)}")
            g = SLICE_KEYS[key]
            count = check_slices(value, f"slices[{key!r}]")
            if g not in splitting and count == 1:
                continue  # one chain through K: what a kernel that never splits runs
            if g not in splitting:
                raise ValueError(f"slices: {r.name}'s {g} GEMM runs {_kernel_name(r.gemm(g))}, "
                                 f"which never splits K; leave {key!r} out")
            split[g] = count
        return split
    count = check_slices(slices)
    if not splitting and count == 1:
        return split  # one chain through K: what every GEMM of the recipe runs
    if not splitting:
        raise ValueError(f"slices: none of {r.name}'s GEMMs splits K (kernels "
                         f"{', '.join(dict.fromkeys(_kernel_name(r.gemm(g)) for g in GEMMS))}); "
                         "leave slices out")
    return {g: count if g in splitting else None for g in GEMMS}


def _splits(g: LinearGemm) -> bool:
    """Whether a GEMM's kernel splits K (a bfloat16 GEMM never does)."""
    return not g.high_precision and kernel_splits(g.kernel)


def _kernel_name(g: LinearGemm) -> str:
    return getattr(g.kernel, "name", g.kernel)


def _linear_forward(r: LinearRecipe, x2: np.ndarray, w16: np.ndarray,
                    split: dict | None = None, gpu: str = "H100") -> np.ndarray:
    """y (M, OUT) bfloat16 of 2-D bfloat16 x (M, IN) and w (OUT, IN); M = 0 gives (0, OUT).

    `split`: slices per GEMM name (`gemm_slices`); `gpu`: the card."""
    if x2.shape[0] == 0:
        return np.zeros((0, w16.shape[0]), _BF16)
    return _bf16_out(r.forward.run(x2, np.ascontiguousarray(w16.T),
                                   slices=(split or {}).get("forward"), gpu=gpu,
                                   args=("x", "w")))


def _linear_backward(r: LinearRecipe, x2: np.ndarray, w16: np.ndarray, g2: np.ndarray,
                     split: dict | None = None, gpu: str = "H100", *,
                     need_x: bool = True, need_w: bool = True):
    """(grad_x (M, IN), grad_w (OUT, IN)) bfloat16 of 2-D operands; None where not needed.

    With M = 0 tokens grad_x is (0, IN) and grad_w zeros, as nn.Linear's backward gives.
    """
    if x2.shape[0] == 0:
        return (np.zeros(x2.shape, _BF16) if need_x else None,
                np.zeros(w16.shape, _BF16) if need_w else None)
    split = split or {}
    grad_x = _bf16_out(r.grad_input.run(g2, w16, slices=split.get("grad_input"), gpu=gpu,
                                        args=("grad_output", "w"))) if need_x else None
    grad_w = _bf16_out(r.grad_weight.run(np.ascontiguousarray(g2.T), x2,
                                         slices=split.get("grad_weight"), gpu=gpu,
                                         args=("grad_output", "x"))) if need_w else None
    return grad_x, grad_w


# --- helpers -------------------------------------------------------------------------


def _check_float(v, arg: str) -> None:
    """Refuses anything but a float array or tensor, naming the argument (no copy made)."""
    dtype = getattr(v, "dtype", None)
    if is_torch(v):
        if not getattr(v, "is_floating_point", lambda: False)():
            raise TypeError(f"{arg}: expected a floating-point tensor, got {dtype}")
        return
    if dtype is None:
        dtype = np.asarray(v).dtype
    if np.dtype(dtype) != _BF16 and np.dtype(dtype).kind != "f":
        raise TypeError(f"{arg}: expected a bfloat16 (or float) array, got dtype {dtype}")


def _bf16_out(v: np.ndarray) -> np.ndarray:
    """An output as bfloat16 (float32 outputs rounded to nearest even)."""
    return v if v.dtype == _BF16 else np.asarray(v, np.float32).astype(ml_dtypes.bfloat16)
