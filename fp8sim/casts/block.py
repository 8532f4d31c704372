"""Block casts by a cast convention: per-block amax to a scale, the block scaled and encoded.

`cast_blocks` is the arithmetic of `fp8sim.quantize` for one `CastConvention`
(`fp8sim.casts.conventions`), on an array already checked and a block already fitted;
the power-of-two roundings of both conventions are computed exactly from the bits.
"""

from __future__ import annotations

import numpy as np

from fp8sim.casts.checks import block_amax, unblock
from fp8sim.casts.checks import blocks as to_blocks
from fp8sim.casts.conventions import CastConvention
from fp8sim.formats.convert import encode
from fp8sim.formats.info import FormatInfo

__all__ = ["cast_blocks"]


def cast_blocks(x32: np.ndarray, info: FormatInfo, bm: int, bk: int, conv: CastConvention,
                pow2: bool) -> tuple[np.ndarray, np.ndarray]:
    """(codes, float32 scales (Mb, Kb)) of a checked float32 (M, K) array, by a convention."""
    blk = to_blocks(x32, bm, bk)  # (Mb, bm, Kb, bk), zero-padded
    scales, scaled = _scale_blocks(blk, np.float32(info.max), conv, bool(pow2))
    return encode(unblock(scaled, x32.shape), info), scales


def _scale_blocks(blocks: np.ndarray, fmt_max: np.float32, conv: CastConvention,
                  pow2: bool) -> tuple[np.ndarray, np.ndarray]:
    """(scales (Mb, Kb), scaled float32 blocks) of zero-padded blocks by a convention."""
    one = np.float32(1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        amax = block_amax(blocks)
        if conv.multiplier == "float32-reciprocal":  # NaN stays NaN, as torch's clamp
            amax = np.maximum(amax, np.float32(conv.amax_floor))
            mult = fmt_max * (one / amax)
        else:
            amax = np.maximum(amax.astype(np.float64), conv.amax_floor)
            mult = (np.float64(fmt_max) / amax).astype(np.float32)
        if pow2 and conv.pow2 == "multiplier-down":
            mult = pow2_floor_log2f(mult)
        if conv.scale == "float32-reciprocal":
            scales = amax.astype(np.float32) * (one / fmt_max)
        else:
            scales = one / mult
        if pow2 and conv.pow2 == "scale-up":
            scales = pow2_ceil(scales)
            return scales, blocks / scales[:, None, :, None]
        # torchao clamps x * m to +-fmt_max before its cast: a no-op, since m rounds
        # fmt_max / amax by half an ulp at most and encode rounds fmt_max * (1 + 2**-24)
        # to fmt_max; x * m is never Inf (an Inf in x makes m zero) and NaN passes a clamp.
        scaled = blocks * mult[:, None, :, None]
    return scales, scaled


def pow2_ceil(s: np.ndarray) -> np.ndarray:
    """2**ceil(log2(s)) for positive float32 s, exactly, from the bits (no float log2).

    A normal float32 is 2**(field - 127) * 1.mantissa, so the smallest power of two
    at or above it is 2**(field - 127), plus one in the exponent if any mantissa bit
    is set. NaN and Inf pass through. (`quantize` clamps amax at 1e-4, so s is normal.)
    """
    bits = s.view(np.uint32)
    exp = (bits >> np.uint32(23)).astype(np.int64) & 0xFF
    exp += (bits & np.uint32(0x7FFFFF)) != 0
    out = np.ldexp(np.float32(1.0), (exp - 127).astype(np.int32)).astype(np.float32)
    return np.where(np.isfinite(s), out, s)


def pow2_floor_log2f(m: np.ndarray) -> np.ndarray:
    """2**floor(fl32(log2(m))) for float32 m: torch's exp2(floor(log2(m))) on CUDA.

    log2 is rounded to float32 before the floor, as CUDA's log2f returns it: a multiplier
    a few ulps below 2**k has log2 within half a float32 ulp of k and rounds up to 2**k.
    (Exactly floor(log2) elsewhere. float64 log2 is far more accurate than float32's ulp,
    so its float32 rounding is the correctly rounded log2f.) NaN stays NaN, 0 gives 0.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e = np.floor(np.log2(m.astype(np.float64)).astype(np.float32))
        return np.exp2(e.astype(np.float64)).astype(np.float32)

