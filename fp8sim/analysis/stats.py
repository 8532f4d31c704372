"""Error statistics shared by the CLI, the pipeline, the experiments and the notebooks."""

from __future__ import annotations

import math

import numpy as np

from fp8sim.engine import budget

__all__ = ["error_stats", "normwise_error", "ulp_distance", "exact_product"]


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
    with np.errstate(invalid="ignore", over="ignore"):  # Inf * 0 is NaN, as on the GPU
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


def normwise_error(approx: np.ndarray, exact: np.ndarray, *,
                   relative_to: np.ndarray | None = None) -> float:
    """Normwise relative error ||approx - exact||_F / ||exact||_F: the number to compare
    GEMMs by, since elementwise relative errors blow up where an output is near zero.

    Convention: the sums run over the outputs where `approx` and `exact` (and
    `relative_to`) are all finite; NaN when there is no such output (never 0.0: an
    all-NaN result has no error to report); 0.0 when the reference norm is zero and so is
    the difference, else infinity. `relative_to` replaces `exact` in the denominator, to
    split an error into parts measured against one norm (||out - q||_F / ||exact||_F).
    """
    a = np.asarray(approx, np.float64)
    e = np.asarray(exact, np.float64)
    r = e if relative_to is None else np.asarray(relative_to, np.float64)
    finite = np.isfinite(a) & np.isfinite(e) & np.isfinite(r)
    if not finite.any():
        return float("nan")
    diff = float(np.linalg.norm((a - e)[finite]))
    norm = float(np.linalg.norm(r[finite]))
    if norm == 0:
        return 0.0 if diff == 0 else float("inf")
    return diff / norm


def error_stats(approx: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Relative and absolute error of `approx` against `exact` (float64), over finite outputs.

    Relative errors are |approx - exact| / |exact| over the outputs with both finite and
    exact != 0; `ulp_*` measure the error in units of the last place of float32(exact).
    A statistic with no output to run over (all outputs NaN or Inf; every exact value
    zero, for the relative errors) is NaN, never 0.0; `nonfinite_outputs` counts the
    outputs left out. No numpy warnings.
    """
    approx = np.asarray(approx, np.float64)
    exact = np.asarray(exact, np.float64)
    finite = np.isfinite(approx) & np.isfinite(exact)
    nonzero = finite & (exact != 0)
    abs_err = np.abs(approx[finite] - exact[finite])
    rel = np.abs(approx[nonzero] - exact[nonzero]) / np.abs(exact[nonzero])
    with np.errstate(over="ignore", invalid="ignore"):  # exact values beyond float32
        e32 = exact[finite].astype(np.float32)
        ulps = abs_err / np.spacing(np.abs(e32)).astype(np.float64)
    nan = float("nan")
    return {
        "max_rel_error": float(rel.max()) if rel.size else nan,
        "mean_rel_error": float(rel.mean()) if rel.size else nan,
        "median_rel_error": float(np.median(rel)) if rel.size else nan,
        "max_abs_error": float(abs_err.max()) if abs_err.size else nan,
        "mean_ulp_error": float(ulps.mean()) if ulps.size else nan,
        "max_ulp_error": float(ulps.max()) if ulps.size else nan,
        "outputs": int(exact.size),
        "nonfinite_outputs": int(exact.size - np.count_nonzero(finite)),
    }


def percent(share: float, digits: int = 2) -> float:
    """100 * share rounded down to `digits` decimals: a match that misses one output of
    thousands never reads as 100% (and 100 only when every output matches)."""
    scale = 10.0 ** digits
    return math.floor(100 * share * scale) / scale
