"""The recipes' FP8 casts on any array module (CuPy on the GPU, numpy to check them on a CPU).

`quantize(x, ..., xp=cupy)` is `fp8sim.quantize` (``casts/cast.py``) for device arrays,
bit for bit: the same steps in the same float32 / float64 operations, written only with
operations numpy and CuPy share, so that running this very code with ``xp=numpy`` replays
the GPU's arithmetic on a CPU (`tests/test_gpu_casts.py` checks it against the CPU casts).
Every step is either IEEE arithmetic rounded to nearest (identical on both: CUDA float32
division and multiplication are correctly rounded without fast-math), an exact max, or
integer work on the bits:

* `encode`: float32 to E4M3/E5M2 codes, round to nearest even, with or without saturation,
  by integer rounding of the float32 bits (target normals) and one float32 addition of a
  power of two (target subnormals, exact binade trick); NaN/Inf as `fp8sim.encode`.
* torchao's power-of-two multiplier, 2**floor(fl32(log2 m)): from the bits and a table of
  how many float32 ulps below each power of two the CPU's log2 rounds up (built from the
  CPU function itself), so no transcendental function differs between CPU and GPU.

CuPy compiles its kernels with flush-to-zero; that only touches float32 subnormals, which
never change a code or a scale here (see `quantize`).
"""

from __future__ import annotations

import functools

import numpy as np

from fp8sim.casts.block import pow2_floor_log2f as cpu_pow2_floor_log2f
from fp8sim.casts.conventions import CONVENTIONS, CastConvention
from fp8sim.engine._gpu_arrays import bf16_bits
from fp8sim.formats.info import FormatInfo, format_info

__all__ = ["quantize", "encode", "pow2_floor_log2f", "pow2_ceil", "bf16_bits", "bf16_values"]

_U32 = np.uint32


def encode(x, fmt: str | FormatInfo, xp, *, saturate: bool = False):
    """uint8 codes of float32 `x` (any shape), as `fp8sim.encode(x, fmt, saturate=...)`."""
    info = format_info(fmt)
    if info.name not in ("e4m3", "e5m2"):
        raise ValueError(f"fmt: the array-module encode covers e4m3 and e5m2, got {info.name}")
    man = info.mantissa_bits
    x = xp.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(_U32)
    sign = ((bits >> _U32(24)) & _U32(0x80)).astype(np.uint8)
    mag_bits = bits & _U32(0x7FFFFFFF)
    a = mag_bits.view(np.float32)
    nan = a != a
    # target subnormals: a + C rounds a to a multiple of 2**(emin - man), ties to even
    c = np.float32(2.0 ** (info.emin - man + 23))
    small = xp.where(a < np.float32(2.0 ** info.emin), a, np.float32(0))  # NaN -> 0
    sub = ((small + c) - c) * np.float32(2.0 ** (man - info.emin))  # exact small integers
    sub_code = sub.astype(np.int32)  # 2**man is the smallest normal's code, as wanted
    # target normals: round the float32 mantissa to `man` bits, ties to even, on the bits
    drop = 23 - man
    r = mag_bits + _U32((1 << (drop - 1)) - 1) + ((mag_bits >> _U32(drop)) & _U32(1))
    norm_code = (r >> _U32(drop)).astype(np.int32) - np.int32((127 - info.bias) << man)
    code = xp.where(a < np.float32(2.0 ** info.emin), sub_code, norm_code)
    max_code = info.max_code
    over = code > max_code  # Inf too
    if saturate:
        code = xp.where(over, np.int32(max_code), code).astype(np.uint8) | sign
        return xp.where(nan, np.uint8(0x7F), code)
    big = 0x7F if info.name == "e4m3" else 0x7C  # NaN (E4M3 has no Inf) or Inf
    code = xp.where(over, np.int32(big), code)
    code = xp.where(nan, np.int32(0x7F), code)
    return code.astype(np.uint8) | sign


@functools.cache
def _round_up_ulps() -> np.ndarray:
    """D[q]: the float32 m = 2**(e+1) - d ulps (e = q - 149) with d <= D[q] have
    floor(fl32(log2 m)) = e + 1 by the CPU's `pow2_floor_log2f`; 277 binades."""
    table = np.zeros(277, np.int64)
    for q in range(277):
        e = q - 149
        ulp = 2.0 ** (max(e, -126) - 23)
        count = min(64, int(2.0 ** e / ulp))
        d = np.arange(1, count + 1, dtype=np.float64)
        m = (2.0 ** (e + 1) - d * ulp).astype(np.float32)
        with np.errstate(over="ignore"):
            got = cpu_pow2_floor_log2f(m)
        up = got == np.float32(2.0 ** (e + 1)) if e < 127 else np.isinf(got)
        n_up = int(np.argmin(up)) if not up.all() else count
        if up[n_up:].any():
            raise AssertionError(f"log2 rounding is not monotone below 2**{e + 1}")
        table[q] = n_up
    return table


def pow2_floor_log2f(m, xp):
    """2**floor(fl32(log2 m)) of float32 m, as the CPU cast's `pow2_floor_log2f`.

    m = 0 gives 0 (-0 too), NaN stays NaN, Inf stays Inf, m < 0 gives NaN; from the bits,
    with the table of how many ulps below a power of two log2 rounds up to it.
    """
    m = xp.ascontiguousarray(m, dtype=np.float32)
    bits = m.view(_U32)
    exp = ((bits >> _U32(23)) & _U32(0xFF)).astype(np.int64)
    mant = (bits & _U32(0x7FFFFF)).astype(np.int64)
    # the binade of a subnormal: its mantissa's leading bit, read from mant as a float32
    lead = ((mant.astype(np.float32).view(_U32) >> _U32(23)).astype(np.int64) - 127)
    normal = exp > 0
    q = xp.where(normal, exp + 22, lead)
    d = xp.where(normal, (1 << 23) - mant, (xp.int64(1) << (xp.clip(lead, 0, 22) + 1)) - mant)
    table = xp.asarray(_round_up_ulps())
    e = q - 149 + (d <= table[xp.clip(q, 0, 276)]).astype(np.int64)
    out_bits = xp.where(e >= -126, (xp.clip(e, -126, 128) + 127) << 23,
                        xp.int64(1) << xp.clip(e + 149, 0, 62))
    out = out_bits.astype(_U32).view(np.float32)
    finite_pos = (m > 0) & (m < np.float32(np.inf))
    out = xp.where(finite_pos, out, m)
    return xp.where(m < 0, np.float32(np.nan), out)  # log2 of a negative: NaN


def _fl32_in_float64(r, xp):
    """float64 r rounded to float32 precision, subnormals included, in float64 arithmetic
    (to nearest, ties to even): FTZ flushes a float32 subnormal, not a float64 one."""
    sub = xp.rint(r * 2.0**149) * 2.0**-149  # exact scalings; rint ties to even
    return xp.where(xp.abs(r) < 2.0**-126, sub, r.astype(np.float32).astype(np.float64))


def pow2_ceil(s, xp):
    """2**ceil(log2 s) for positive float32 s, exactly from the bits (DeepGEMM's UE8M0)."""
    s = xp.ascontiguousarray(s, dtype=np.float32)
    bits = s.view(_U32)
    exp = ((bits >> _U32(23)) & _U32(0xFF)).astype(np.int64)
    exp = exp + ((bits & _U32(0x7FFFFF)) != 0).astype(np.int64)
    out_bits = xp.where(exp >= 1, xp.clip(exp, 0, 255) << 23, xp.int64(1) << 22)
    out = out_bits.astype(_U32).view(np.float32)
    return xp.where(xp.isfinite(s), out, s)


def quantize(x, fmt: str | FormatInfo = "e4m3", *, block: tuple[int, int] = (1, 128),
             pow2_scale: bool = False, convention: str | CastConvention = "deepgemm", xp,
             arg: str = "x"):
    """(uint8 codes, float32 scales) of float32 x (M, K) on `xp`, as `fp8sim.quantize`.

    Non-finite values in x raise ValueError naming `arg`, as the CPU casts' default does.
    FTZ (CuPy) flushes float32 subnormals only: a subnormal x encodes to a signed zero
    either way, the amax is clamped at 1e-4 / 1e-12 above any subnormal, and multipliers
    and scales of bfloat16 data are normal numbers.
    """
    info = format_info(fmt)
    conv = CONVENTIONS[convention] if isinstance(convention, str) else convention
    x = xp.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{arg}: expected a 2-D (M, K) array, got shape {x.shape}")
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{arg}: contains NaN/Inf, which would poison the block amax")
    bm, bk = (int(v) for v in block)
    m, k = x.shape
    mb, kb = -(-m // bm), -(-k // bk)
    if (mb * bm, kb * bk) != (m, k):
        padded = xp.zeros((mb * bm, kb * bk), np.float32)
        padded[:m, :k] = x
    else:
        padded = x
    blocks = padded.reshape(mb, bm, kb, bk)
    fmt_max = np.float32(info.max)
    one = np.float32(1)
    amax = xp.abs(blocks).max(axis=(1, 3)) if blocks.size else \
        xp.zeros((mb, kb), np.float32)
    if conv.multiplier == "float32-reciprocal":
        amax = xp.maximum(amax, np.float32(conv.amax_floor))
        # fl32(fmt_max * fl32(1 / amax)) without float32 arithmetic: 1 / amax of a huge
        # amax is a float32 subnormal, which CuPy's FTZ would flush (codes of 0 for the
        # block); the product is exact in float64 and normal, so one cast rounds it.
        mult = (np.float64(fmt_max) * _fl32_in_float64(1.0 / amax.astype(np.float64), xp)
                ).astype(np.float32)
    else:
        amax = xp.maximum(amax.astype(np.float64), np.float64(conv.amax_floor))
        mult = (np.float64(fmt_max) / amax).astype(np.float32)
    if pow2_scale and conv.pow2 == "multiplier-down":
        mult = pow2_floor_log2f(mult, xp)
    if conv.scale == "float32-reciprocal":
        scales = amax.astype(np.float32) * (one / fmt_max)
    else:
        scales = one / mult
    if pow2_scale and conv.pow2 == "scale-up":
        scales = pow2_ceil(scales, xp)
        scaled = blocks / scales[:, None, :, None]
    else:
        scaled = blocks * mult[:, None, :, None]
    codes = encode(scaled.reshape(mb * bm, kb * bk)[:m, :k], info, xp)
    return codes, xp.ascontiguousarray(scales, dtype=np.float32)


def bf16_values(bits16, xp):
    """float32 values of uint16/int16 bfloat16 bits (exact)."""
    u = bits16.view(np.uint16).astype(_U32) << _U32(16)
    return u.view(np.float32)
