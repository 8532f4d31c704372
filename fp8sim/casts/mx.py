"""OCP Microscaling (MX v1.0) casts: blocks of elements sharing one E8M0 exponent.

For each block the shared exponent is ``X = floor(log2(amax)) - emax_elem`` (emax_elem =
8 for E4M3, 15 for E5M2), clamped below at -127 (an all-zero block gets -127, the
smallest E8M0 scale); the elements are ``x / 2**X`` rounded to nearest even and saturated
to +-fmt_max, as the spec (section 6.3) and its reference library
(microsoft/microxcaling, ``saturate_normals=True``) do. Because X comes from the *floor*
of log2(amax), the largest elements of a block can exceed fmt_max (448 < 512 for E4M3)
and are clamped: that clamping is part of MX's error. "up" is Transformer Engine's MXFP8
rule, ``X = ceil(log2(float32(amax / fmt_max)))``, which never clamps an element.
"""

from __future__ import annotations

import numpy as np

from fp8sim.casts.checks import block_amax, unblock
from fp8sim.casts.checks import blocks as to_blocks
from fp8sim.formats.convert import encode
from fp8sim.formats.info import E8M0, FormatInfo

__all__ = ["MX_ROUNDINGS", "cast_mx"]

MX_ROUNDINGS = ("floor", "up")
"""How the shared exponent is rounded: the OCP spec's floor, or Transformer Engine's up."""


def cast_mx(x32: np.ndarray, info: FormatInfo, bm: int, bk: int, rounding: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """(codes, float32 power-of-two scales) of a checked float32 (M, K) array in MX blocks."""
    blk = to_blocks(x32, bm, bk)
    amax = block_amax(blk)
    if rounding == "floor":
        frac, e = np.frexp(amax)  # amax = frac * 2**e, frac in [0.5, 1): floor(log2) = e - 1
        shared = e.astype(np.int64) - 1 - info.emax
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            frac, e = np.frexp(amax / np.float32(info.max))
        shared = e.astype(np.int64) - (frac == 0.5)  # ceil(log2): exact, subnormals included
        shared[frac == 0] = -E8M0.bias  # amax / fmt_max underflowed to 0: the smallest scale
    shared = np.clip(shared, -E8M0.bias, E8M0.bias)
    shared[amax == 0] = -E8M0.bias
    scales64 = np.ldexp(1.0, shared)
    scales64[~np.isfinite(amax)] = np.nan
    with np.errstate(invalid="ignore"):
        scaled = blk.astype(np.float64) / scales64[:, None, :, None]  # exact: a power of two
    codes = encode(unblock(scaled, x32.shape), info, saturate=True)
    return codes, scales64.astype(np.float32)  # 2**-127 is a float32 subnormal: exact
