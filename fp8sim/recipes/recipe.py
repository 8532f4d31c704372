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
from fp8sim.casts.checks import check_block
from fp8sim.engine.bf16 import _as_bf16, gemm_bf16
from fp8sim.engine.epilogue import GROUP, GROUP_COLUMN, ROW, as_candidates
from fp8sim.engine.gemm import check_promote
from fp8sim.engine.kernel import Kernel
from fp8sim.engine.kernel import kernel as lookup_kernel
from fp8sim.engine.mma import MMAStep
from fp8sim.engine.mma import preset as preset_step
from fp8sim.formats.info import format_info

__all__ = ["OperandCast", "LinearGemm", "LinearRecipe", "GEMMS", "HP_KERNELS", "SCALE_PATHS",
           "gemm_recipe", "SCALE_RULES", "RECIPE_FIELDS", "kernel_scales"]

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
    name: str = ""
    """Name of a GEMM recipe (`fp8sim.RECIPES`); empty inside a Linear recipe."""
    description: str = ""

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

    def cast(self, a: np.ndarray, b: np.ndarray, *, args: tuple[str, str] = ("a", "b")):
        """(a_codes, scale_a, b_codes, scale_b) of float operands A (M, K) and B (K, N).

        Codes come as ml_dtypes float8 arrays; `args` name A and B in error messages.
        """
        if self.high_precision:
            raise ValueError("cast: this GEMM keeps its operands in bfloat16")
        ac, sa = self.a.cast(a, arg=args[0])
        bc, sb = self.b.cast(b, arg=args[1])
        return (ac.view(self.a.format.ml_dtype), sa, bc.view(self.b.format.ml_dtype), sb)

    def dequantized(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact (float64) values the GEMM multiplies: decode(code) * scale, or bfloat16."""
        if self.high_precision:
            return _as_bf16(a, "a").astype(np.float64), _as_bf16(b, "b").astype(np.float64)
        ac, sa, bc, sb = self.cast(a, b)
        return (self.a.dequantize(ac, sa, dtype=np.float64),
                self.b.dequantize(bc, sb, dtype=np.float64))

    def run(self, a: np.ndarray, b: np.ndarray, *, slices: int | None = None,
            gpu: str = "H100", args: tuple[str, str] = ("a", "b")) -> np.ndarray:
        """The GEMM's output (out_dtype) for bfloat16 operands A (M, K) and B (K, N).

        `slices` and `gpu` go to the FP8 kernel (its split of K: `Kernel.__call__`);
        a bfloat16 GEMM takes neither (slices must be None). `args` name A and B in
        error messages (the caller's names: x, w, grad_output)."""
        if self.high_precision:
            if slices is not None:
                raise ValueError(f"slices: this GEMM runs {self.kernel} in bfloat16, which "
                                 "never splits K; leave slices out")
            return HP_KERNELS[self.kernel](a, b, out_dtype=self.out_dtype)
        return self.run_codes(*self.cast(a, b, args=args), slices=slices, gpu=gpu)

    def run_codes(self, ac, sa, bc, sb, *, slices: int | None = None,
                  gpu: str = "H100") -> np.ndarray:
        """The GEMM's output for operands cast by `cast` (codes and the cast's scales);
        `slices` and `gpu` go to the kernel."""
        kern = _kernel(self.kernel)
        split = {"slices": slices, "gpu": gpu}
        (m, k), n = ac.shape, bc.shape[1]
        blocks = (self.a.resolve(ac.shape), self.b.resolve(bc.shape))
        if self.scales == "after":
            one = np.float32(1)
            out = kern(ac, bc, scale_a=one, scale_b=one, out_dtype=self.out_dtype, **split)
            ra, rb = ROW.scales_from_blocks(sa, blocks[0], sb, blocks[1], m, k, n, 0)
            with np.errstate(over="ignore", invalid="ignore"):
                return (out.astype(np.float32) * (ra * rb)).astype(out.dtype)
        try:
            sa2, sb2, ep = kernel_scales(kern, sa, blocks[0], sb, blocks[1], m, k, n)
        except ValueError as err:
            if not (str(err).startswith("b_block") and _group_scaled(kern)):
                raise
            # B's scale blocks are narrower than 128 columns: one GEMM per scale column
            sa2, sw = GROUP_COLUMN.scales_from_blocks(sa, blocks[0], sb, blocks[1], m, k, n,
                                                      kern.promote)
            return _by_scale_columns(kern, ac, bc, sa2, sw, self.out_dtype, split)
        # the epilogue named: at N = 1 the scale shapes of two layouts coincide
        return kern(ac, bc, scale_a=sa2, scale_b=sb2, out_dtype=self.out_dtype, scaling=ep,
                    **split)

    # the flat view of a GEMM recipe (`gemm_recipe`'s fields)

    @property
    def x_format(self) -> str:
        """Element format of A (the activations x)."""
        return self.a.format.name

    @property
    def w_format(self) -> str:
        """Element format of B (the weights w)."""
        return self.b.format.name

    @property
    def x_block(self) -> tuple:
        """Scaling block of A."""
        return self.a.block

    @property
    def w_block(self) -> tuple:
        """Scaling block of B."""
        return self.b.block

    @property
    def scale_rule(self) -> str:
        """"amax", "pow2", "mx" or "mx-up" (`SCALE_RULES`), from A's cast."""
        if self.a.mx:
            return self.a.convention
        return "pow2" if self.a.pow2_scale else "amax"

    @property
    def pow2_scale(self) -> bool:
        """True where every scale is a power of two (E8M0-representable)."""
        return self.a.power_of_two

    @property
    def promote(self) -> int:
        """The kernel's promotion interval along K."""
        return _kernel(self.kernel).promote

    @property
    def scaling(self) -> str:
        """The kernel's epilogue name(s)."""
        return _kernel(self.kernel).scaling_label

    @property
    def preset(self) -> str | MMAStep:
        """The kernel's MMA step model."""
        return _kernel(self.kernel).step

    def replace(self, **changes) -> LinearGemm:
        """A copy with some fields changed: its own, or `gemm_recipe`'s flat fields
        (promote=0, preset="ideal", x_block=..., ...), named "name[promote=0]"."""
        flat = set(RECIPE_FIELDS) - {"name", "description", "out_dtype"}
        own = [f.name for f in dataclasses.fields(self)]
        for key in changes:
            if key not in own and key not in flat:
                raise TypeError(f"{key}: not a Recipe field; expected one of "
                                f"{', '.join(dict.fromkeys([*RECIPE_FIELDS, *own]))}")
        if "name" not in changes and self.name:
            changes["name"] = self.name + "".join(f"[{k}={v}]" for k, v in changes.items())
        if not flat & set(changes):
            return dataclasses.replace(self, **changes)
        fields = {f: getattr(self, f) for f in RECIPE_FIELDS}
        return gemm_recipe(**(fields | changes))


SCALE_RULES = ("amax", "pow2", "mx", "mx-up")
"""How a GEMM recipe's casts choose block scales: DeepGEMM's cast (amax), that rounded up
to a power of two (pow2, UE8M0), OCP MX (mx) or Transformer Engine's MXFP8 (mx-up)."""
GEMM_SCALINGS = ("group", "tensor", "row")
RECIPE_FIELDS = ("name", "x_format", "w_format", "x_block", "w_block", "scale_rule",
                 "scaling", "promote", "preset", "out_dtype", "description")
"""The flat fields of a GEMM recipe (`gemm_recipe`, `fp8sim.Recipe`)."""


def gemm_recipe(*, name: str, x_format: str = "e4m3", w_format: str = "e4m3",
                x_block: tuple = (1, 128), w_block: tuple = (128, 128),
                scale_rule: str = "amax", scaling: str = "group", promote: int = 128,
                preset: str | MMAStep = "hopper", out_dtype: str = "float32",
                description: str = "") -> LinearGemm:
    """One FP8 GEMM from float inputs as a `LinearGemm`, described by flat fields.

    x (M, K) and w (K, N) are cast by DeepGEMM's convention (`scale_rule` "amax" or
    "pow2") or an OCP MX rule ("mx", "mx-up") in blocks `x_block` / `w_block` (None spans
    the axis), then multiplied by the MMA step `preset`, promoting every `promote`
    elements of K, with the epilogue `scaling` ("group", "tensor", "row").

    Raises:
        ValueError: naming the field that no GEMM could run.
    """
    for arg, fmt in (("x_format", x_format), ("w_format", w_format)):
        if not format_info(fmt, arg=arg).signed:
            raise ValueError(f"{arg}: {fmt!r} is a scale format, not an element format")
    if scale_rule not in SCALE_RULES:
        raise ValueError(f"scale_rule: expected one of {', '.join(SCALE_RULES)}, "
                         f"got {scale_rule!r}")
    if scaling not in GEMM_SCALINGS:
        raise ValueError(f"scaling: expected one of {', '.join(GEMM_SCALINGS)}, "
                         f"got {scaling!r}")
    rule = {"amax": "deepgemm", "pow2": "deepgemm"}.get(scale_rule, scale_rule)
    casts = []
    for arg, fmt, blk in (("x_block", x_format, x_block), ("w_block", w_format, w_block)):
        try:
            check_block(blk, arg, allow_none=True)
        except ValueError:
            raise ValueError(f"{arg}: expected (rows, columns), positive ints or None, "
                             f"got {blk!r}") from None
        casts.append(BlockCast(fmt=fmt, block=tuple(blk), convention=rule,
                               pow2_scale=scale_rule == "pow2"))
    check_promote(promote, preset_step(preset))
    kern = Kernel(name=f"{name}-gemm", step=preset, promote=promote, scaling=scaling,
                  out_dtype=out_dtype)
    return LinearGemm(a=casts[0], b=casts[1], kernel=kern, out_dtype=out_dtype, name=name,
                      description=description)


def kernel_scales(kern: Kernel, sa, a_block, sb, b_block, m: int, k: int, n: int):
    """(scale_a, scale_b, epilogue): the cast scales laid out for the first of the kernel's
    epilogues they fit (`Epilogue.scales_from_blocks`); the caller names that epilogue to
    the kernel, so it runs the layout chosen here."""
    candidates = as_candidates(kern.scaling)
    if candidates is None:
        raise ValueError(f"kernel: {kern.name} applies no scales; cast operands need a "
                         "kernel with a scaling epilogue")
    first = None
    for ep in candidates:
        try:
            return (*ep.scales_from_blocks(sa, a_block, sb, b_block, m, k, n, kern.promote), ep)
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


def _group_scaled(kern: Kernel) -> bool:
    """True where the kernel's first epilogue is DeepGEMM's group scaling."""
    cands = as_candidates(kern.scaling) or []
    return bool(cands) and cands[0].key == GROUP.key


def _by_scale_columns(kern: Kernel, ac, bc, sa, sw, out_dtype: str, split: dict
                      ) -> np.ndarray:
    """A group-scaled GEMM whose B scales differ per column: the columns gathered by their
    (bitwise identical) scale column, each set its own GEMM. Output elements depend only on
    their own row and column, so the bits are those of one large GEMM."""
    n = bc.shape[1]
    keys = np.ascontiguousarray(sw.T).view(np.uint32)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    out = None
    for u in np.unique(inverse):
        cols = np.flatnonzero(inverse == u)
        s = np.repeat(sw[:, cols[0]][:, None], -(-cols.size // GROUP.block_n), 1)
        part = kern(ac, bc[:, cols], scale_a=sa, scale_b=s, scaling=GROUP, out_dtype=out_dtype,
                    **split)
        if out is None:
            out = np.empty((ac.shape[0], n), dtype=part.dtype)
        out[:, cols] = part
    return out


def _kernel(name: str | Kernel) -> Kernel:
    """The FP8 kernel of that name in fp8sim.KERNELS (a Kernel passes through)."""
    return lookup_kernel(name)
