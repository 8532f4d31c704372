"""Casts: float tensors to FP8 codes and scales, as training stacks compute them, bit for bit.

The floor between formats/ (one value to one code) and engine/ (GEMMs of codes):

* `cast` - `BlockCast`, the one description of a block cast (element format, block,
  scale rule), and the public functions on it: `quantize`, `quantize_mx`,
  `torchao_float8_cast`, `dequantize`, `retile`;
* `conventions` - `CastConvention` / `CONVENTIONS`: how DeepGEMM and torchao turn an
  amax into a scale, as data;
* `block` - the arithmetic of a convention's cast; `mx` - OCP MX shared exponents;
* `delayed` - Transformer Engine's per-tensor delayed scaling (`delayed_scale`,
  `cast_scaled`);
* `checks` - argument checks and block geometry every cast shares.
"""

from __future__ import annotations

from fp8sim.casts.cast import (
    MX_RULES,
    BlockCast,
    dequantize,
    quantize,
    quantize_mx,
    retile,
    torchao_float8_cast,
)
from fp8sim.casts.conventions import AMAX_FLOOR, CONVENTIONS, SCALE_FORMATS, CastConvention
from fp8sim.casts.delayed import cast_scaled, delayed_scale

__all__ = [
    "BlockCast", "MX_RULES", "quantize", "dequantize", "retile", "quantize_mx", "delayed_scale",
    "cast_scaled", "AMAX_FLOOR", "SCALE_FORMATS", "CastConvention", "CONVENTIONS",
    "torchao_float8_cast",
]
