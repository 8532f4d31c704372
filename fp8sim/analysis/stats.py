"""Error statistics shared by the CLI, the pipeline, the experiments and the notebooks."""

from __future__ import annotations

import numpy as np

from fp8sim.engine import budget

__all__ = ["error_stats", "ulp_distance", "exact_product"]


def exact_product(a_values: np.ndarray, b_values: np.ndarray,
                  c: np.ndarray | None = None) -> np.ndarray:
    """A @ B (+ C) in float64: the reference the simulated result is measured against.

    FP8 products are exact in float64 and the float64 sum's relative error (below
    K * 2**-53) is far under any error studied here. Raises MemoryError (before
    allocating) when the float64 copies and the product cannot fit in memory.
    """
    sa, sb = np.shape(a_values), np.shape(b_values)
    k = sa[-1] if sa else 1
    m = int(np.prod(sa[:-1], dtype=np.int64))
    n = sb[-1] if len(sb) > 1 else 1
    budget.check_memory(8 * (m * k + k * n + m * n), f"exact_product: M={m} N={n} K={k}",
                        hint="choose smaller matrices")
    out = np.asarray(a_values, np.float64) @ np.asarray(b_values, np.float64)
    if c is not None:
        out += np.asarray(c, np.float64)
    return out


def ulp_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Number of float32 values between x and y (0 where the bits agree; int64)."""
    def ordered(v):
        bits = np.asarray(v, np.float32).view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    return np.abs(ordered(x) - ordered(y))


def error_stats(approx: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Relative and absolute error of `approx` against `exact` (float64), over finite outputs.

    Relative errors are |approx - exact| / |exact| over the outputs with exact != 0;
    `ulp_*` measure the error in units of the last place of float32(exact).
    """
    approx = np.asarray(approx, np.float64)
    exact = np.asarray(exact, np.float64)
    finite = np.isfinite(approx) & np.isfinite(exact)
    nonzero = finite & (exact != 0)
    abs_err = np.abs(approx - exact)[finite]
    rel = (np.abs(approx - exact)[nonzero] / np.abs(exact[nonzero]))
    e32 = exact[finite].astype(np.float32)
    ulp = np.spacing(np.abs(e32)).astype(np.float64)
    ulps = abs_err / ulp
    empty = rel.size == 0
    return {
        "max_rel_error": float(rel.max()) if not empty else 0.0,
        "mean_rel_error": float(rel.mean()) if not empty else 0.0,
        "median_rel_error": float(np.median(rel)) if not empty else 0.0,
        "max_abs_error": float(abs_err.max()) if abs_err.size else 0.0,
        "mean_ulp_error": float(ulps.mean()) if ulps.size else 0.0,
        "max_ulp_error": float(ulps.max()) if ulps.size else 0.0,
        "outputs": int(exact.size),
        "nonfinite_outputs": int(exact.size - np.count_nonzero(finite)),
    }
