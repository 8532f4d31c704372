"""Naive conversion references for the tests, written apart from the numba kernel.

`encode_naive` rounds in float64 arithmetic (|x| / quantum, then floor / ceil /
rint) and finds the code by looking the rounded value up in the decode table; the
kernel instead shifts integer bit patterns. `encode_e8m0_naive` follows the
definition of a power-of-two scale one value at a time with `math.frexp`.
"""

from __future__ import annotations

import math
import re

import numpy as np

from fp8sim.formats.info import E8M0, decode_table, format_info
from fp8sim.formats.rounding import RoundMode, round_mode


def round_magnitude(ax: np.ndarray, fmt, mode: RoundMode, negative: np.ndarray | None = None,
                    random_bits: np.ndarray | None = None) -> np.ndarray:
    """Rounds finite magnitudes `ax` (float64) onto the format's grid, unbounded above.

    `negative` flips the directed modes; `random_bits` (uint32) drives Stochastic.
    """
    info = format_info(fmt)
    _, e = np.frexp(ax)  # ax = f * 2**e with f in [0.5, 1), so floor(log2 ax) = e - 1
    q_exp = np.maximum(e - 1, info.emin) - info.mantissa_bits  # quantum 2**q_exp
    n = np.ldexp(ax, -q_exp)  # |x| / quantum, exact: a power-of-two scaling
    lo = np.floor(n)
    if mode == RoundMode.TiesToEven:
        r = np.rint(n)  # numpy rounds half to even
    elif mode == RoundMode.TowardZero:
        r = lo
    elif mode in (RoundMode.TowardPositive, RoundMode.TowardNegative):
        neg = np.zeros(ax.shape, bool) if negative is None else negative
        ceil = np.ceil(n)
        r = np.where(neg == (mode == RoundMode.TowardNegative), ceil, lo)
    else:
        frac = n - lo  # exact
        threshold = np.floor(np.ldexp(frac, 32))  # first 32 bits of the fraction
        r = lo + (random_bits.astype(np.float64) < threshold)
    with np.errstate(over="ignore"):  # rounding up from near DBL_MAX: inf, an overflow
        return np.ldexp(r, q_exp)


def encode_naive(x: np.ndarray, fmt, *, rounding="nearest", saturate: bool = False,
                 random_bits: np.ndarray | None = None) -> np.ndarray:
    """float32/float64 values to 8-bit codes, computed in float64 arithmetic (see module)."""
    info = format_info(fmt)
    mode = round_mode(rounding)
    xf = np.asarray(x).astype(np.float64)
    neg = np.signbit(xf)
    ax = np.abs(xf)
    finite = np.isfinite(ax)
    value = round_magnitude(np.where(finite, ax, 0.0), info, mode, neg, random_bits)
    table = decode_table(info)[: info.max_code + 1].astype(np.float64)  # ascending
    overflow = value > table[-1]
    code = np.searchsorted(table, np.where(overflow, 0.0, value)).astype(np.int64)
    assert np.array_equal(table[code], np.where(overflow, 0.0, value)), "not on the grid"
    sbit = np.where(neg, 0x80, 0)
    zbit = sbit if info.has_negative_zero else 0
    nan = info.nan_code | (0 if saturate else zbit)
    inf = info.inf_code | sbit if info.has_inf else info.nan_code | zbit
    # overflow: Inf/NaN when the mode rounds away from zero (IEEE 754), else the largest finite
    if mode in (RoundMode.TiesToEven, RoundMode.Stochastic):
        away = np.ones(neg.shape, bool)
    elif mode == RoundMode.TowardZero:
        away = np.zeros(neg.shape, bool)
    else:
        away = neg == (mode == RoundMode.TowardNegative)
    overflow_code = np.where(away & (not saturate), inf, info.max_code | sbit)
    out = np.where(code == 0, zbit, code | sbit)
    out = np.where(overflow, overflow_code, out)
    out = np.where(np.isinf(xf), info.max_code | sbit if saturate else inf, out)
    out = np.where(np.isnan(xf), nan, out)
    return out.astype(np.uint8)


def encode_e8m0_naive(x: float, rounding="up", saturate: bool = False) -> int:
    """One value to its E8M0 code, from math.frexp (see fp8sim.formats.convert.encode_e8m0)."""
    mode = round_mode(rounding)
    if math.isnan(x) or x < 0 or x == -math.inf:
        return E8M0.nan_code
    if x == math.inf:
        return E8M0.max_code if saturate else E8M0.nan_code
    if x == 0:
        return 0
    f, e = math.frexp(x)  # x = f * 2**e, f in [0.5, 1): 2**(e-1) <= x < 2**e
    k = e - 1
    if f != 0.5:
        if mode == RoundMode.TowardPositive:
            k += 1
        elif mode == RoundMode.TiesToEven and (f > 0.75 or f == 0.75 and (k + E8M0.bias) % 2):
            k += 1
    code = k + E8M0.bias
    if code < 0:
        return 0
    if code > E8M0.max_code:
        return E8M0.max_code if saturate else E8M0.nan_code
    return code


# ---------------------------------------------------------------------------- by intervals
# For the exhaustive float32 check. Positive float32 bit patterns are ordered like their
# values, so every (deterministic) rounding maps a run of consecutive patterns to one
# code: the reference is the list of runs, built from the decoded grid values, not from
# any bit manipulation of the input.

OVF, INF, NAN = 256, 257, 258
"""Magnitude classes beyond the codes 0..max_code: overflow, Inf input, NaN input."""

_INF_BITS = 0x7F800000


def _f32_bits(values) -> np.ndarray:
    """float32 bit patterns of exactly representable values (as int64)."""
    return np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.int64)


def magnitude_runs(fmt, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Runs of positive float32 patterns by magnitude class: (first pattern, class) pairs.

    kind: "trunc" (largest grid value <= |x|; |x| above max stays max), "away"
    (smallest grid value >= |x|, else OVF) or "nearest" (ties to the even code; the
    tie above max goes to the even one of max_code and max_code + 1 = OVF).
    """
    info = format_info(fmt)
    grid = decode_table(info)[: info.max_code + 1].astype(np.float64)
    bits = _f32_bits(grid)
    codes = np.arange(info.max_code + 1)
    if kind == "trunc":
        starts, labels = bits, codes
    elif kind == "away":
        starts = np.concatenate([[0], bits + 1])  # just above g[c-1] up to g[c] -> c
        labels = np.concatenate([codes, [OVF]])
    elif kind == "nearest":
        top = grid[-1] + (grid[-1] - grid[-2]) / 2  # the tie between max and the next step
        mids = _f32_bits(np.concatenate([(grid[1:] + grid[:-1]) / 2, [top]]))
        upper = np.arange(1, info.max_code + 2)  # the code above each midpoint
        even = np.where(upper % 2 == 0, upper, upper - 1)
        starts = np.concatenate([[0], np.column_stack([mids, mids + 1]).ravel()])
        labels = np.concatenate([[0], np.column_stack([even, upper]).ravel()])
        labels[labels > info.max_code] = OVF
    else:
        raise ValueError(f"kind: unknown {kind!r}")
    starts = np.concatenate([starts, [_INF_BITS, _INF_BITS + 1, 2**31]])
    labels = np.concatenate([labels, [INF, NAN, NAN]])
    return starts, labels.astype(np.int16)


def expand_runs(runs: tuple[np.ndarray, np.ndarray], p0: int, p1: int,
                values: np.ndarray | None = None) -> np.ndarray:
    """The class (or `values[i]` of run i) of every positive pattern p0 <= p < p1."""
    starts, labels = runs
    edges = np.clip(np.append(starts, 2**31), p0, p1)
    return np.repeat(labels if values is None else values, np.diff(edges))


def classes_at(runs: tuple[np.ndarray, np.ndarray], patterns: np.ndarray) -> np.ndarray:
    """The class of arbitrary positive patterns (a binary search in the runs)."""
    starts, labels = runs
    return labels[np.searchsorted(starts, patterns, side="right") - 1]


def stochastic_tables(fmt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per magnitude class: its grid value, 2**32 / the gap above it, and the class one step
    up (OVF above max; Inf and NaN never step: their scale is 0)."""
    info = format_info(fmt)
    grid = decode_table(info)[: info.max_code + 1]
    gaps = np.append(np.diff(grid), grid[-1] - grid[-2])
    low = np.zeros(NAN + 1, np.float32)
    low[: grid.size] = grid
    scale = np.zeros(NAN + 1, np.float32)
    scale[: grid.size] = np.float32(2.0**32) / gaps  # powers of two: products stay exact
    step_up = np.arange(NAN + 1, dtype=np.int16)
    step_up[: grid.size] += 1
    step_up[info.max_code] = OVF
    return low, scale, step_up


def stochastic_up(magnitudes: np.ndarray, low: np.ndarray, scale: np.ndarray,
                  random_bits: np.ndarray) -> np.ndarray:
    """Whether stochastic rounding steps up from the truncated grid value `low` (float32,
    per element): the random word is below floor((|x| - low) / gap * 2**32).

    In float32 the difference is exact (|x| < 2 * low, or low = 0) and so is the product
    (a power of two), until it passes 2**32, where the step is certain anyway.
    """
    with np.errstate(invalid="ignore", over="ignore"):  # Inf * 0 in the Inf/NaN classes
        threshold = np.minimum((magnitudes - low) * scale, np.float32(2.0**32))
        return random_bits < threshold.astype(np.int64)  # truncation = floor here


def code_table(fmt, *, saturate: bool, negative: bool) -> np.ndarray:
    """uint8 code of each magnitude class (0..258) for one sign, from the contract's rules."""
    info = format_info(fmt)
    sign = 0x80 if negative else 0
    zsign = sign if info.has_negative_zero else 0
    lut = np.zeros(NAN + 1, dtype=np.uint8)
    lut[1 : info.max_code + 1] = np.arange(1, info.max_code + 1) | sign
    lut[0] = zsign
    inf = (info.inf_code | sign) if info.has_inf else (info.nan_code | zsign)
    lut[OVF] = lut[INF] = (info.max_code | sign) if saturate else inf
    lut[NAN] = info.nan_code if saturate else info.nan_code | zsign
    return lut


def ml_encode(x: np.ndarray, fmt) -> np.ndarray:
    """ml_dtypes' cast (round to nearest even, no saturation) as uint8 codes."""
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(fmt.ml_dtype).view(np.uint8)


def version_tuple(text: str) -> tuple[int, ...]:
    """'0.7.0rc1' -> (0, 7, 0): a library version, comparable."""
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])
