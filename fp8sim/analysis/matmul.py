"""The error split of an FP8 GEMM from float inputs: quantization against accumulation.

`fp8_matmul(x, w, recipe)` is what a training framework does for one linear layer:
scale and cast both operands, run the Tensor Core GEMM with the recipe's promotion
interval and scaling epilogue (`fp8sim.recipes.pipeline.quantized_gemm`), and report the
error twice, so that it can be split:

* quantization error - the exact product of the *quantized* (dequantized) inputs
  against the float64 product of the unquantized inputs;
* accumulation error - the simulated output against the exact product of the
  quantized inputs (what the MMA steps, promotion and epilogue add).

The two do not add up exactly (errors can cancel), but each is measured directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fp8sim._memory import check_memory
from fp8sim.analysis.stats import error_stats, exact_product, normwise_error
from fp8sim.recipes.catalog import get_recipe
from fp8sim.recipes.pipeline import quantized_gemm
from fp8sim.recipes.recipe import LinearGemm

__all__ = ["MatmulResult", "fp8_matmul"]


@dataclass(frozen=True, kw_only=True)
class MatmulResult:
    """Output of `fp8_matmul`, its quantized inputs, and the error split."""

    out: np.ndarray
    """(M, N) simulated GEMM output (recipe.out_dtype): the H100's bits."""
    recipe: LinearGemm
    """The recipe that ran (a GEMM recipe, `fp8sim.RECIPES`), with any changes applied."""
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
    recipe: str | LinearGemm = "deepseek-v3",
    **changes,
) -> MatmulResult:
    """x @ w as an FP8 training recipe computes it on an H100: quantize both, GEMM, error split.

    Args:
        x: (M, K) activations, float32/float64 (float16/bfloat16 widened exactly;
            float64 is rounded to float32 before quantization, as the casts work in
            float32; the reference product uses the values as given).
        w: (K, N) weights, likewise.
        recipe: a name from `fp8sim.RECIPES` or a GEMM recipe (`fp8sim.Recipe(...)`).
        **changes: recipe fields to override, e.g. promote=0 or preset="ideal".

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
    if np.ndim(x) == np.ndim(w) == 2:  # (quantized_gemm names a malformed operand)
        (m, k), n = np.shape(x), np.shape(w)[1]
        # float32 copies and codes of x and w (13 bytes an element), the output and the
        # two float64 exact products (24 bytes an output)
        check_memory(13 * (m * k + k * n) + 24 * m * n, f"fp8_matmul: M={m} N={n} K={k}",
                     hint="multiply fewer rows at a time")
    out, xc, xs, wc, ws, seconds = quantized_gemm(x, w, r)
    exact = exact_product(np.asarray(x, np.float64), np.asarray(w, np.float64))
    q_exact = exact_product(r.a.dequantize(xc, xs, dtype=np.float64),
                            r.b.dequantize(wc, ws, dtype=np.float64))
    return MatmulResult(
        out=out, recipe=r, x_codes=xc, x_scales=xs, w_codes=wc, w_scales=ws,
        exact=exact, quantized_exact=q_exact, total=_stats(out, exact),
        quantization=_stats(q_exact, exact), accumulation=_stats(out, q_exact),
        seconds=seconds)


def _stats(approx: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """`error_stats` plus the normwise error (`fp8sim.analysis.stats.normwise_error`), the
    number to compare recipes by: elementwise relative errors blow up near zero outputs."""
    return {**error_stats(approx, exact), "fro_rel_error": normwise_error(approx, exact)}
