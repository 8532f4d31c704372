"""The GPU engine's fused step (`_gpu_gemm.cu`, gemm_tiled MODE_FUSED) emulated in Python.

Follows the kernel line by line for one output: float32 operations rounded to nearest
by numpy, the round-toward-zero fma and add (`__fmaf_rz`, `__fadd_rz`) computed exactly
with fractions and rounded toward zero here, bf16x2 pass 1 as float32 products of powers
of two (exact in both). CI has no GPU; this checks the kernel's arithmetic (the magic
number trick, the C and Inf/NaN cases) against the CPU engine there.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

F32 = np.float32
SIGN = 0x80000000


def _bits(x) -> int:
    return int(np.float32(x).view(np.uint32))


def _float(bits: int) -> np.float32:
    return np.uint32(bits & 0xFFFFFFFF).view(np.float32)


def round_toward_zero(v: Fraction, zero_sign: int = 0) -> np.float32:
    """The float32 nearest v toward zero (IEEE roundTowardZero), subnormals included."""
    if v == 0:
        return _float(zero_sign)
    sign = -1 if v < 0 else 1
    mag = abs(v)
    e = math.floor(math.log2(mag.numerator) - math.log2(mag.denominator))
    while Fraction(2) ** e > mag:  # fix the floating-point log estimate
        e -= 1
    while Fraction(2) ** (e + 1) <= mag:
        e += 1
    if e >= 128:
        return F32(sign * np.finfo(np.float32).max)
    ulp = Fraction(2) ** (max(e, -126) - 23)
    q = mag // ulp
    return F32(sign * float(q * ulp))


def fma_rz(a, b, c) -> np.float32:
    """__fmaf_rz(a, b, c) for finite operands; Inf/NaN follow float arithmetic."""
    a, b, c = F32(a), F32(b), F32(c)
    if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(c)):
        with np.errstate(invalid="ignore", over="ignore"):
            return F32(np.float64(a) * np.float64(b) + np.float64(c))
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    if exact == 0:  # exact zero sum: +0 unless both addends are -0 (toward zero mode)
        p_neg = (np.signbit(a) != np.signbit(b))
        both_neg = p_neg and np.signbit(c) and (a == 0 or b == 0) and c == 0
        return _float(SIGN if both_neg else 0)
    return round_toward_zero(exact)


def fadd_rz(a, c) -> np.float32:
    """__fadd_rz(a, c)."""
    return fma_rz(a, F32(1.0), c)


def fused_step(av, ag, bv, bg, c: np.float32, frac: int) -> np.float32:
    """One MMA step of one output as gemm_tiled computes it (av, bv values; ag, bg 2**e)."""
    inf = F32(np.inf)
    kept = min(frac, 23)
    mask = (0xFFFFFFFF << (23 - kept)) & 0xFFFFFFFF
    magic = F32(math.ldexp(1.5, 23 - frac))
    big = F32(math.ldexp(1.0, frac + 35))
    with np.errstate(invalid="ignore", over="ignore"):
        m = F32(0.0)
        for x, y in zip(ag, bg, strict=True):
            p = F32(F32(x) * F32(y))
            m = max(m, p)
        cb = _bits(c)
        cexp = _float(cb & 0x7F800000)
        e = max(cexp, m)
        fast = m != 0 and e < big
        mv = F32((e if fast else F32(1.0)) * magic)
        msc = _float(_bits(mv) | (cb & SIGN))
        s = F32(fadd_rz(c, msc) - msc)
        mb = _bits(mv) if fast else 0
        for x, y in zip(av, bv, strict=True):
            ms = _float(((_bits(x) & SIGN) ^ (_bits(y) & SIGN)) | mb)
            t = fma_rz(x, y, ms)
            s = F32(s + F32(t - ms))
        tf = _float(_bits(s) & mask)
        tc = F32(_float(cb & mask) + F32(0.0))
        t = tf if mb != 0 else tc
        c_finite = abs(c) < inf
        t = t if c_finite else c
        sp = F32(0.0)
        for x, y in zip(av, bv, strict=True):
            p = F32(F32(x) * F32(y))
            sp = F32(sp + (F32(0.0) if abs(p) < inf else p))
        t = t if sp == 0 else (sp if c_finite else F32(sp + c))
    return F32(t)


def gemm_fused(a_codes, b_codes, tav, tag, tbv, tbg, *, terms: int, frac: int, promote: int,
               c=None) -> np.ndarray:
    """The tiled kernel's FUSED output for small codes arrays (float32, no scales)."""
    m, k = a_codes.shape
    n = b_codes.shape[1]
    chunk = promote if promote > 0 else k
    out = np.empty((m, n), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for i in range(m):
            for j in range(n):
                part = F32(c[i, j]) if c is not None else F32(0.0)
                acc = F32(0.0)
                for c0 in range(0, k, chunk):
                    c1 = min(c0 + chunk, k)
                    for k0 in range(c0, c1, terms):
                        ks = range(k0, min(k0 + terms, c1))
                        av = [tav[a_codes[i, kk]] for kk in ks]
                        ag = [tag[a_codes[i, kk]] for kk in ks]
                        bv = [tbv[b_codes[kk, j]] for kk in ks]
                        bg = [tbg[b_codes[kk, j]] for kk in ks]
                        part = fused_step(av, ag, bv, bg, part, frac)
                    if promote > 0:
                        acc = F32(acc + part)
                        part = F32(0.0)
                out[i, j] = acc if promote > 0 else part
    return out
