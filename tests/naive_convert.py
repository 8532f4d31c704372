"""Naive conversion references for the tests, written apart from the numba kernel.

`encode_naive` rounds in float64 arithmetic (|x| / quantum, then floor / ceil /
rint) and finds the code by looking the rounded value up in the decode table; the
kernel instead shifts integer bit patterns. `encode_e8m0_naive` follows the
definition of a power-of-two scale one value at a time with `math.frexp`.
"""

from __future__ import annotations

import math

import numpy as np

from fp8sim.formats import E8M0, decode_table, format_info
from fp8sim.rounding import RoundMode, round_mode


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
    """One value to its E8M0 code, from math.frexp (see fp8sim.convert.encode_e8m0)."""
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
