"""Cast conventions: how a training stack turns a block's amax into a scale and codes, as data.

* "deepgemm": DeepGEMM's reference casts (``per_token_cast_to_fp8``,
  ``per_block_cast_to_fp8``) as torch runs them on CUDA, where a division by a scalar is
  a multiplication by its reciprocal: ``amax = max(|x|)`` clamped below at 1e-4,
  ``scale = fl32(amax * fl32(1 / fmt_max))``, ``codes = encode(fl32(x * m))`` with
  ``m = fl32(fmt_max * fl32(1 / amax))``. With ``pow2_scale`` the scale is rounded up to
  a power of two (UE8M0, DeepGEMM's ``ceil_to_ue8m0``) and ``codes = encode(x / scale)``.
* "torchao": torchao's casts, its blockwise Triton kernels (1x128, 128x1, 128x128) and
  the dynamic casts of ``Float8LinearConfig`` (per tensor, row, column): amax clamped
  below at 1e-12, ``m = fl32(fmt_max / amax)``, ``codes = encode(fl32(x * m))``, scale
  ``fl32(1 / m)``; with ``pow2_scale`` m is rounded *down* to a power of two first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fp8sim._lookup import lookup

__all__ = ["CastConvention", "CONVENTIONS", "AMAX_FLOOR", "SCALE_FORMATS", "convention"]

AMAX_FLOOR = np.float32(1e-4)
"""DeepGEMM's clamp of a block's amax (float32(1e-4)): all-zero blocks get this amax."""
SCALE_FORMATS = ("float32", "e8m0")
"""How scales are returned: float32 values, or uint8 E8M0 codes (powers of two only)."""


@dataclass(frozen=True, kw_only=True)
class CastConvention:
    """How one training stack turns a block's amax into a scale and codes, as data."""

    name: str
    """Convention name ("deepgemm", "torchao")."""
    amax_floor: float
    """amax is clamped below at this value (all-zero blocks get it)."""
    multiplier: str
    """How the multiplier m ~ fmt_max / amax applied to x is computed:
    "float32-reciprocal": fl32(fmt_max * fl32(1 / amax)), all in float32 (torch on CUDA
    divides a tensor by a scalar through its reciprocal); "division": fl32(fmt_max / amax),
    the exact quotient rounded once (torchao computes it in float64, whose reciprocal or
    quotient rounds to the same float32)."""
    scale: str
    """What is returned as the block's scale: "float32-reciprocal":
    fl32(amax * fl32(1 / fmt_max)) (DeepGEMM); "reciprocal-of-multiplier": fl32(1 / m),
    the scale torchao hands to the GEMM."""
    pow2: str
    """What `pow2_scale=True` does: "scale-up": the scale is rounded up to a power of two
    and codes = encode(x / scale) (DeepGEMM's UE8M0); "multiplier-down": m is rounded down
    to 2**floor(log2(m)) before x * m (torchao's round_scales_to_power_of_2; log2 is
    rounded to float32 first, as torch's log2 on CUDA returns it: that differs from the
    exact floor only for m within two float32 ulps below a power of two, which no
    bfloat16 amax produces)."""
    verified: bool = False
    """True where GPU captures back the convention bit for bit."""
    description: str = ""

    def __post_init__(self) -> None:
        """Rejects unknown choices, naming the field."""
        for field_name, choices in (("multiplier", ("float32-reciprocal", "division")),
                                    ("scale", ("float32-reciprocal", "reciprocal-of-multiplier")),
                                    ("pow2", ("scale-up", "multiplier-down"))):
            if getattr(self, field_name) not in choices:
                raise ValueError(f"{field_name}: expected one of {', '.join(choices)}, "
                                 f"got {getattr(self, field_name)!r}")
        if not (isinstance(self.amax_floor, (int, float)) and self.amax_floor >= 0):
            raise ValueError(f"amax_floor: expected a float >= 0, got {self.amax_floor!r}")


CONVENTIONS: dict[str, CastConvention] = {c.name: c for c in (
    CastConvention(
        name="deepgemm", amax_floor=1e-4, multiplier="float32-reciprocal",
        scale="float32-reciprocal", pow2="scale-up", verified=True,
        description="DeepGEMM's per_token_cast_to_fp8 / per_block_cast_to_fp8 on an H200 "
                    "(golden/deepgemm_public.npz): every code and scale."),
    CastConvention(
        name="torchao", amax_floor=1e-12, multiplier="division",
        scale="reciprocal-of-multiplier", pow2="multiplier-down", verified=True,
        description="torchao 0.18: the blockwise Triton casts of Float8BlockwiseLinear "
                    "(1x128, 128x1, 128x128) and Float8LinearConfig's dynamic tensorwise / "
                    "axiswise casts, on an H200 (golden/thirdparty_public_a.npz)."),
)}
"""Every cast convention `quantize` knows."""


def convention(value, *, arg: str = "convention") -> CastConvention:
    """Looks a cast convention up by name; a CastConvention passes through."""
    return lookup(value, CONVENTIONS, CastConvention, arg=arg, what="convention")
