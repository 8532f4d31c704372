"""One description of an FP8 GEMM recipe: per operand a `BlockCast`, a kernel, where the scales go.

A `LinearGemm` is one GEMM as a stack runs it (the casts of A and B, the kernel, whether
the scales go into the kernel's epilogue or onto its output); a `LinearRecipe` is a
Linear layer's three GEMMs (forward, grad_input, grad_weight). Named recipes are in
`fp8sim.recipes.catalog`; `fp8sim.recipes.layers.linear` runs them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from fp8sim.casts import BlockCast
from fp8sim.engine.bf16 import _as_bf16, gemm_bf16
from fp8sim.engine.epilogue import ROW, as_candidates
from fp8sim.engine.kernel import Kernel
from fp8sim.engine.kernel import kernel as lookup_kernel

__all__ = ["OperandCast", "LinearGemm", "LinearRecipe", "GEMMS", "HP_KERNELS", "SCALE_PATHS"]

GEMMS = ("forward", "grad_input", "grad_weight")
"""The three GEMMs of a Linear layer, in the order `linear` returns their outputs."""
SCALE_PATHS = ("kernel", "after")
_BF16 = np.dtype(ml_dtypes.bfloat16)

HP_KERNELS: dict[str, Callable[..., np.ndarray]] = {"hopper-bf16": gemm_bf16}
"""GEMMs of unquantized bfloat16 operands, by name (`fp8sim.engine.bf16`)."""


OperandCast = BlockCast
"""How one GEMM operand is cast from bfloat16 to FP8: a `fp8sim.casts.BlockCast` whose block
lies on the operand as the GEMM reads it, A (M, K) or B (K, N) (the former name)."""


@dataclass(frozen=True, kw_only=True)
class LinearGemm:
    """One GEMM of a Linear layer: its operands' casts and the kernel that multiplies them."""

    a: BlockCast | None
    """Cast of the left operand; None keeps both operands in bfloat16 (a GEMM in high
    precision, `HP_KERNELS`)."""
    b: BlockCast | None
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
        ac, sa = self.a.cast(a, arg="a")
        bc, sb = self.b.cast(b, arg="b")
        return (ac.view(self.a.format.ml_dtype), sa, bc.view(self.b.format.ml_dtype), sb)

    def dequantized(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact (float64) values the GEMM multiplies: decode(code) * scale, or bfloat16."""
        if self.high_precision:
            return _as_bf16(a, "a").astype(np.float64), _as_bf16(b, "b").astype(np.float64)
        ac, sa, bc, sb = self.cast(a, b)
        return (self.a.dequantize(ac, sa, dtype=np.float64),
                self.b.dequantize(bc, sb, dtype=np.float64))

    def run(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The GEMM's output (out_dtype) for bfloat16 operands A (M, K) and B (K, N)."""
        if self.high_precision:
            return HP_KERNELS[self.kernel](a, b, out_dtype=self.out_dtype)
        kern = _kernel(self.kernel)
        ac, sa, bc, sb = self.cast(a, b)
        (m, k), n = ac.shape, bc.shape[1]
        blocks = (self.a.resolve(ac.shape), self.b.resolve(bc.shape))
        if self.scales == "after":
            one = np.float32(1)
            out = kern(ac, bc, scale_a=one, scale_b=one, out_dtype=self.out_dtype)
            ra, rb = ROW.scales_from_blocks(sa, blocks[0], sb, blocks[1], m, k, n, 0)
            with np.errstate(over="ignore", invalid="ignore"):
                return (out.astype(np.float32) * (ra * rb)).astype(out.dtype)
        sa, sb = kernel_scales(kern, sa, blocks[0], sb, blocks[1], m, k, n)
        return kern(ac, bc, scale_a=sa, scale_b=sb, out_dtype=self.out_dtype)


def kernel_scales(kern: Kernel, sa, a_block, sb, b_block, m: int, k: int, n: int):
    """Cast scales laid out for the kernel's epilogue: the first of its candidates they fit.

    The kernel picks its epilogue from the scale shapes in the same order, so the layout
    chosen here is the epilogue it runs (`Epilogue.scales_from_blocks`).
    """
    candidates = as_candidates(kern.scaling)
    if candidates is None:
        raise ValueError(f"kernel: {kern.name} applies no scales; cast operands need a "
                         "kernel with a scaling epilogue")
    first = None
    for ep in candidates:
        try:
            return ep.scales_from_blocks(sa, a_block, sb, b_block, m, k, n, kern.promote)
        except ValueError as err:
            first = first or err
    raise first


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


# --- helpers -------------------------------------------------------------------------


def _kernel(name: str | Kernel) -> Kernel:
    """The FP8 kernel of that name in fp8sim.KERNELS (a Kernel passes through)."""
    return lookup_kernel(name)
