"""One FP8 Linear layer (forward, grad_input, grad_weight) as a named training stack runs it.

A Linear layer without bias runs three GEMMs, each on two operands cast to FP8:

* forward:     y      = x @ w.T   (A = x (M, IN),   B = w.T (IN, OUT))
* grad_input:  grad_x = gy @ w    (A = gy (M, OUT), B = w (OUT, IN))
* grad_weight: grad_w = gy.T @ x  (A = gy.T (OUT, M), B = x (M, IN))

A `LinearRecipe` says, per GEMM and as data, how each operand is cast (`OperandCast`:
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

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from fp8sim._lookup import lookup
from fp8sim.engine.bf16 import _as_bf16, gemm_bf16
from fp8sim.engine.epilogue import Epilogue
from fp8sim.engine.kernel import Kernel
from fp8sim.formats.info import format_info
from fp8sim.recipes.quant import CONVENTIONS, _quantize, dequantize

__all__ = ["OperandCast", "LinearGemm", "LinearRecipe", "LINEAR_RECIPES", "GEMMS", "linear",
           "get_linear_recipe", "HP_KERNELS", "DEEPGEMM_WGRAD"]

GEMMS = ("forward", "grad_input", "grad_weight")
"""The three GEMMs of a Linear layer, in the order `linear` returns their outputs."""
SCALE_PATHS = ("kernel", "after")
_BF16 = np.dtype(ml_dtypes.bfloat16)

HP_KERNELS: dict[str, Callable[..., np.ndarray]] = {"hopper-bf16": gemm_bf16}
"""GEMMs of unquantized bfloat16 operands, by name (`fp8sim.engine.bf16`)."""


@dataclass(frozen=True, kw_only=True)
class OperandCast:
    """How one GEMM operand is cast from bfloat16 to FP8 codes and scales."""

    fmt: str = "e4m3"
    """Element format: "e4m3" or "e5m2"."""
    block: tuple[int | None, int | None] = (1, 128)
    """Scaling block on the operand as the GEMM reads it, A (M, K) or B (K, N); None spans
    the whole axis: (None, None) one scale per tensor, (1, None) per row of A,
    (None, 1) per column of B, (1, 128) / (128, 1) tiles along K, (128, 128) blocks."""
    convention: str = "torchao"
    """Cast convention of `fp8sim.quantize` ("torchao", "deepgemm")."""
    pow2_scale: bool = False
    """Power-of-two scales, as the convention rounds them."""

    def __post_init__(self) -> None:
        """Rejects a cast `quantize` could not run, naming the field."""
        format_info(self.fmt, arg="fmt")
        ok = isinstance(self.block, tuple) and len(self.block) == 2 and all(
            b is None or (isinstance(b, int) and not isinstance(b, bool) and b > 0)
            for b in self.block)
        if not ok:
            raise ValueError(f"block: expected (rows, cols), positive ints or None, "
                             f"got {self.block!r}")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention: expected one of {', '.join(CONVENTIONS)}, "
                             f"got {self.convention!r}")

    def resolve(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The block as two ints for an operand of this shape (None -> the whole axis)."""
        return tuple(max(1, n) if b is None else b for b, n in zip(self.block, shape, strict=True))

    def cast(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes as an ml_dtypes float8 array, float32 scales) of a 2-D operand."""
        codes, scales = _quantize(v, self.fmt, block=self.resolve(v.shape),
                                  pow2_scale=self.pow2_scale, convention=self.convention)
        return codes.view(format_info(self.fmt).ml_dtype), scales


@dataclass(frozen=True, kw_only=True)
class LinearGemm:
    """One GEMM of a Linear layer: its operands' casts and the kernel that multiplies them."""

    a: OperandCast | None
    """Cast of the left operand; None keeps both operands in bfloat16 (a GEMM in high
    precision, `HP_KERNELS`)."""
    b: OperandCast | None
    """Cast of the right operand (None exactly when `a` is None)."""
    kernel: str | Kernel
    """Name in `fp8sim.KERNELS` or a `Kernel` (FP8 operands), or a name in `HP_KERNELS`
    (bfloat16 operands)."""
    scales: str = "kernel"
    """"kernel": the cast scales go to the kernel's epilogue (tensor scales as scalars,
    row and column scales broadcast to (M, 1) and (1, N) where the kernel scales by row,
    block scales as they are). "after": the kernel runs with unit scales to a bfloat16
    output, then out = bf16(fl32(out * fl32(scale_a[i] * scale_b[j]))), as torchao does for
    row-wise GEMMs without fast accumulation (cuBLASLt's tensor-scaled kernel, then a
    multiplication)."""
    out_dtype: str = "bfloat16"
    """Output type of the kernel."""

    def __post_init__(self) -> None:
        """Rejects inconsistent fields, naming them."""
        if (self.a is None) != (self.b is None):
            raise ValueError("a, b: cast both operands or neither")
        if self.scales not in SCALE_PATHS:
            raise ValueError(f"scales: expected one of {', '.join(SCALE_PATHS)}, "
                             f"got {self.scales!r}")
        if self.a is None and self.kernel not in HP_KERNELS:
            raise ValueError(f"kernel: uncast operands need one of {', '.join(HP_KERNELS)}, "
                             f"got {self.kernel!r}")

    @property
    def high_precision(self) -> bool:
        """True where the operands stay in bfloat16."""
        return self.a is None

    def cast(self, a: np.ndarray, b: np.ndarray):
        """(a_codes, scale_a, b_codes, scale_b) of bfloat16 operands A (M, K) and B (K, N)."""
        if self.high_precision:
            raise ValueError("cast: this GEMM keeps its operands in bfloat16")
        return (*self.a.cast(a), *self.b.cast(b))

    def dequantized(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact (float64) values the GEMM multiplies: decode(code) * scale, or bfloat16."""
        if self.high_precision:
            return _as_bf16(a, "a").astype(np.float64), _as_bf16(b, "b").astype(np.float64)
        ac, sa, bc, sb = self.cast(a, b)
        return (dequantize(ac, sa, block=self.a.resolve(ac.shape), dtype=np.float64),
                dequantize(bc, sb, block=self.b.resolve(bc.shape), dtype=np.float64))

    def run(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The GEMM's output (out_dtype) for bfloat16 operands A (M, K) and B (K, N)."""
        if self.high_precision:
            return HP_KERNELS[self.kernel](a, b, out_dtype=self.out_dtype)
        kern = _kernel(self.kernel)
        ac, sa, bc, sb = self.cast(a, b)
        m, n = ac.shape[0], bc.shape[1]
        if self.scales == "after":
            one = np.float32(1)
            out = kern(ac, bc, scale_a=one, scale_b=one, out_dtype=self.out_dtype)
            post = _broadcast(sa, (m, 1), "scale_a") * _broadcast(sb, (1, n), "scale_b")
            with np.errstate(over="ignore", invalid="ignore"):
                return (out.astype(np.float32) * post).astype(out.dtype)
        scaling = getattr(kern, "scaling", None)
        if scaling == "tensor":
            sa, sb = _scalar(sa, "scale_a"), _scalar(sb, "scale_b")
        elif scaling == "row":
            sa, sb = _broadcast(sa, (m, 1), "scale_a"), _broadcast(sb, (1, n), "scale_b")
        return kern(ac, bc, scale_a=sa, scale_b=sb, out_dtype=self.out_dtype)


@dataclass(frozen=True, kw_only=True)
class LinearRecipe:
    """A Linear layer's three GEMMs as one stack runs them in FP8, as data."""

    name: str
    forward: LinearGemm
    """y = x @ w.T: A = x (M, IN), B = w.T (IN, OUT)."""
    grad_input: LinearGemm
    """grad_x = gy @ w: A = gy (M, OUT), B = w (OUT, IN)."""
    grad_weight: LinearGemm
    """grad_w = gy.T @ x: A = gy.T (OUT, M), B = x (M, IN)."""
    verified: tuple[str, ...] = ()
    """The GEMMs (names in `GEMMS`) whose outputs GPU captures back bit for bit."""
    description: str = ""

    def gemm(self, name: str) -> LinearGemm:
        """One of the three GEMMs by name ("forward", "grad_input", "grad_weight")."""
        if name not in GEMMS:
            raise ValueError(f"name: expected one of {', '.join(GEMMS)}, got {name!r}")
        return getattr(self, name)

    def replace(self, **changes) -> LinearRecipe:
        """A copy with some fields changed (a what-if recipe: nothing is verified then)."""
        names = [f.name for f in dataclasses.fields(self)]
        for key in changes:
            if key not in names:
                raise TypeError(f"{key}: not a LinearRecipe field; expected one of "
                                f"{', '.join(names)}")
        changes.setdefault("name", self.name + "*")
        changes.setdefault("verified", ())
        return dataclasses.replace(self, **changes)


def _ao(block, fmt="e4m3", pow2=False) -> OperandCast:
    return OperandCast(fmt=fmt, block=block, convention="torchao", pow2_scale=pow2)


def _dg(block) -> OperandCast:
    return OperandCast(block=block, convention="deepgemm")


_TILE, _KTILE, _BLOCK = (1, 128), (128, 1), (128, 128)
_TENSOR, _ROW, _COL = (None, None), (1, None), (None, 1)


DEEPGEMM_WGRAD = Kernel(
    name="deepgemm-wgrad", promote=128,
    scaling=Epilogue(name="group-product-column", scale_a="group", scale_b="group-column",
                     order="product", fused=True),
    description="DeepGEMM-style Wgrad GEMM (1x128 x 128x1): DeepGEMM's verified epilogue, "
                "acc = fma(p, fl(scale_a[i, g] * scale_b[g, j]), acc) at each promotion, with "
                "a scale per column of B. UNVERIFIED: DeepGEMM's own Wgrad kernel "
                "(wgrad_gemm_fp8_fp8_fp32_nt) was not captured.")
"""The Wgrad kernel of the deepseek-v3 recipe (unverified)."""


def _blockwise(name: str, kernel: str, description: str) -> LinearRecipe:
    return LinearRecipe(
        name=name,
        forward=LinearGemm(a=_ao(_TILE), b=_ao(_BLOCK), kernel=kernel),
        grad_input=LinearGemm(a=_ao(_TILE), b=_ao(_BLOCK), kernel=kernel),
        grad_weight=LinearGemm(a=_ao(_TILE), b=_ao(_KTILE), kernel=kernel),
        verified=GEMMS, description=description)


_ROWWISE_FORWARD = LinearGemm(a=_ao(_ROW, pow2=True), b=_ao(_COL, pow2=True),
                              kernel="torch-rowwise-fast")
"""torchao rowwise forward: power-of-two row x column scales, torch's fast row-wise kernel."""
_ROWWISE_GRAD = LinearGemm(a=_ao(_ROW, pow2=True), b=_ao(_COL, pow2=True), kernel="cublaslt",
                           scales="after")
"""torchao rowwise gradients: cuBLASLt with unit scales to bf16, then x fl32(sa * sb)."""


LINEAR_RECIPES: dict[str, LinearRecipe] = {r.name: r for r in (
    _blockwise(
        "torchao-blockwise", "cublaslt-blockwise",
        "torchao Float8BlockwiseLinear (cuBLASLt backend, torch.nn.functional.scaled_mm "
        "BlockWise): E4M3, torchao's Triton casts: 1x128 tiles of x and gy, 128x128 blocks "
        "of w, and for grad_weight 1x128 tiles of gy.T and 128x1 tiles of x; bf16 out."),
    _blockwise(
        "torchao-blockwise-triton", "torchao-triton-blockwise",
        "torchao Float8BlockwiseLinear(use_triton=True): the casts of torchao-blockwise, "
        "torchao's Triton GEMMs triton_fp8_gemm_1x128_128x128 / _128x1."),
    LinearRecipe(
        name="torchao-tensorwise",
        forward=LinearGemm(a=_ao(_TENSOR), b=_ao(_TENSOR), kernel="cublaslt-fast"),
        grad_input=LinearGemm(a=_ao(_TENSOR, "e5m2"), b=_ao(_TENSOR), kernel="cublaslt"),
        grad_weight=LinearGemm(a=_ao(_TENSOR, "e5m2"), b=_ao(_TENSOR), kernel="cublaslt"),
        verified=GEMMS,
        description="torchao Float8LinearConfig recipe 'tensorwise': one scale per tensor, "
                    "E4M3 x and w, E5M2 gy; cuBLASLt with fast accumulation for the forward "
                    "GEMM, promotion every 128 for both gradients."),
    LinearRecipe(
        name="torchao-rowwise",
        forward=_ROWWISE_FORWARD,
        grad_input=_ROWWISE_GRAD,
        grad_weight=_ROWWISE_GRAD,
        verified=GEMMS,
        description="torchao Float8LinearConfig recipe 'rowwise': E4M3 everywhere, one "
                    "power-of-two scale per row of A and per column of B (multipliers rounded "
                    "down); forward: torch's row-wise kernel with fast accumulation; "
                    "gradients: cuBLASLt with unit scales and promotion every 128 to bf16, "
                    "then times fl32(scale_a * scale_b)."),
    LinearRecipe(
        name="torchao-rowwise-gw-hp",
        forward=_ROWWISE_FORWARD,
        grad_input=LinearGemm(a=_ao(_ROW, pow2=True), b=_ao(_TENSOR, pow2=True),
                              kernel="cublaslt", scales="after"),
        grad_weight=LinearGemm(a=None, b=None, kernel="hopper-bf16"),
        verified=GEMMS,
        description="torchao Float8LinearConfig recipe 'rowwise_with_gw_hp': as rowwise, but "
                    "w is cast per tensor for grad_input (its scale repeated per column), and "
                    "grad_weight is a bf16 matmul (cuBLAS: wgmma BF16 k=16 steps, "
                    "fp8sim.engine.bf16)."),
    LinearRecipe(
        name="deepseek-v3",
        forward=LinearGemm(a=_dg(_TILE), b=_dg(_BLOCK), kernel="deepgemm"),
        grad_input=LinearGemm(a=_dg(_TILE), b=_dg(_BLOCK), kernel="deepgemm"),
        grad_weight=LinearGemm(a=_dg(_TILE), b=_dg(_KTILE), kernel=DEEPGEMM_WGRAD),
        verified=("forward", "grad_input"),
        description="DeepSeek-V3's recipe with DeepGEMM: E4M3 everywhere, DeepGEMM's casts "
                    "(1x128 tiles of x and gy, 128x128 blocks of w, 128x1 tiles of x and 1x128 "
                    "of gy.T for grad_weight, float32 scales), DeepGEMM's kernel (fma of "
                    "fl32(scale_a * scale_b) at each promotion every 128), bf16 out. The casts "
                    "and the 1x128 x 128x128 kernel of forward and grad_input are verified on "
                    "DeepGEMM's own outputs; grad_weight's kernel (DEEPGEMM_WGRAD) is not."),
)}
"""Every named Linear-layer recipe."""


def get_linear_recipe(name: str | LinearRecipe, *, arg: str = "recipe") -> LinearRecipe:
    """Looks a Linear recipe up by name; a LinearRecipe passes through."""
    return lookup(name, LINEAR_RECIPES, LinearRecipe, arg=arg, what="recipe")


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


def _kernel(name: str | Kernel):
    """The FP8 kernel of that name in fp8sim.KERNELS, with a clear error when it is missing."""
    from fp8sim.engine.kernel import KERNELS

    if isinstance(name, Kernel):
        return name
    if name not in KERNELS:
        raise ValueError(f"kernel: {name!r} is not in fp8sim.KERNELS "
                         f"(known: {', '.join(KERNELS)})")
    return KERNELS[name]


def _scalar(s: np.ndarray, arg: str) -> np.float32:
    """A (1, 1) per-tensor scale as a float32 scalar."""
    if s.size != 1:
        raise ValueError(f"{arg}: the kernel takes one scale per tensor, the cast gave "
                         f"shape {s.shape}")
    return np.float32(s.reshape(()))


def _broadcast(s: np.ndarray, shape: tuple[int, int], arg: str) -> np.ndarray:
    """Row (M, 1) or column (1, N) scales; a per-tensor scale is repeated, as torchao does."""
    try:
        return np.ascontiguousarray(np.broadcast_to(s, shape), dtype=np.float32)
    except ValueError:
        raise ValueError(f"{arg}: scales of shape {s.shape} do not fit {shape}") from None


def _bf16_out(v: np.ndarray) -> np.ndarray:
    """An output as bfloat16 (float32 outputs rounded to nearest even)."""
    return v if v.dtype == _BF16 else np.asarray(v, np.float32).astype(ml_dtypes.bfloat16)
