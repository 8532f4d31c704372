"""One description of a block cast (`BlockCast`) and the public cast functions built on it.

A scaled FP8 tensor is codes plus scales: value = decode(code) * scale of the code's
block. `BlockCast` says, as one small frozen value, how a tensor is cast: the element
format, the scaling block, and the scale rule (a cast convention, "deepgemm" or
"torchao", with or without power-of-two scales, or an OCP MX rule, "mx" or "mx-up").
`quantize`, `quantize_mx`, `torchao_float8_cast`, `dequantize` and `retile` are thin calls
on it; the Linear-layer recipes (`fp8sim.recipes.layers`) hold one per GEMM operand.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from fp8sim._memory import check_large
from fp8sim.casts.block import cast_blocks
from fp8sim.casts.checks import (
    NONFINITE,
    check_block,
    check_choice,
    check_nonfinite,
    check_x,
    element_format,
    float_array,
    resolve_block,
    scale_array,
    scale_values,
)
from fp8sim.casts.conventions import CONVENTIONS, SCALE_FORMATS, CastConvention
from fp8sim.casts.conventions import convention as lookup_convention
from fp8sim.casts.mx import cast_mx
from fp8sim.formats.convert import as_codes, encode_e8m0
from fp8sim.formats.info import FormatInfo, decode_table

__all__ = ["BlockCast", "MX_RULES", "quantize", "quantize_mx", "torchao_float8_cast",
           "dequantize", "retile"]

MX_RULES = {"mx": "floor", "mx-up": "up"}
"""The OCP MX scale rules a BlockCast names in place of a convention, by their rounding:
"mx" the spec's floor(log2(amax)) - emax_elem, "mx-up" Transformer Engine's MXFP8 rule."""

_CAST_BYTES, _MX_BYTES, _BLOCK_BYTES = 18, 27, 48
"""Bytes a cast allocates per element (convention casts; MX, in float64) and per block, from
tracemalloc peaks (13.4 and 22.4 a float32 element, 4 more from float64, 35 a block)."""


@dataclass(frozen=True, kw_only=True)
class BlockCast:
    """How one tensor is cast to FP8: element format, scaling block and scale rule, as data."""

    fmt: str | FormatInfo = "e4m3"
    """Element format: "e4m3" or "e5m2" (ml_dtypes names accepted)."""
    block: tuple[int | None, int | None] = (1, 128)
    """Scaling block (rows, columns) on the (M, K) array cast; None spans the whole axis:
    (None, None) one scale per tensor, (1, None) per row, (None, 1) per column,
    (1, 128) / (128, 1) tiles, (128, 128) blocks. An extent longer than its axis spans
    the axis."""
    convention: str | CastConvention = "deepgemm"
    """The scale rule: a name in `fp8sim.CONVENTIONS` ("deepgemm", "torchao") or a
    `CastConvention`, or an MX rule in `MX_RULES` ("mx", "mx-up": E8M0 shared exponents,
    elements saturated; scales are powers of two by construction)."""
    pow2_scale: bool = False
    """Power-of-two scales, as the convention rounds them (implied by the MX rules)."""

    def __post_init__(self) -> None:
        """Rejects a cast no stack runs, naming the field."""
        element_format(self.fmt)
        check_block(self.block, allow_none=True)
        if not isinstance(self.block, tuple):
            object.__setattr__(self, "block", tuple(self.block))
        if self.convention not in MX_RULES:
            try:
                lookup_convention(self.convention)
            except ValueError:
                raise ValueError(f"convention: expected one of "
                                 f"{', '.join([*CONVENTIONS, *MX_RULES])} or a "
                                 f"CastConvention, got {self.convention!r}") from None
        if not isinstance(self.pow2_scale, (bool, np.bool_)):
            raise TypeError(f"pow2_scale: expected a bool, got {self.pow2_scale!r}")

    @property
    def mx(self) -> bool:
        """True for the OCP MX rules (shared E8M0 exponents, saturated elements)."""
        return isinstance(self.convention, str) and self.convention in MX_RULES

    @property
    def power_of_two(self) -> bool:
        """True where every scale is a power of two (E8M0-representable)."""
        return bool(self.pow2_scale) or self.mx

    @property
    def format(self) -> FormatInfo:
        """The element format's FormatInfo."""
        return element_format(self.fmt)

    def resolve(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The block as two ints for an array of this shape (None and long extents: the axis)."""
        return resolve_block(self.block, shape)

    def scale_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The shape of the scales of an array of this shape: (ceil(M / bm), ceil(K / bk))."""
        bm, bk = self.resolve(shape)
        return -(-shape[0] // bm), -(-shape[1] // bk)

    def replace(self, **changes) -> BlockCast:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def cast(self, x, *, arg: str = "x", scale_format: str = "float32",
             nonfinite: str = "raise") -> tuple[np.ndarray, np.ndarray]:
        """(uint8 codes of x's shape, scales (ceil(M / bm), ceil(K / bk))) of a 2-D array.

        `arg` names x in error messages; `scale_format` and `nonfinite` as `quantize`.
        """
        info = self.format
        arr = float_array(x, arg)
        check_choice(scale_format, SCALE_FORMATS, "scale_format")
        if scale_format == "e8m0" and not self.power_of_two:
            raise ValueError("scale_format: 'e8m0' holds powers of two only; it needs "
                             "pow2_scale=True")
        check_choice(nonfinite, NONFINITE, "nonfinite")
        bm, bk = self.resolve(arr.shape)
        per = _MX_BYTES if self.mx else _CAST_BYTES
        check_large(arr.size * per + _BLOCK_BYTES * math.prod(self.scale_shape(arr.shape)),
                     f"{arg}: quantizing shape {arr.shape} in blocks {(bm, bk)}",
                     hint="quantize a few blocks of rows at a time")
        x32 = check_x(arr, arg)
        check_nonfinite(x32, nonfinite, arg)
        if self.mx:
            codes, scales = cast_mx(x32, info, bm, bk, MX_RULES[self.convention])
        else:
            codes, scales = cast_blocks(x32, info, bm, bk, lookup_convention(self.convention),
                                        bool(self.pow2_scale))
        return codes, (encode_e8m0(scales) if scale_format == "e8m0" else scales)

    def dequantize(self, codes, scales, *, dtype: type | np.dtype = np.float32) -> np.ndarray:
        """decode(code) * scale of its block: float32 (each product rounded) or float64 (exact)."""
        return dequantize(codes, scales, self.fmt, block=self.resolve(np.shape(codes)),
                          dtype=dtype)


def quantize(
    x: np.ndarray,
    fmt: str | FormatInfo = "e4m3",
    *,
    block: tuple[int, int] = (1, 128),
    pow2_scale: bool = False,
    convention: str | CastConvention = "deepgemm",
    scale_format: str = "float32",
    nonfinite: str = "raise",
) -> tuple[np.ndarray, np.ndarray]:
    """Scales each block of `x` into the FP8 range and encodes it, as a named stack's casts do.

    Args:
        x: (M, K) float32 array (float16/bfloat16 are widened exactly; float64 is
            rounded to float32 first, since the reference casts work in float32).
        fmt: the element format, "e4m3" or "e5m2" (ml_dtypes names accepted).
        block: (bm, bk), positive: (1, 128) per-token tiles, (128, 128) weight blocks,
            (1, K) per row, (M, K) per tensor. Edge blocks may be partial; an extent
            longer than its axis spans the axis (no padding is allocated).
        pow2_scale: power-of-two scales, as the convention rounds them. "deepgemm":
            the scale fl32(amax * fl32(1 / fmt_max)) rounded up to a power of two,
            exactly from its float32 bits; codes are then encode(x / scale) (dividing by a
            power of two is exact wherever the quotient is not a float32 subnormal, and
            such quotients encode to zero anyway). "torchao": the multiplier m rounded
            down to 2**floor(log2(m)), scale 1 / m. Neither lets a value overflow.
        convention: "deepgemm" (default) or "torchao" (see `CONVENTIONS`), or a
            `CastConvention`. Per block, "deepgemm": amax clamped at 1e-4,
            scale = fl32(amax * fl32(1 / fmt_max)), codes = encode(fl32(x * m)) with
            m = fl32(fmt_max * fl32(1 / amax)). "torchao": amax clamped at 1e-12,
            m = fl32(fmt_max / amax), codes = encode(fl32(x * m)),
            scale = fl32(1 / m).
        scale_format: "float32" (default) or "e8m0": uint8 E8M0 codes (exponent + 127)
            instead of float32 values; needs `pow2_scale`.
        nonfinite: "raise" (default): NaN/Inf in `x` raise ValueError, since they poison
            their block's amax. "propagate": do what the torch reference does: a NaN
            makes its block's scale and codes NaN; an Inf makes the scale Inf, its own
            code NaN and the other codes of the block zero.

    Returns:
        (codes, scales): uint8 codes of x's shape, and scales of shape
        (ceil(M / bm), ceil(K / bk)), with decode(codes) * scale ~ x. An empty `x` gives
        empty codes and scales of that shape.

    Raises:
        ValueError, TypeError: a malformed argument; the message names it.
    """
    element_format(fmt)
    check_block(block)
    lookup_convention(convention)
    cast = BlockCast(fmt=fmt, block=tuple(block), convention=convention, pow2_scale=pow2_scale)
    return cast.cast(x, scale_format=scale_format, nonfinite=nonfinite)


def quantize_mx(
    x: np.ndarray,
    fmt: str | FormatInfo = "e4m3",
    *,
    block: tuple[int, int] = (1, 32),
    scale_rounding: str = "floor",
    scale_format: str = "e8m0",
    nonfinite: str = "raise",
) -> tuple[np.ndarray, np.ndarray]:
    """Quantizes `x` as OCP Microscaling (MX v1.0) does: blocks share an E8M0 exponent.

    For each block, the shared exponent is ``X = floor(log2(amax)) - emax_elem``
    (emax_elem = 8 for E4M3, 15 for E5M2), clamped below at -127 (an all-zero block
    gets -127, the smallest E8M0 scale); the elements are ``x / 2**X`` rounded to
    nearest even and saturated to +-fmt_max, as the spec (section 6.3) and its
    reference library (microsoft/microxcaling, ``saturate_normals=True``) do. Because X
    comes from the *floor* of log2(amax), ``amax / 2**X`` lies in [2**emax_elem,
    2**(emax_elem + 1)), so the largest elements of a block can exceed fmt_max
    (448 < 512 for E4M3) and are clamped: that clamping is part of MX's error.

    Args:
        x: (M, K) float array (see `quantize`).
        fmt: the element format, "e4m3" or "e5m2".
        block: (bm, bk); the spec's blocks are 32 consecutive elements along the
            reduction axis: (1, 32) for activations (M, K), (32, 1) for weights (K, N).
        scale_rounding: "floor" (default): the OCP spec's rule above. "up": Transformer
            Engine's MXFP8 rule, ``X = ceil(log2(float32(amax / fmt_max)))`` (its
            ``float_to_e8m0`` rounds toward +Inf), clamped to [-127, 127], which never
            clamps an element (amax / 2**X <= fmt_max). No 1e-4 floor in either rule.
        scale_format: "e8m0" (default, uint8 codes X + 127) or "float32" (2**X).
        nonfinite: "raise" (default) or "propagate": a block with NaN or Inf gets the
            NaN scale (0xFF) and all its codes NaN, as in the reference library (the
            exponent of Inf exceeds the E8M0 range).

    Returns:
        (codes, scales) with scales of shape (ceil(M / bm), ceil(K / bk)).
    """
    check_block(block)
    check_choice(scale_rounding, tuple(MX_ROUNDING_NAMES), "scale_rounding")
    rule = MX_ROUNDING_NAMES[scale_rounding]
    return BlockCast(fmt=fmt, block=tuple(block), convention=rule).cast(
        x, scale_format=scale_format, nonfinite=nonfinite)


def torchao_float8_cast(
    x: np.ndarray,
    fmt: str | FormatInfo = "e4m3",
    *,
    axiswise_dim: int | None = None,
    round_scales_to_power_of_2: bool = False,
    nonfinite: str = "raise",
) -> tuple[np.ndarray, np.ndarray]:
    """torchao's dynamic Float8 cast (``hp_tensor_to_float8_dynamic``) of a 2-D tensor, bit for bit.

    The cast ``Float8LinearConfig`` recipes run on each GEMM operand: one scale per
    tensor (``axiswise_dim=None``, "tensorwise"), per row (``-1`` or ``1``: amax over
    the last dimension) or per column (``0``). It is `quantize` with
    ``convention="torchao"`` and the block that spans the reduced dimension.

    Args:
        x: (M, K) float array (bfloat16 in torchao's recipes).
        fmt: "e4m3" (inputs, weights; gradients in the rowwise recipes) or "e5m2"
            (gradients in the tensorwise recipe).
        axiswise_dim: None, -1, 1 or 0, as torchao names it.
        round_scales_to_power_of_2: the multiplier rounded down to a power of two.
        nonfinite: as `quantize`.

    Returns:
        (codes, scales): scales (1, 1), (M, 1) or (1, K): fl32(1 / m), the reciprocal
        torchao hands to ``torch._scaled_mm``.
    """
    arr = float_array(x, "x")
    m, k = arr.shape
    blocks = {None: (max(m, 1), max(k, 1)), -1: (1, max(k, 1)), 1: (1, max(k, 1)),
              0: (max(m, 1), 1)}
    if isinstance(axiswise_dim, bool) or axiswise_dim not in blocks:
        raise ValueError(f"axiswise_dim: expected None, -1, 1 or 0, got {axiswise_dim!r}")
    return BlockCast(fmt=fmt, block=blocks[axiswise_dim], convention="torchao",
                     pow2_scale=round_scales_to_power_of_2).cast(arr, nonfinite=nonfinite)


def dequantize(
    codes: np.ndarray,
    scales: np.ndarray,
    fmt: str | FormatInfo | None = None,
    *,
    block: tuple[int, int] = (1, 128),
    dtype: type | np.dtype = np.float32,
) -> np.ndarray:
    """Values of quantized blocks: decode(codes) * scale of each code's block.

    Args:
        codes: (M, K) uint8 codes or an ml_dtypes float8 array.
        scales: (ceil(M / bm), ceil(K / bk)) float32 scales, or uint8 E8M0 codes.
        fmt: the element format of uint8 `codes` (None: "e4m3", or a float8 array's own);
            "e4m3" or "e5m2", as `quantize` takes it (E8M0 is a scale format).
        block: the (bm, bk) the codes were quantized with.
        dtype: float32 (default: each product rounded to nearest even, what a kernel
            computes) or float64 (exact: 4 bits of code times 24 bits of scale).

    Returns:
        (M, K) array of `dtype`.
    """
    if fmt is not None:
        element_format(fmt)
    arr, info = as_codes(codes, fmt, arg="codes")
    if not info.signed:
        raise ValueError(f"codes: {info.dtype_name} holds {info.name} scale codes, not "
                         "element codes (e4m3, e5m2)")
    if arr.ndim != 2:
        raise ValueError(f"codes: expected a 2-D (M, K) array, got shape {arr.shape}")
    asked = check_block(block)
    bm, bk = resolve_block(asked, arr.shape)
    out_dt = _out_dtype(dtype)
    s = scale_array(scales)
    want = (-(-arr.shape[0] // bm), -(-arr.shape[1] // bk))
    if s.shape != want:
        raise ValueError(f"scales: expected shape {want} for codes {arr.shape} and block "
                         f"{tuple(asked)}, got {s.shape}")
    # the decoded codes, the repeated scales and their product (20.2 bytes measured, float64)
    check_large(arr.size * (2 * out_dt.itemsize + 6) + 16 * s.size,
                 f"codes: dequantizing shape {arr.shape}",
                 hint="dequantize a few blocks of rows at a time")
    s = scale_values(s)
    full = np.repeat(np.repeat(s, bm, axis=0), bk, axis=1)[: arr.shape[0], : arr.shape[1]]
    with np.errstate(over="ignore", invalid="ignore"):
        return decode_table(info)[arr].astype(out_dt) * full.astype(out_dt)


def _out_dtype(dtype) -> np.dtype:
    """dequantize's dtype as np.float32 or np.float64; ValueError naming `dtype` otherwise."""
    try:
        out_dt = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):
        out_dt = None
    if out_dt is None or out_dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected float32 or float64 (np.float32, np.float64 or "
                         f"their names), got {dtype!r}")
    return out_dt


def retile(
    codes: np.ndarray,
    scales: np.ndarray,
    fmt: str | FormatInfo = "e4m3",
    *,
    from_block: tuple[int, int] = (1, 128),
    to_block: tuple[int, int] = (128, 1),
    pow2_scale: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-quantizes FP8 blocks along another axis: 1x128 tiles to 128x1 for the backward pass.

    DeepSeek-V3 keeps activations as 1x128 tiles (per token); the weight-gradient GEMM
    reduces over tokens, so it needs the same tensor scaled per 128 tokens of one
    channel. This dequantizes in float32 (code * scale rounded to nearest even, as a
    kernel does) and quantizes again with `quantize`, keeping the (M, K) orientation
    (transpose codes and scales yourself for a GEMM that wants (K, M)).

    Args:
        codes, scales: what `quantize(x, fmt, block=from_block)` returned.
        fmt: the codes' format (and the new codes'), "e4m3" or "e5m2".
        from_block: the (bm, bk) the codes were quantized with.
        to_block: the (bm, bk) of the new blocks.
        pow2_scale: the new scales rounded up to powers of two, as `quantize` does.

    Returns:
        (codes, scales) of `quantize(dequantize(...), fmt, block=to_block, pow2_scale=...)`.
    """
    values = dequantize(codes, scales, fmt, block=from_block)
    check_block(to_block, "to_block")
    cast = BlockCast(fmt=fmt, block=tuple(to_block), pow2_scale=pow2_scale)
    return cast.cast(values, arg="codes")


MX_ROUNDING_NAMES = {"floor": "mx", "up": "mx-up"}
"""quantize_mx's scale_rounding to the BlockCast rule."""
