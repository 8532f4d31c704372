"""The casts under their former path: `fp8sim.casts` holds them (kept so old imports work)."""

from __future__ import annotations

from fp8sim.casts import (
    AMAX_FLOOR,
    CONVENTIONS,
    SCALE_FORMATS,
    BlockCast,
    CastConvention,
    cast_scaled,
    delayed_scale,
    dequantize,
    quantize,
    quantize_mx,
    retile,
    torchao_float8_cast,
)

__all__ = [
    "quantize", "dequantize", "retile", "quantize_mx", "delayed_scale", "cast_scaled",
    "AMAX_FLOOR", "SCALE_FORMATS", "CastConvention", "CONVENTIONS", "torchao_float8_cast",
    "BlockCast",
]
