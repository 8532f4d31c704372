"""One measurement of a simulated GEMM, and the row it reports.

Every study, sweep point and `fp8sim gemm` run measures a GEMM the same way: run it
(timed), compute the exact product, compare (`compare`), and run its "ideal twin" (the
same GEMM with the ideal step: sequential FP32 accumulation of exact products) to count
the outputs whose bits the accumulator changed (`share_differs`). `measure` does that;
`measure_kernel` sets it up for `fp8sim.gemm` or a named kernel with any scales;
`GemmRow` is the result row (`fp8sim gemm --json` prints its `as_dict()`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fp8sim.analysis.scales import scaled_exact
from fp8sim.analysis.stats import error_stats, exact_product, normwise_error
from fp8sim.engine import budget
from fp8sim.engine.gemm import gemm
from fp8sim.formats.info import format_of_dtype

__all__ = ["Measurement", "GemmRow", "compare", "share_differs", "measure", "measure_kernel",
           "measure_recipe", "defaults", "kernel_scaling", "out_dtype_name", "format_name"]


@dataclass(frozen=True)
class Measurement:
    """A simulated GEMM's output, its error statistics and its wall time."""

    out: np.ndarray
    """The simulated output (float32, bfloat16 or float16)."""
    stats: dict[str, float]
    """`compare` against the exact product, plus `total_*` (against the float data) and
    `share_differs_from_ideal` / `ideal_max_rel_error` where those were measured."""
    seconds: float
    """Wall time of the simulated GEMM alone."""


@dataclass
class GemmRow:
    """One measured GEMM: what ran, on which data, and its errors (one row of output)."""

    m: int
    n: int
    k: int
    promote: int
    a_format: str
    b_format: str
    preset: str
    recipe: str | None = None
    kernel: str | None = None
    out_dtype: str = "float32"
    data: dict[str, Any] = field(default_factory=dict)
    """How the data came about: dist, scale, seed (and the files a, b)."""
    stats: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    """Wall time of the simulated GEMM (reported as gemm_seconds)."""

    def as_dict(self) -> dict[str, Any]:
        """The flat row: settings, data, statistics, then gemm_seconds."""
        return {"m": self.m, "n": self.n, "k": self.k, "promote": self.promote,
                "a_format": self.a_format, "b_format": self.b_format, "preset": self.preset,
                "recipe": self.recipe, "kernel": self.kernel, "out_dtype": self.out_dtype,
                **self.data, **self.stats, "gemm_seconds": self.seconds}


def compare(out: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """`error_stats` of `out` against `exact` plus `fro_rel_error` (`normwise_error`)."""
    out32 = np.asarray(out, np.float32)
    return dict(error_stats(out32, exact)) | {"fro_rel_error": normwise_error(out32, exact)}


def _bits(x: np.ndarray) -> np.ndarray:
    """The raw bits of a float32 or 16-bit float array, as unsigned integers."""
    x = np.asarray(x)
    return x.view(np.uint32 if x.dtype.itemsize == 4 else np.uint16)


def share_differs(out: np.ndarray, ref: np.ndarray) -> float:
    """Fraction of outputs whose bits differ between `out` and `ref` (NaN = NaN; 0 of 0 is 0)."""
    out, ref = np.asarray(out), np.asarray(ref)
    both_nan = np.isnan(out.astype(np.float32)) & np.isnan(ref.astype(np.float32))
    differs = (_bits(out) != _bits(ref)) & ~both_nan
    return float(differs.mean()) if differs.size else 0.0


def measure(run: Callable[[], np.ndarray], exact: Callable[[], np.ndarray], *,
            ideal: Callable[[], np.ndarray | None] | None = None,
            total: Callable[[], np.ndarray] | None = None) -> Measurement:
    """Simulates, computes the exact product, compares; then the ideal twin, if any.

    Args:
        run: the simulated GEMM (timed).
        exact: the exact (float64) product the output is measured against.
        ideal: the same GEMM with the ideal step; may return None (not available).
        total: the exact product of the float data before quantization: adds
            `total_max_rel_error` and `total_fro_rel_error`.

    Each part runs in its `fp8sim.engine.budget` stage ("simulated GEMM", "exact
    product", "statistics", "ideal GEMM"), so a progress bar can follow it.
    """
    with budget.stage("simulated GEMM"):
        t0 = time.perf_counter()
        out = run()
        seconds = time.perf_counter() - t0
    with budget.stage("exact product"):
        ex = exact()
    with budget.stage("statistics"):
        stats = compare(out, ex)
        if total is not None:
            t = total()
            stats["total_max_rel_error"] = compare(out, t)["max_rel_error"]
            stats["total_fro_rel_error"] = normwise_error(np.asarray(out, np.float32), t)
    if ideal is not None:
        with budget.stage("ideal GEMM"):
            ref = ideal()
        if ref is not None:
            stats["share_differs_from_ideal"] = share_differs(out, ref)
            stats["ideal_max_rel_error"] = compare(ref, ex)["max_rel_error"]
    return Measurement(out, stats, seconds)


def kernel_scaling(kern) -> str | None:
    """The name of a kernel's scaling epilogue ("tensor", "group", ...), or None."""
    scaling = getattr(kern, "scaling", None)
    if isinstance(scaling, (tuple, list)):
        scaling = scaling[0] if scaling else None
    return getattr(scaling, "name", scaling)


def defaults(promote: int | None, preset, kernel=None) -> tuple[int, Any]:
    """The promotion interval and MMA step a run uses when the user leaves them out (None):
    `fp8sim.gemm`'s (0, "hopper"), or the kernel's own."""
    if kernel is None:
        return (0 if promote is None else promote), ("hopper" if preset is None else preset)
    return (getattr(kernel, "promote", 0) if promote is None else promote,
            getattr(kernel, "step", "hopper") if preset is None else preset)


def out_dtype_name(out: np.ndarray) -> str:
    """'float32', 'bfloat16' or 'float16'."""
    return {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}.get(
        np.asarray(out).dtype, "bfloat16")


def format_name(x: np.ndarray) -> str:
    """The FP8 format an ml_dtypes float8 array carries ("e4m3")."""
    f = format_of_dtype(np.asarray(x).dtype)
    return f.name if f is not None else "e4m3"


def measure_kernel(a: np.ndarray, b: np.ndarray, *, kernel=None, promote: int | None = None,
                   preset=None, scale_a=None, scale_b=None, out_dtype: str | None = None,
                   floats: tuple[np.ndarray, np.ndarray] | None = None,
                   gpu: str | None = None, slices: int | None = None
                   ) -> tuple[GemmRow, Measurement, dict]:
    """Measures `fp8sim.gemm` (or `kernel`, a `fp8sim.KERNELS` entry) on float8 operands.

    Left-out settings (None) take `defaults`; a tensor-scaled kernel without scales gets
    1.0 and 1.0. The ideal twin is `fp8sim.gemm` with preset "ideal" (promoting as the
    run does where group scales need it), or the kernel with the ideal step. `floats`
    (the data before quantization) adds the `total_*` errors. `gpu` and `slices` go to the
    kernel (its split of K; `Kernel.__call__`), left out where None.

    Returns:
        (row without data description, measurement, the scales and keywords run).

    Raises:
        ValueError, TypeError: bad arguments, from fp8sim.gemm or the kernel; a scaled
            kernel without scales ("scale_a: ...").
    """
    eff_promote, step = defaults(promote, preset, kernel)
    if kernel is None and (gpu is not None or slices is not None):
        raise ValueError(f"{'slices' if slices is not None else 'gpu'}: applies to a named "
                         "kernel (its split of K); fp8sim.gemm runs no library's split")
    kw: dict = {}
    if scale_a is not None or scale_b is not None:
        kw |= {"scale_a": scale_a, "scale_b": scale_b}
    if out_dtype is not None:
        kw["out_dtype"] = out_dtype
    if kernel is None:
        run = functools.partial(gemm, a, b, promote=eff_promote, preset=step)
        if scale_a is not None and np.size(scale_a) == 1 and np.size(scale_b) == 1:
            kw["scaling"] = "tensor"
        grouped = scale_a is not None and np.ndim(scale_a) == 2 and np.shape(scale_a)[1] > 1
        twin = functools.partial(gemm, a, b, promote=eff_promote if grouped else 0,
                                 preset="ideal", **kw)
        name = None
    else:
        if promote is not None:
            kw["promote"] = promote
        if preset is not None:
            kw["preset"] = preset
        kw |= {key: v for key, v in (("gpu", gpu), ("slices", slices)) if v is not None}
        scaling = kernel_scaling(kernel)
        if scale_a is None and scaling == "tensor":
            kw |= {"scale_a": np.float32(1.0), "scale_b": np.float32(1.0)}
        elif scale_a is None and scaling is not None:
            raise ValueError(f"scale_a: kernel {kernel.name} applies {scaling!r} scales; pass "
                             "scale_a and scale_b")
        run = functools.partial(kernel, a, b)
        twin = functools.partial(kernel, a, b, preset="ideal",
                                 **{key: v for key, v in kw.items() if key != "preset"})
        name = getattr(kernel, "name", str(kernel))

    def ideal():
        try:
            return twin()
        except (TypeError, ValueError):  # a kernel that takes no other step
            return None

    m, k = np.shape(a)
    n = np.shape(b)[1]
    res = measure(functools.partial(run, **kw),
                  lambda: scaled_exact(a, b, kw.get("scale_a"), kw.get("scale_b"),
                                       promote=eff_promote or None,
                                       scaling=kw.get("scaling", getattr(kernel, "scaling",
                                                                          None))),
                  ideal=ideal,
                  total=None if floats is None else lambda: exact_product(*floats))
    row = GemmRow(m, n, k, eff_promote, format_name(a), format_name(b),
                  step if isinstance(step, str) else step.name, kernel=name,
                  out_dtype=out_dtype_name(res.out), stats=res.stats, seconds=res.seconds)
    return row, res, kw


def measure_recipe(x: np.ndarray, w: np.ndarray, recipe: str, *, promote: int | None = None,
                   preset=None, a_format: str | None = None, b_format: str | None = None
                   ) -> tuple[GemmRow, np.ndarray]:
    """Quantizes float data by a training recipe and measures `fp8_matmul` and its ideal twin.

    Errors are against the exact product of the float data (total), split into
    quantization and accumulation (see `fp8sim.analysis.matmul.fp8_matmul`). Left-out
    settings (None) are the recipe's.

    Returns:
        (row without data description, simulated output).

    Raises:
        ValueError: unknown recipe ("recipe: ..."), bad settings.
    """
    from fp8sim.analysis.matmul import fp8_matmul
    from fp8sim.recipes.pipeline import RECIPES

    if recipe not in RECIPES:
        raise ValueError(f"recipe: unknown recipe {recipe!r}; expected one of "
                         f"{', '.join(RECIPES)}")
    changes = {key: v for key, v in (("promote", promote), ("preset", preset),
                                      ("x_format", a_format), ("w_format", b_format))
               if v is not None}
    with budget.stage("simulated GEMM"):
        res = fp8_matmul(x, w, recipe, **changes)
    with budget.stage("ideal GEMM"):
        ideal = fp8_matmul(x, w, recipe, **(changes | {"preset": "ideal"}))
    r = res.recipe
    m, k = np.shape(x)
    stats = {**res.total,
             "quantization_max_rel_error": res.quantization["max_rel_error"],
             "accumulation_max_rel_error": res.accumulation["max_rel_error"],
             "share_differs_from_ideal": share_differs(res.out, ideal.out),
             "ideal_max_rel_error": ideal.total["max_rel_error"]}
    row = GemmRow(m, np.shape(w)[1], k, r.promote, r.x_format, r.w_format,
                  r.preset if isinstance(r.preset, str) else r.preset.name, recipe=recipe,
                  out_dtype=r.out_dtype, stats=stats, seconds=res.seconds)
    return row, res.out
