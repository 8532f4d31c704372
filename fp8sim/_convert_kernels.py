"""Numba kernels for float32/float64 -> 8-bit code conversion (private).

The arithmetic is integer-only on the IEEE bit pattern of the input, so it is
exact for both source widths. `fp8sim.reference.encode_scalar` is the slow twin
the tests compare it with.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .formats import FormatInfo
from .rounding import RoundMode

_RNE = int(RoundMode.TiesToEven)
_RTZ = int(RoundMode.TowardZero)
_UP = int(RoundMode.TowardPositive)
_DOWN = int(RoundMode.TowardNegative)
_SR = int(RoundMode.Stochastic)


@nb.njit(cache=True, inline="always")
def _encode_one(b, src_m, src_bias, src_emask, m, emin, emax, max_code, nan_code, inf_code,
                signed_zero, mode, saturate, rnd):
    """Encodes one IEEE bit pattern `b` (int64) as an 8-bit code (see encode_bits)."""
    sign = (b >> (src_m + (11 if src_emask == 0x7FF else 8))) & 1
    ef = (b >> src_m) & src_emask
    mant = b & ((np.int64(1) << src_m) - 1)
    sbit = sign << 7
    zbit = sbit if signed_zero else 0  # sign of zeros and NaNs; FNUZ formats have neither
    if ef == src_emask:
        if mant != 0:  # NaN
            return nan_code if saturate else nan_code | zbit
        if saturate:
            return max_code | sbit
        return (inf_code | sbit) if inf_code >= 0 else (nan_code | zbit)
    if ef == 0:
        if mant == 0:
            return zbit
        M = mant
        e_x = -src_bias - 64  # far below any 8-bit format's range
    else:
        M = mant | (np.int64(1) << src_m)
        e_x = ef - src_bias
    if e_x > emax:
        code = max_code + 1
        up = True
    else:
        eq = e_x if e_x > emin else emin
        # bits of M below the target's last place
        d = src_m - m + (eq - e_x) if ef != 0 else 63
        dc = d if d < 63 else 63
        if dc <= 0:
            r0 = M << (-dc)
            rem = np.int64(0)
        else:
            r0 = M >> dc
            rem = M & ((np.int64(1) << dc) - 1)
        up = False
        if rem != 0:
            if mode == _RNE:
                half = np.int64(1) << (dc - 1)
                up = rem > half or (rem == half and (r0 & 1) == 1)
            elif mode == _UP:
                up = sign == 0
            elif mode == _DOWN:
                up = sign == 1
            elif mode == _SR:
                if d <= 32:
                    thr = rem << (32 - d)
                elif d - 32 < 63:
                    thr = rem >> (d - 32)
                else:
                    thr = np.int64(0)
                up = np.int64(rnd) < thr
        code = ((eq - emin) << m) + r0 + (1 if up else 0)
        if code == 0:
            return zbit
    if code > max_code:
        away = mode == _RNE or mode == _SR or (mode == _UP and sign == 0) or (
            mode == _DOWN and sign == 1)
        if saturate or not away:
            return max_code | sbit
        return (inf_code | sbit) if inf_code >= 0 else (nan_code | zbit)
    return code | sbit


@nb.njit(cache=True, parallel=True)
def encode_bits(bits, out, src_m, src_bias, src_emask, m, emin, emax, max_code, nan_code,
                inf_code, signed_zero, mode, saturate, rnd):
    """Writes the 8-bit code of every IEEE pattern in `bits` (int32/int64 view) to `out`."""
    n = bits.shape[0]
    mask = np.int64(0xFFFFFFFF) if src_emask == 0xFF else np.int64(-1)
    chunk = 1 << 16
    for c in nb.prange((n + chunk - 1) // chunk):
        lo = c * chunk
        hi = min(n, lo + chunk)
        for i in range(lo, hi):
            r = rnd[i] if rnd.shape[0] > 0 else np.uint32(0)
            out[i] = _encode_one(np.int64(bits[i]) & mask, src_m, src_bias, src_emask, m, emin,
                                 emax, max_code, nan_code, inf_code, signed_zero, mode, saturate, r)


def format_params(fmt: FormatInfo) -> tuple[int, int, int, int, int, int, bool]:
    """(m, emin, emax, max_code, nan_code, inf_code or -1, signed_zero) for the kernel."""
    inf = fmt.inf_code if fmt.inf_code is not None else -1
    return (fmt.mantissa_bits, fmt.emin, fmt.emax, fmt.max_code, fmt.nan_code, inf,
            fmt.has_negative_zero)


SOURCE_PARAMS = {np.dtype(np.float32): (23, 127, 0xFF), np.dtype(np.float64): (52, 1023, 0x7FF)}
