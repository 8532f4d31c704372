"""Random GEMM cases and their error statistics: the one recipe the CLI and experiments share.

Two functions, so a study and `fp8sim gemm` measure the same thing the same way:

    >>> a, b = random_case(256, 256, 4096, dist="positive", seed=0)
    >>> stats = gemm_stats(a, b, promote=128)
    >>> stats["max_rel_error"], stats["share_differs_from_ideal"]

Data distributions (`DISTS`): "normal" N(0, 1), "positive" |N(0, 1)|, "uniform"
U(-1, 1), each drawn in float32 and encoded round-to-nearest-even at unit scale (as the
H100 captures' "normal"/"positive" data) or, with `scale="tensor"`, after one per-tensor
scale that maps the tensor's amax onto the format's largest finite value; "codes": every
finite code equally likely.
"""

from __future__ import annotations

import functools

import numpy as np

from fp8sim.analysis.measure import measure
from fp8sim.analysis.stats import exact_product, normwise_error
from fp8sim.engine import budget
from fp8sim.engine.gemm import check_shapes, gemm
from fp8sim.engine.mma import preset as _preset
from fp8sim.formats.convert import decode, encode
from fp8sim.formats.info import FormatInfo, decode_table, format_info

__all__ = ["DISTS", "SCALES", "random_floats", "random_codes", "random_case", "gemm_stats",
           "fro_rel_error", "case_bytes", "stats_bytes", "request_bytes", "stage_weights"]

DISTS: tuple[str, ...] = ("normal", "positive", "uniform", "codes")
"""Names of the data distributions `random_codes` draws from."""

SCALES: tuple[str, ...] = ("unit", "tensor")
"""How float data is brought into the FP8 range before encoding (see `random_codes`)."""


def random_floats(shape: tuple[int, int], dist: str = "normal",
                  rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """Draws float32 data (`shape`) from "normal" N(0, 1), "positive" |N(0, 1)| or "uniform"
    U(-1, 1): the one draw behind `random_codes` and the CLI's recipe runs.

    Raises:
        ValueError: unknown `dist` (or "codes", which has no float draw).
    """
    rng = np.random.default_rng(rng)
    if dist == "normal":
        return rng.standard_normal(shape, dtype=np.float32)
    if dist == "positive":
        return np.abs(rng.standard_normal(shape, dtype=np.float32))
    if dist == "uniform":
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    raise ValueError(f"dist: expected one of {', '.join(DISTS[:3])}, got {dist!r}")


def random_codes(shape: tuple[int, int], fmt: str | FormatInfo = "e4m3",
                 dist: str = "normal", rng: np.random.Generator | int | None = 0, *,
                 scale: str = "unit") -> np.ndarray:
    """Draws FP8 codes (uint8, `shape`) from one of `DISTS`, for random GEMM studies.

    Args:
        shape: output shape.
        fmt: element format ("e4m3", "e5m2").
        dist: "normal", "positive", "uniform" (float data, encoded round-to-nearest,
            saturating) or "codes" (uniform over the finite codes).
        rng: numpy Generator or seed.
        scale: float data only: "unit" encodes it as drawn; "tensor" first multiplies
            it by float32(fmt.max / amax) (in float32), so the tensor's largest value
            lands on the format's largest finite value, as per-tensor scaling does.

    Raises:
        ValueError: unknown `dist`, `fmt` or `scale`.
    """
    f = format_info(fmt)
    if scale not in SCALES:
        raise ValueError(f"scale: expected one of {', '.join(SCALES)}, got {scale!r}")
    rng = np.random.default_rng(rng)
    if dist == "codes":
        finite = np.flatnonzero(np.isfinite(decode_table(f))).astype(np.uint8)
        return finite[rng.integers(0, finite.size, size=shape)]
    if dist not in DISTS:
        raise ValueError(f"dist: expected one of {', '.join(DISTS)}, got {dist!r}")
    x = random_floats(shape, dist, rng)
    if scale == "tensor" and x.size:
        amax = np.float32(np.max(np.abs(x)))
        if amax > 0:
            x = x * (np.float32(f.max) / amax)
    return encode(x, f, saturate=True)


def random_case(m: int, n: int, k: int, *, dist: str = "normal", a_format: str = "e4m3",
                b_format: str = "e4m3", seed: int = 0,
                scale: str = "unit") -> tuple[np.ndarray, np.ndarray]:
    """A random (M, K) x (K, N) pair of FP8 code matrices, reproducible from `seed`.

    A is drawn before B from one Generator seeded with `seed`; `scale` as in
    `random_codes` (each matrix gets its own per-tensor scale).

    Raises:
        ValueError: non-positive sizes, negative seed, unknown `dist`, `scale` or formats.
    """
    for name, v in (("m", m), ("n", n), ("k", k)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    budget.check_memory(case_bytes(m, n, k), f"random_case: M={m} N={n} K={k}",
                        hint="choose smaller m, n or k")
    rng = np.random.default_rng(seed)
    with budget.stage("random data"):
        a = random_codes((m, k), a_format, dist, rng, scale=scale)
        b = random_codes((k, n), b_format, dist, rng, scale=scale)
    return a, b


def case_bytes(m: int, n: int, k: int) -> int:
    """Peak bytes `random_case` allocates: both code matrices and the float32 draws of the
    larger (13 bytes an element covers the draw, its magnitude, a scaled copy and the codes;
    tracemalloc measures 9)."""
    return m * k + k * n + 13 * max(m * k, k * n)


def stats_bytes(m: int, n: int, k: int) -> int:
    """Peak bytes `gemm_stats` allocates besides its inputs: the decoded inputs in float32
    and float64 (12 bytes an input element), the outputs and the float64 exact product and
    error arrays (tracemalloc measures 72 bytes an output; 80 allowed)."""
    return 12 * (m * k + k * n) + 80 * m * n


def request_bytes(m: int, n: int, k: int) -> int:
    """Peak bytes of `random_case` followed by `gemm_stats` (what `fp8sim gemm` runs)."""
    codes = m * k + k * n
    return max(case_bytes(m, n, k), codes + stats_bytes(m, n, k))


def stage_weights(m: int, n: int, k: int, preset: str = "hopper", *,
                  ideal: bool = True) -> dict[str, float]:
    """Estimated seconds of each stage of `random_case` + `gemm_stats`, for a progress bar."""
    import numba

    threads = numba.get_num_threads()
    step = _preset(preset)
    kind = "fused" if step.fused else "exact" if step.exact else "sequential"
    weights = {"random data": (m * k + k * n) / 5e7,
               "simulated GEMM": budget.engine_seconds(m, n, k, kind, threads),
               "exact product": m * n * k / 1e10,  # float64 BLAS
               "statistics": m * n / 2e7}
    if ideal:
        weights["ideal GEMM"] = budget.engine_seconds(m, n, k, "sequential", threads)
    return weights


fro_rel_error = normwise_error
"""The normwise relative error (an alias of `fp8sim.analysis.stats.normwise_error`)."""


def gemm_stats(a: np.ndarray, b: np.ndarray, *, a_format: str | None = None,
               b_format: str | None = None, promote: int = 0, preset: str = "hopper",
               ideal: bool = True, keep: dict | None = None,
               engine: str = "cpu") -> dict[str, float]:
    """Simulates `gemm(a, b)` and measures it against the exact product of the FP8 inputs
    (`fp8sim.analysis.measure.measure`, the one measurement the CLI shares).

    Returns `analysis.error_stats` (max/mean/median_rel_error, max_abs_error,
    mean/max_ulp_error, ...) plus `fro_rel_error` (normwise ||out - exact||_F /
    ||exact||_F over finite outputs: unlike the elementwise relative errors it is not
    driven by outputs that cancel to near zero on signed data), `seconds` (wall time
    of the simulated GEMM) and, when
    `ideal`, `share_differs_from_ideal` (fraction of outputs whose float32 bits differ,
    -0 from +0 included, NaN equal to NaN, from sequential FP32 accumulation, preset
    "ideal") and `ideal_max_rel_error`. A `keep` dict receives the simulated output
    under "out" (the CLI's --out writes it).
    `engine` ("cpu" or "gpu", see `fp8sim.gemm`) runs the simulated GEMMs: the same bits.

    Raises:
        ValueError, TypeError: invalid arguments, from `fp8sim.gemm`.
    """
    for arg, x in (("a", a), ("b", b)):
        if x is None:
            raise TypeError(f"{arg}: expected an array of FP8 codes, got {type(x).__name__}")
    if keep is not None and not isinstance(keep, dict):
        raise TypeError(f"keep: expected a dict (it receives the output), got "
                        f"{type(keep).__name__}")
    m, k, n = check_shapes(np.shape(a), np.shape(b))
    budget.check_memory(stats_bytes(m, n, k), f"gemm_stats: M={m} N={n} K={k}",
                        hint="choose smaller matrices")
    run = functools.partial(gemm, a, b, a_format=a_format, b_format=b_format,
                            promote=promote, preset=preset, engine=engine)
    twin = functools.partial(gemm, a, b, a_format=a_format, b_format=b_format, promote=0,
                             preset="ideal", engine=engine)
    res = measure(run, lambda: exact_product(decode(a, a_format), decode(b, b_format)),
                  ideal=twin if ideal else None)
    if keep is not None:
        keep["out"] = res.out
    return res.stats | {"seconds": res.seconds}
