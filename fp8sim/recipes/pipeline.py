"""Float inputs to an FP8 GEMM by a named recipe: cast x and w, multiply bit for bit.

A GEMM recipe is a `LinearGemm` (`fp8sim.recipes.recipe`): the casts of x (M, K) and
w (K, N) and the kernel that multiplies them; `Recipe(...)` builds one from flat fields
(`gemm_recipe`) and `RECIPES` names them (`fp8sim.recipes.catalog.GEMM_RECIPES`).
`quantized_gemm` runs one; `fp8sim.fp8_matmul` (`fp8sim.analysis.matmul`) adds the
error split into quantization and accumulation.
"""

from __future__ import annotations

import time

import numpy as np

from fp8sim.casts.checks import check_x
from fp8sim.recipes.catalog import GEMM_RECIPES, get_recipe
from fp8sim.recipes.recipe import SCALE_RULES, LinearGemm, gemm_recipe

__all__ = ["Recipe", "RECIPES", "get_recipe", "quantized_gemm", "SCALE_RULES"]

Recipe = gemm_recipe
"""A GEMM recipe from flat fields (name, x_format, w_format, x_block, w_block, scale_rule,
scaling, promote, preset, out_dtype): `gemm_recipe`, returning a `LinearGemm`."""
RECIPES = GEMM_RECIPES
"""Named GEMM recipes users compare."""


def quantized_gemm(x, w, recipe: str | LinearGemm = "deepseek-v3", **changes):
    """(out, x_codes, x_scales, w_codes, w_scales, seconds) of x @ w by a GEMM recipe.

    x (M, K) and w (K, N) are float arrays (float64 rounded to float32, as the casts
    work in float32); `changes` override recipe fields (promote=0, preset="ideal", ...).
    The codes are uint8; `seconds` is the GEMM's wall time, the casts excluded.

    Raises:
        ValueError: NaN/Inf in x or w, K = 0, mismatched shapes, or a recipe whose blocks
            its epilogue cannot apply, naming the argument.
    """
    r = get_recipe(recipe)
    if changes:
        r = r.replace(**changes)
    x32, w32 = check_x(x, "x"), check_x(w, "w")
    k = x32.shape[1]
    if w32.shape[0] != k:
        raise ValueError(f"w: expected shape ({k}, N) to match x's K = {k}, got {w32.shape}")
    if k == 0:
        raise ValueError(f"x: K must be at least 1, got shape {x32.shape}")
    xb, wb = (tuple(max(n, 1) if b is None else b for b, n in zip(c.block, v.shape, strict=True))
              for c, v in ((r.a, x32), (r.b, w32)))
    p = r.promote
    if r.scaling == "group" and p <= 0:
        raise ValueError(f"promote: group scaling applies the scales at each promotion, so "
                         f"it needs promote > 0 (a divisor of the blocks' K extents, {xb[1]} "
                         f"and {wb[0]}); got {p}")
    if r.scaling == "group" and (xb[1] % p or wb[0] % p):
        raise ValueError(f"promote: group scaling applies the scales at each promotion, so "
                         f"it must divide the blocks' K extents ({xb[1]} and {wb[0]}); "
                         f"got {p}")
    xc, xs, wc, ws = r.cast(x32, w32, args=("x", "w"))
    t0 = time.perf_counter()
    try:
        out = r.run_codes(xc, xs, wc, ws)
    except ValueError as err:
        msg = str(err)
        if msg.startswith(("a_block", "b_block")):
            msg = msg.replace("a_block", "x_block", 1).replace("b_block", "w_block", 1)
            raise ValueError(msg) from None
        raise
    seconds = time.perf_counter() - t0
    return out, xc.view(np.uint8), xs, wc.view(np.uint8), ws, seconds

