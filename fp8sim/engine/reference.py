"""Slow, obviously-correct references, in Python integers and Fractions.

Nothing here is fast and nothing here is clever: each function follows the
definition (`../shared/HOPPER_FP8.md`, `fp8sim.engine.mma.MMAStep`) one value at a time.
The tests hold every numba kernel to these bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

from fp8sim.engine.epilogue import GROUP, Epilogue
from fp8sim.engine.mma import MMAStep
from fp8sim.formats.info import FormatInfo, decode_table, format_info
from fp8sim.formats.rounding import RoundMode

__all__ = [
    "round_fraction",
    "to_float32",
    "encode_scalar",
    "mma_step",
    "fma_float32",
    "gemm",
    "epilogue_scale",
]

_F32_MANT, _F32_EMIN, _F32_EMAX = 23, -126, 127


def _exponent(v: Fraction, emin: int) -> int:
    """floor(log2|v|) for v != 0, but no less than emin (subnormals share emin)."""
    n, d = abs(v.numerator), v.denominator
    e = n.bit_length() - d.bit_length()
    if Fraction(n, d) < Fraction(2) ** e:
        e -= 1
    return max(e, emin)


def _round_int(n: Fraction, mode: RoundMode, negative: bool, rnd32: int = 0) -> int:
    """Rounds a non-negative Fraction to an integer by `mode` (sign given for directed modes)."""
    lo = math.floor(n)
    rem = n - lo
    if rem == 0:
        return lo
    if mode == RoundMode.TiesToEven:
        up = rem > Fraction(1, 2) or (rem == Fraction(1, 2) and lo % 2 == 1)
    elif mode == RoundMode.TowardZero:
        up = False
    elif mode == RoundMode.TowardPositive:
        up = not negative
    elif mode == RoundMode.TowardNegative:
        up = negative
    else:  # stochastic: up when the 32 random bits fall below the fraction's first 32 bits
        up = rnd32 < math.floor(rem * 2**32)
    return lo + int(up)


def round_fraction(v: Fraction, mant: int, emin: int, mode: RoundMode, rnd32: int = 0
                   ) -> tuple[bool, int, int]:
    """Rounds v to a binary float with `mant` fraction bits and minimum exponent emin.

    Returns (negative, integer significand, exponent of its last place), unbounded above.
    """
    negative = v < 0
    a = abs(v)
    if a == 0:
        return negative, 0, emin - mant
    e = _exponent(a, emin)
    q = e - mant
    return negative, _round_int(a / Fraction(2) ** q, mode, negative, rnd32), q


def to_float32(v: Fraction, mode: RoundMode = RoundMode.TiesToEven) -> np.float32:
    """Rounds an exact value to float32 (IEEE, with overflow to Inf or FLT_MAX by mode)."""
    neg, sig, q = round_fraction(v, _F32_MANT, _F32_EMIN, mode)
    value = Fraction(sig) * Fraction(2) ** q
    if value >= Fraction(2) ** (_F32_EMAX + 1):
        away = mode == RoundMode.TiesToEven or (mode == RoundMode.TowardPositive and not neg) \
            or (mode == RoundMode.TowardNegative and neg)
        out = np.float32(np.inf) if away else np.finfo(np.float32).max
        return -out if neg else out
    out = np.float32(math.ldexp(float(sig), q))
    return -out if neg else out


def encode_scalar(x: float, fmt: str | FormatInfo, *, saturate: bool = False,
                  rounding: RoundMode = RoundMode.TiesToEven, rnd32: int = 0) -> int:
    """One value to its 8-bit code, by comparing with the exact neighbours in the code table."""
    info = format_info(fmt)
    table = decode_table(info)
    negative = math.copysign(1.0, x) < 0
    sign = 0x80 if negative else 0
    zsign = sign if info.has_negative_zero else 0
    if math.isnan(x):
        return info.nan_code if saturate else info.nan_code | zsign
    if math.isinf(x):
        if saturate:
            return info.max_code | sign
        return (info.inf_code | sign) if info.has_inf else (info.nan_code | zsign)
    neg, sig, q = round_fraction(Fraction(x), info.mantissa_bits, info.emin, rounding, rnd32)
    value = Fraction(sig) * Fraction(2) ** q
    if value == 0:
        return zsign
    if value > Fraction(float(table[info.max_code])):
        away = rounding in (RoundMode.TiesToEven, RoundMode.Stochastic) or (
            rounding == RoundMode.TowardPositive and not neg) or (
            rounding == RoundMode.TowardNegative and neg)
        if saturate or not away:
            return info.max_code | sign
        return (info.inf_code | sign) if info.has_inf else (info.nan_code | zsign)
    matches = [c for c in range(info.max_code + 1) if Fraction(float(table[c])) == value]
    return matches[0] | sign


def _split(v: float, emin: int) -> tuple[Fraction, int]:
    """(exact value, exponent with the significand in [0, 2)) of a finite nonzero value."""
    f = Fraction(v)
    return f, _exponent(f, emin)


def mma_step(c: float, a: list[float], b: list[float], a_fmt: FormatInfo, b_fmt: FormatInfo,
             step: MMAStep) -> np.float32:
    """D = C + sum(a[k] * b[k]) as one fused MMA step (or plain float32 for sequential steps)."""
    c = np.float32(c)
    if step.sequential:
        acc = c
        for x, y in zip(a, b, strict=False):
            with np.errstate(invalid="ignore", over="ignore"):
                acc = _add_f32(acc, np.float32(x) * np.float32(y))
        return acc
    special = _special(float(c), a, b)
    if special is not None:
        return special
    terms = []
    for x, y in zip(a, b, strict=False):
        if x == 0 or y == 0:
            if step.zero_products_in_emax:
                ex = _exponent(Fraction(x), a_fmt.emin) if x != 0 else a_fmt.emin
                ey = _exponent(Fraction(y), b_fmt.emin) if y != 0 else b_fmt.emin
                terms.append((Fraction(0), ex + ey))
            continue
        (fx, ex), (fy, ey) = _split(x, a_fmt.emin), _split(y, b_fmt.emin)
        terms.append((fx * fy, ex + ey))
    if c != 0:
        terms.append(_split(float(c), _F32_EMIN))
    if not any(v != 0 for v, _ in terms):
        return np.float32(0.0)  # no nonzero term: +0, also for C = -0 (as the H100)
    if step.frac_bits is None:
        return to_float32(sum((v for v, _ in terms), Fraction(0)), step.result_rounding)
    emax = max(e for _, e in terms)
    q = Fraction(2) ** (emax - step.frac_bits)
    total = 0
    for v, _ in terms:
        n = _round_int(abs(v) / q, step.align_rounding, v < 0)
        total += -n if v < 0 else n
    if total == 0:
        return np.float32(0.0)
    # normalize and keep frac_bits fractional bits (at most float32's 23)
    keep = min(step.frac_bits, _F32_MANT) + 1
    mag = abs(total)
    drop = max(mag.bit_length() - keep, 0)
    kept = _round_int(Fraction(mag, 2**drop), step.result_rounding, total < 0) << drop
    value = Fraction(kept) * q
    # exactly representable unless the sum passed FLT_MAX: then Inf (assumed; the H100
    # captures have no such case yet)
    return to_float32(-value if total < 0 else value, RoundMode.TiesToEven)


def _special(c: float, a: list[float], b: list[float]) -> np.float32 | None:
    """The result of a step with NaN/Inf among its inputs, None if there is none."""
    nan = np.uint32(0x7FFFFFFF).view(np.float32)
    infs = []
    for x, y in zip(a, b, strict=False):
        if math.isnan(x) or math.isnan(y):
            return nan
        if math.isinf(x) or math.isinf(y):
            if x == 0 or y == 0:
                return nan
            infs.append(math.copysign(1.0, x) * math.copysign(1.0, y))
    if math.isnan(c):
        return nan
    if math.isinf(c):
        infs.append(math.copysign(1.0, c))
    if not infs:
        return None
    if len(set(infs)) > 1:
        return nan
    return np.float32(infs[0] * math.inf)


def _add_f32(x: np.float32, y: np.float32) -> np.float32:
    """IEEE float32 addition, round to nearest even, NaN made canonical (0x7FFFFFFF)."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.float32(x + y)
    return np.uint32(0x7FFFFFFF).view(np.float32) if np.isnan(s) else s


def fma_float32(x: np.float32, y: np.float32, z: np.float32) -> np.float32:
    """fl(x * y + z) with one rounding, from the exact value."""
    x, y, z = np.float32(x), np.float32(y), np.float32(z)
    if not (np.isfinite(x) and np.isfinite(y) and np.isfinite(z)):
        with np.errstate(invalid="ignore", over="ignore"):
            r = np.float32(np.float64(x) * np.float64(y) + np.float64(z))
        return np.uint32(0x7FFFFFFF).view(np.float32) if np.isnan(r) else r
    exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
    if exact == 0:
        prod_neg = (math.copysign(1.0, x) * math.copysign(1.0, y)) < 0
        both_neg = prod_neg and math.copysign(1.0, z) < 0
        return np.float32(-0.0) if both_neg else np.float32(0.0)
    return to_float32(exact)


def gemm(a_codes: np.ndarray, b_codes: np.ndarray, a_fmt: str | FormatInfo,
         b_fmt: str | FormatInfo, step: MMAStep, *, promote: int = 0,
         c: np.ndarray | None = None, group_scale: tuple[np.ndarray, np.ndarray] | None = None,
         epilogue: Epilogue | None = None, scale_a=None, scale_b=None,
         elements: Iterable[tuple[int, int]] | None = None) -> np.ndarray:
    """The whole GEMM one dot product at a time: MMA steps along K, promotion, scaling epilogue.

    `epilogue` (`fp8sim.engine.epilogue.Epilogue`) with `scale_a`, `scale_b` in its shapes
    scales each partial at its promotion or the accumulator at the end; `group_scale`
    (scale_a (M, G), scale_b (G, ceil(N/128))) is shorthand for the "group" epilogue.
    The "exact" step ignores promotion: it is one float64 sum. NaN comes out as 0x7FFFFFFF.
    `elements`: compute only these (i, j) outputs (the others stay 0), to test big shapes.
    """
    if group_scale is not None:
        epilogue, (scale_a, scale_b) = GROUP, group_scale
    af, bf = format_info(a_fmt), format_info(b_fmt)
    a = decode_table(af)[a_codes].astype(np.float64)
    b = decode_table(bf)[b_codes].astype(np.float64)
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.float32)
    todo = [(i, j) for i in range(m) for j in range(n)] if elements is None else elements
    for i, j in todo:
        if step.exact:
            acc = _exact_dot(c, a[i], b[:, j], i, j)
        else:
            acc = _promoted_dot(a[i], b[:, j], af, bf, step, promote,
                                np.float32(0.0) if c is None else np.float32(c[i, j]),
                                epilogue, scale_a, scale_b, i, j)
        if epilogue is not None and epilogue.when == "end":
            acc = _scaled(epilogue, acc, scale_a, scale_b, i, 0, j, None)
        out[i, j] = acc
    return _canonical_nan(out)


def _promoted_dot(x, y, af: FormatInfo, bf: FormatInfo, step: MMAStep, promote: int,
                  c: np.float32, epilogue: Epilogue | None, scale_a, scale_b, i: int, j: int
                  ) -> np.float32:
    """One output: MMA steps in chunks of `promote` from +0 (C in the first), each promoted."""
    k = len(x)
    chunk = promote if promote > 0 else k
    at_promotion = epilogue is not None and epilogue.when == "promotion"
    acc = np.float32(0.0)
    for g, start in enumerate(range(0, k, chunk)):
        partial = c if g == 0 else np.float32(0.0)
        for s in range(start, min(start + chunk, k), step.terms):
            stop = min(s + step.terms, start + chunk, k)
            partial = mma_step(partial, list(x[s:stop]), list(y[s:stop]), af, bf, step)
        if promote == 0:
            acc = partial
        elif at_promotion:
            acc = _scaled(epilogue, partial, scale_a, scale_b, i, g, j, acc)
        else:
            acc = _add_f32(acc, partial)
    return acc


def epilogue_scale(granularity: str, scale, i: int, g: int, j: int, block_n: int = 128
                   ) -> np.float32:
    """The scale that output (i, j) gets in K group g, by the granularity's definition."""
    if granularity == "none":
        return np.float32(1.0)
    if granularity == "tensor":
        return np.float32(np.asarray(scale).reshape(()))
    sc = np.asarray(scale, np.float32)
    if granularity == "row":
        return sc[i, 0]
    if granularity == "group":
        return sc[i, g]
    if granularity == "column":
        return sc[0, j]
    if granularity == "block":
        return sc[g, j // block_n]
    if granularity == "group-column":
        return sc[g, j]
    raise ValueError(f"granularity: unknown {granularity!r}")


def _mul_f32(x: np.float32, y: np.float32) -> np.float32:
    """IEEE float32 multiplication, round to nearest even, from the exact product."""
    x, y = np.float32(x), np.float32(y)
    if not (np.isfinite(x) and np.isfinite(y)):
        with np.errstate(invalid="ignore", over="ignore"):
            return np.float32(np.float64(x) * np.float64(y))
    exact = Fraction(float(x)) * Fraction(float(y))
    if exact == 0:
        negative = (math.copysign(1.0, x) < 0) != (math.copysign(1.0, y) < 0)
        return np.float32(-0.0) if negative else np.float32(0.0)
    return to_float32(exact)


def _scaled(ep: Epilogue, x: np.float32, scale_a, scale_b, i: int, g: int, j: int,
            acc: np.float32 | None) -> np.float32:
    """One epilogue step: x (a partial, or the accumulator at the end) scaled, added to acc."""
    sa = epilogue_scale(ep.scale_a, scale_a, i, g, j, ep.block_n)
    sb = epilogue_scale(ep.scale_b, scale_b, i, g, j, ep.block_n)
    if ep.order == "product":
        left, right = x, _mul_f32(sa, sb)
    elif ep.order == "a-first":
        left, right = _mul_f32(x, sa), sb
    else:
        left, right = _mul_f32(x, sb), sa
    if acc is None:
        return _mul_f32(left, right)
    if ep.fused:
        return fma_float32(left, right, acc)
    return _add_f32(acc, _mul_f32(left, right))


def _canonical_nan(out: np.ndarray) -> np.ndarray:
    """NaN results as 0x7FFFFFFF, as the GPU writes them."""
    out.view(np.uint32)[np.isnan(out)] = np.uint32(0x7FFFFFFF)
    return out


def _exact_dot(c, x, y, i, j) -> np.float32:
    """C plus the products in K order in float64 (Python floats), rounded once to float32."""
    total = 0.0 if c is None else float(c[i, j])
    for p, q in zip(x, y, strict=False):
        total += float(p) * float(q)
    r = np.float32(total)
    return np.uint32(0x7FFFFFFF).view(np.float32) if np.isnan(r) else r
