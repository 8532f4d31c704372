"""End-to-end FP8 GEMM from float inputs: quantize x and w by a recipe, multiply bit for bit.

`fp8_matmul(x, w, recipe)` is what a training framework does for one linear layer:
scale and cast both operands (`fp8sim.quant`), run the Tensor Core GEMM with the
recipe's promotion interval and scaling epilogue (`fp8sim.gemm`), and report the error
twice, so that it can be split:

* quantization error - the exact product of the *quantized* (dequantized) inputs
  against the float64 product of the unquantized inputs;
* accumulation error - the simulated output against the exact product of the
  quantized inputs (what the MMA steps, promotion and epilogue add).

The two do not add up exactly (errors can cancel), but each is measured directly.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from fp8sim.analysis.stats import error_stats, exact_product
from fp8sim.casts import BlockCast, dequantize
from fp8sim.casts.checks import check_x
from fp8sim.engine.epilogue import GROUP, GROUP_COLUMN, epilogue
from fp8sim.engine.gemm import gemm
from fp8sim.engine.mma import MMAStep
from fp8sim.formats.info import format_info

__all__ = ["Recipe", "RECIPES", "MatmulResult", "fp8_matmul", "get_recipe"]

SCALE_RULES = ("amax", "pow2", "mx", "mx-up")
_SCALINGS = ("group", "tensor", "row")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How a framework quantizes and multiplies one FP8 GEMM, as data."""

    name: str
    """Recipe name ("deepseek-v3")."""
    x_format: str = "e4m3"
    """Element format of the activations x (M, K)."""
    w_format: str = "e4m3"
    """Element format of the weights w (K, N)."""
    x_block: tuple[int | None, int | None] = (1, 128)
    """Scaling block of x, (rows, columns); None spans the whole axis ((None, None):
    one scale per tensor; (1, None): one per row)."""
    w_block: tuple[int | None, int | None] = (128, 128)
    """Scaling block of w (K, N), (rows along K, columns along N); None as for x_block."""
    scale_rule: str = "amax"
    """How a block's scale is chosen: "amax" (DeepGEMM's cast, fl32(amax * fl32(1 / fmt_max))),
    "pow2" (that rounded up to a power of two, UE8M0), "mx" (OCP MX shared
    exponent floor(log2(amax)) - emax_elem, saturating elements) or "mx-up"
    (Transformer Engine's MXFP8: ceil(log2(amax / fmt_max)), no amax floor)."""
    scaling: str = "group"
    """Epilogue of `fp8sim.gemm`: "group" (block scales applied with an fma at each
    promotion), "tensor" (one alpha at the end) or "row" (row/column scales at the end)."""
    promote: int = 128
    """Promotion interval along K (0: never, one long MMA chain)."""
    preset: str | MMAStep = "hopper"
    """MMA step model (`fp8sim.engine.mma.PRESETS`)."""
    out_dtype: str = "float32"
    """Output type of the GEMM ("float32", "bfloat16", "float16")."""
    description: str = ""

    @property
    def pow2_scale(self) -> bool:
        """True where every scale is a power of two (E8M0-representable)."""
        return self.scale_rule != "amax"

    def replace(self, **changes) -> Recipe:
        """A copy with some fields changed (e.g. promote=0)."""
        names = [f.name for f in dataclasses.fields(self)]
        for key in changes:
            if key not in names:
                raise TypeError(f"{key}: not a Recipe field; expected one of {', '.join(names)}")
        if "name" not in changes:
            changes["name"] = self.name + "".join(f"[{k}={v}]" for k, v in changes.items())
        return dataclasses.replace(self, **changes)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        name="deepseek-v3",
        description="DeepSeek-V3 / DeepGEMM: E4M3 everywhere, 1x128 activation tiles, "
                    "128x128 weight blocks, float32 scales applied with an fma at each "
                    "promotion every 128 elements of K (DeepGEMM writes bfloat16: set "
                    "out_dtype='bfloat16' for its output type).",
    ),
    Recipe(
        name="deepseek-v3-ue8m0", scale_rule="pow2",
        description="deepseek-v3 with power-of-two (UE8M0) scales, as DeepGEMM's use_ue8m0.",
    ),
    Recipe(
        name="per-tensor", x_block=(None, None), w_block=(None, None), scaling="tensor",
        description="cuBLASLt-style: one float32 scale per tensor (current amax), alpha = "
                    "scale_a * scale_b applied at the end, promotion every 128 (no fast "
                    "accumulation).",
    ),
    Recipe(
        name="fast-accum", x_block=(None, None), w_block=(None, None), scaling="tensor",
        promote=0,
        description="per-tensor with cuBLASLt's CUBLASLT_MATMUL_DESC_FAST_ACCUM: the "
                    "partial sum is never promoted (one wgmma chain along K).",
    ),
    Recipe(
        name="mx", x_block=(1, 32), w_block=(32, 1), scale_rule="mx", promote=32,
        description="OCP MX (MXFP8 E4M3): 32-element blocks along K with E8M0 shared "
                    "exponents. Hopper has no block-scaled MMA, so this is its emulation: "
                    "a promotion every wgmma step (32) with the two power-of-two scales in "
                    "the promotion fma. Blackwell applies the scales inside the MMA, which "
                    "fp8sim does not model. Per-column weight scales cost one engine call "
                    "per distinct scale column (about 50x slower than deepseek-v3).",
    ),
    Recipe(
        name="mx-te", x_block=(1, 32), w_block=(32, 1), scale_rule="mx-up", promote=32,
        description="mx with Transformer Engine's MXFP8 scale rule: the E8M0 scale is "
                    "rounded up from amax / fmt_max, so no element is clamped (the OCP "
                    "rule's floor clamps a block's largest values past fmt_max).",
    ),
)}
"""Named recipes users compare."""


def get_recipe(name: str | Recipe, *, arg: str = "recipe") -> Recipe:
    """Looks a recipe up by name; a Recipe passes through."""
    if isinstance(name, Recipe):
        return name
    if isinstance(name, str) and name in RECIPES:
        return RECIPES[name]
    raise ValueError(f"{arg}: unknown recipe {name!r}; expected one of {', '.join(RECIPES)}")


@dataclass(frozen=True, kw_only=True)
class MatmulResult:
    """Output of `fp8_matmul`, its quantized inputs, and the error split."""

    out: np.ndarray
    """(M, N) simulated GEMM output (recipe.out_dtype): the H100's bits."""
    recipe: Recipe
    x_codes: np.ndarray
    x_scales: np.ndarray
    w_codes: np.ndarray
    w_scales: np.ndarray
    exact: np.ndarray = field(repr=False)
    """float64 product of the unquantized inputs."""
    quantized_exact: np.ndarray = field(repr=False)
    """float64 product of the dequantized inputs (decode(code) * scale, exact values)."""
    total: dict[str, float]
    """error_stats(out, exact): everything the FP8 GEMM costs."""
    quantization: dict[str, float]
    """error_stats(quantized_exact, exact): the cost of the scaled casts alone."""
    accumulation: dict[str, float]
    """error_stats(out, quantized_exact): the cost of the MMA steps, promotion, epilogue."""
    seconds: float
    """Wall time of the simulated GEMM (quantization excluded)."""

    def summary(self) -> str:
        """A small table of the error split (normwise, median and max relative error)."""
        rows = [("total", self.total), ("quantization", self.quantization),
                ("accumulation", self.accumulation)]
        lines = [f"{self.recipe.name}: out {self.out.shape} {self.out.dtype}",
                 f"{'error':<14}{'fro_rel':>11}{'median_rel':>11}{'max_rel':>11}"]
        lines += [f"{n:<14}{s['fro_rel_error']:>11.3e}{s['median_rel_error']:>11.3e}"
                  f"{s['max_rel_error']:>11.3e}" for n, s in rows]
        return "\n".join(lines)


def fp8_matmul(
    x: np.ndarray,
    w: np.ndarray,
    recipe: str | Recipe = "deepseek-v3",
    **changes,
) -> MatmulResult:
    """x @ w as an FP8 training recipe computes it on an H100: quantize both, GEMM, error split.

    Args:
        x: (M, K) activations, float32/float64 (float16/bfloat16 widened exactly;
            float64 is rounded to float32 before quantization, as the casts work in
            float32; the reference product uses the values as given).
        w: (K, N) weights, likewise.
        recipe: a name from `RECIPES` or a `Recipe`.
        **changes: Recipe fields to override, e.g. promote=0 or preset="ideal".

    Returns:
        A `MatmulResult`. M = 0 or N = 0 give empty outputs (and zero errors).

    Raises:
        ValueError: NaN/Inf in x or w (they would poison the scales: quantize them
            yourself with nonfinite="propagate" to see what the GPU reference gives),
            K = 0, mismatched shapes, or a recipe whose blocks its epilogue cannot apply.
    """
    r = get_recipe(recipe)
    if changes:
        r = r.replace(**changes)
    _check_recipe(r)
    x32, w32 = check_x(x, "x"), check_x(w, "w")
    m, k = x32.shape
    if w32.shape[0] != k:
        raise ValueError(f"w: expected shape ({k}, N) to match x's K = {k}, got {w32.shape}")
    if k == 0:
        raise ValueError(f"x: K must be at least 1, got shape {x32.shape}")
    xb = _resolve(r.x_block, x32.shape)
    wb = _resolve(r.w_block, w32.shape)
    xc, xs = _quantize_by(x32, r.x_format, xb, r.scale_rule, "x")
    wc, ws = _quantize_by(w32, r.w_format, wb, r.scale_rule, "w")
    t0 = time.perf_counter()
    out = _scaled_gemm(xc, xs, xb, wc, ws, wb, r)
    seconds = time.perf_counter() - t0
    exact = exact_product(np.asarray(x, np.float64), np.asarray(w, np.float64))
    q_exact = exact_product(dequantize(xc, xs, r.x_format, block=xb, dtype=np.float64),
                            dequantize(wc, ws, r.w_format, block=wb, dtype=np.float64))
    return MatmulResult(
        out=out, recipe=r, x_codes=xc, x_scales=xs, w_codes=wc, w_scales=ws,
        exact=exact, quantized_exact=q_exact, total=_stats(out, exact),
        quantization=_stats(q_exact, exact), accumulation=_stats(out, q_exact),
        seconds=seconds)


def _stats(approx: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """`error_stats` plus the normwise error ||approx - exact||_F / ||exact||_F (finite outputs).

    Elementwise relative errors blow up where an output is near zero; the normwise
    error does not, so it is the number to compare recipes by.
    """
    stats = error_stats(approx, exact)
    a, e = np.asarray(approx, np.float64), np.asarray(exact, np.float64)
    finite = np.isfinite(a) & np.isfinite(e)
    norm = float(np.linalg.norm(e[finite]))
    diff = float(np.linalg.norm((a - e)[finite]))
    stats["fro_rel_error"] = diff / norm if norm else 0.0
    return stats


def _check_recipe(r: Recipe) -> None:
    for arg in ("x_format", "w_format"):
        if not format_info(getattr(r, arg), arg=arg).signed:
            raise ValueError(f"{arg}: {getattr(r, arg)!r} is a scale format, not an element format")
    if r.scale_rule not in SCALE_RULES:
        raise ValueError(f"scale_rule: expected one of {', '.join(SCALE_RULES)}, "
                         f"got {r.scale_rule!r}")
    if r.scaling not in _SCALINGS:
        raise ValueError(f"scaling: expected one of {', '.join(_SCALINGS)}, got {r.scaling!r}")
    for arg, blk in (("x_block", r.x_block), ("w_block", r.w_block)):
        ok = isinstance(blk, (tuple, list)) and len(blk) == 2 and all(
            b is None or (isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b > 0)
            for b in blk)
        if not ok:
            raise ValueError(f"{arg}: expected (rows, columns), positive ints or None, got {blk!r}")


def _resolve(block, shape) -> tuple[int, int]:
    """The block with None replaced by the axis length (at least 1)."""
    return tuple(max(s, 1) if b is None else int(b) for b, s in zip(block, shape, strict=True))


def _quantize_by(v, fmt, block, rule, arg):
    convention = rule if rule in ("mx", "mx-up") else "deepgemm"
    cast = BlockCast(fmt=fmt, block=block, convention=convention, pow2_scale=rule == "pow2")
    return cast.cast(v, arg=arg)


def _scaled_gemm(xc, xs, xb, wc, ws, wb, r: Recipe) -> np.ndarray:
    """Runs `fp8sim.gemm` with the recipe's epilogue, the cast scales laid out by it."""
    kw = dict(a_format=r.x_format, b_format=r.w_format, promote=r.promote, preset=r.preset,
              out_dtype=r.out_dtype)
    m, k = xc.shape
    n = wc.shape[1]
    ep = epilogue(r.scaling)
    p = r.promote
    if ep.k_grouped and (p <= 0 or xb[1] % p or wb[0] % p):
        raise ValueError(f"promote: group scaling applies the scales at each promotion, so "
                         f"it must divide the blocks' K extents ({xb[1]} and {wb[0]}); "
                         f"got {p}")
    try:
        sa, sb = ep.scales_from_blocks(xs, xb, ws, wb, m, k, n, p)
    except ValueError as err:
        if ep is not GROUP or not str(err).startswith("b_block"):
            msg = str(err).replace("a_block", "x_block", 1).replace("b_block", "w_block", 1)
            raise ValueError(msg) from None
        # w's scale blocks are narrower than the engine's 128 columns: one GEMM per scale column
        sa, sw = GROUP_COLUMN.scales_from_blocks(xs, xb, ws, wb, m, k, n, p)
        return _gemm_by_scale_columns(xc, wc, sa, sw, 1, kw)
    return gemm(xc, wc, scale_a=sa, scale_b=sb, scaling=ep, **kw)


def _gemm_by_scale_columns(xc, wc, sa, sw, bn, kw) -> np.ndarray:
    """Group-scaled GEMM where w's scale blocks are narrower than the engine's 128 columns.

    The engine applies one w scale per 128 columns, so columns are gathered by their
    (bitwise identical) scale column and each set runs as its own GEMM. Output elements
    depend only on their own row and column, so the bits are those of one large GEMM.
    """
    n = wc.shape[1]
    col_block = np.arange(n) // bn
    keys = np.ascontiguousarray(sw.T).view(np.uint32)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    out = None
    for u in np.unique(inverse):
        cols = np.flatnonzero(inverse[col_block] == u)
        s = sw[:, col_block[cols[0]]][:, None]
        part = gemm(xc, wc[:, cols], scale_a=sa, scale_b=np.repeat(s, -(-cols.size // 128), 1),
                    scaling="group", **kw)
        if out is None:
            out = np.empty((xc.shape[0], n), dtype=part.dtype)
        out[:, cols] = part
    return out
