"""Scaled FP8 quantization: fine-grained blocks, per-tensor delayed scaling and OCP MX.

An FP8 tensor is codes plus scales: value = decode(code) * scale of the code's block.
These ways of choosing the scales are modelled, bit for bit:

* `quantize` - per-block casts of real training stacks, any block shape, by
  `convention` (`CONVENTIONS`, each a `CastConvention`):

  - "deepgemm" (default): DeepGEMM's reference casts (``per_token_cast_to_fp8``,
    ``per_block_cast_to_fp8``) as torch runs them on CUDA, where a division by a
    scalar is a multiplication by its reciprocal: ``amax = max(|x|)`` clamped below at
    1e-4, ``scale = fl32(amax * fl32(1 / fmt_max))``, ``codes = encode(fl32(x * m))``
    with ``m = fl32(fmt_max * fl32(1 / amax))``. With ``pow2_scale`` the scale is
    rounded up to a power of two (UE8M0, DeepGEMM's ``ceil_to_ue8m0``) and
    ``codes = encode(x / scale)``. Verified on an H200 against DeepGEMM's own casts.
  - "torchao": torchao's casts, both its blockwise Triton kernels (1x128, 128x1,
    128x128) and the dynamic casts of ``Float8LinearConfig`` (per tensor, per row, per
    column; `torchao_float8_cast`): amax clamped below at 1e-12,
    ``m = fl32(fmt_max / amax)`` (float64 arithmetic, one rounding),
    ``codes = encode(fl32(x * m))`` (torchao clamps to +-fmt_max first, which never
    changes a code) and the scale returned is
    ``fl32(1 / m)``, the reciprocal torchao hands to the GEMM. With ``pow2_scale``
    (torchao's ``round_scales_to_power_of_2``) ``m`` is rounded *down* to a power of
    two first. Verified on an H200 (torchao 0.18) on codes, scales and layer outputs.
* `delayed_scale` / `cast_scaled` - Transformer Engine's per-tensor delayed scaling:
  the scale comes from an amax history and *multiplies* x before the cast.
* `quantize_mx` - OCP Microscaling (MX v1.0): 32-element blocks sharing an E8M0
  exponent ``floor(log2(amax)) - emax_elem``; elements saturate.

`dequantize` undoes any of them and `retile` re-quantizes along the other axis
(1x128 -> 128x1 for the backward pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fp8sim._lookup import lookup
from fp8sim.formats.convert import _float_input, as_codes, decode, encode, encode_e8m0
from fp8sim.formats.info import E8M0, FormatInfo, decode_table, format_info

__all__ = [
    "quantize", "dequantize", "retile", "quantize_mx", "delayed_scale", "cast_scaled",
    "AMAX_FLOOR", "SCALE_FORMATS", "CastConvention", "CONVENTIONS", "torchao_float8_cast",
]

AMAX_FLOOR = np.float32(1e-4)
"""DeepGEMM's clamp of a block's amax (float32(1e-4)): all-zero blocks get this amax."""
SCALE_FORMATS = ("float32", "e8m0")
"""How scales are returned: float32 values, or uint8 E8M0 codes (powers of two only)."""
_NONFINITE = ("raise", "propagate")


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
            (1, K) per row, (M, K) per tensor. Edge blocks may be partial.
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
    return _quantize(x, fmt, block=block, pow2_scale=pow2_scale, convention=convention,
                     scale_format=scale_format, nonfinite=nonfinite)


def _quantize(x, fmt="e4m3", *, block=(1, 128), pow2_scale=False, convention="deepgemm",
              scale_format="float32", nonfinite="raise",
              arg: str = "x") -> tuple[np.ndarray, np.ndarray]:
    """`quantize` with the name of the array argument for error messages."""
    info = _element_format(fmt)
    x32 = _check_x(x, arg)
    bm, bk = _check_block(block)
    conv = _convention(convention)
    _check_choice(scale_format, SCALE_FORMATS, "scale_format")
    if scale_format == "e8m0" and not pow2_scale:
        raise ValueError("scale_format: 'e8m0' holds powers of two only; it needs pow2_scale=True")
    _check_nonfinite(x32, nonfinite, arg)
    blocks = _blocks(x32, bm, bk)  # (Mb, bm, Kb, bk), zero-padded
    scales, scaled = _scale_blocks(blocks, np.float32(info.max), conv, bool(pow2_scale))
    codes = encode(_unblock(scaled, x32.shape), info)
    if scale_format == "e8m0":
        return codes, encode_e8m0(scales)
    return codes, scales


def _scale_blocks(blocks: np.ndarray, fmt_max: np.float32, conv: CastConvention,
                  pow2: bool) -> tuple[np.ndarray, np.ndarray]:
    """(scales (Mb, Kb), scaled float32 blocks) of zero-padded blocks by a convention."""
    one = np.float32(1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        amax = _block_amax(blocks)
        if conv.multiplier == "float32-reciprocal":  # NaN stays NaN, as torch's clamp
            amax = np.maximum(amax, np.float32(conv.amax_floor))
            mult = fmt_max * (one / amax)
        else:
            amax = np.maximum(amax.astype(np.float64), conv.amax_floor)
            mult = (np.float64(fmt_max) / amax).astype(np.float32)
        if pow2 and conv.pow2 == "multiplier-down":
            mult = _pow2_floor_log2f(mult)
        if conv.scale == "float32-reciprocal":
            scales = amax.astype(np.float32) * (one / fmt_max)
        else:
            scales = one / mult
        if pow2 and conv.pow2 == "scale-up":
            scales = _pow2_ceil(scales)
            return scales, blocks / scales[:, None, :, None]
        # torchao clamps x * m to +-fmt_max before its cast: a no-op, since m rounds
        # fmt_max / amax by half an ulp at most and encode rounds fmt_max * (1 + 2**-24)
        # to fmt_max; x * m is never Inf (an Inf in x makes m zero) and NaN passes a clamp.
        scaled = blocks * mult[:, None, :, None]
    return scales, scaled


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
    x32 = _check_x(x, "x")
    m, k = x32.shape
    blocks = {None: (max(m, 1), max(k, 1)), -1: (1, max(k, 1)), 1: (1, max(k, 1)),
              0: (max(m, 1), 1)}
    if isinstance(axiswise_dim, bool) or axiswise_dim not in blocks:
        raise ValueError(f"axiswise_dim: expected None, -1, 1 or 0, got {axiswise_dim!r}")
    return _quantize(x32, fmt, block=blocks[axiswise_dim],
                     pow2_scale=round_scales_to_power_of_2, convention="torchao",
                     nonfinite=nonfinite)


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
    return _quantize_mx(x, fmt, block=block, scale_rounding=scale_rounding,
                        scale_format=scale_format, nonfinite=nonfinite)


def _quantize_mx(x, fmt="e4m3", *, block=(1, 32), scale_rounding="floor", scale_format="e8m0",
                 nonfinite="raise", arg: str = "x") -> tuple[np.ndarray, np.ndarray]:
    """`quantize_mx` with the name of the array argument for error messages."""
    info = _element_format(fmt)
    x32 = _check_x(x, arg)
    bm, bk = _check_block(block)
    _check_choice(scale_rounding, ("floor", "up"), "scale_rounding")
    _check_choice(scale_format, SCALE_FORMATS, "scale_format")
    _check_nonfinite(x32, nonfinite, arg)
    blocks = _blocks(x32, bm, bk)
    amax = _block_amax(blocks)
    if scale_rounding == "floor":
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
        scaled = blocks.astype(np.float64) / scales64[:, None, :, None]  # exact: a power of two
    codes = encode(_unblock(scaled, x32.shape), info, saturate=True)
    scales = scales64.astype(np.float32)  # 2**-127 is a float32 subnormal: exact
    if scale_format == "e8m0":
        return codes, encode_e8m0(scales)
    return codes, scales


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
        fmt: the element format of uint8 `codes` (None: "e4m3", or a float8 array's own).
        block: the (bm, bk) the codes were quantized with.
        dtype: float32 (default: each product rounded to nearest even, what a kernel
            computes) or float64 (exact: 4 bits of code times 24 bits of scale).

    Returns:
        (M, K) array of `dtype`.
    """
    arr, info = as_codes(codes, fmt, arg="codes")
    if arr.ndim != 2:
        raise ValueError(f"codes: expected a 2-D (M, K) array, got shape {arr.shape}")
    bm, bk = _check_block(block)
    out_dt = np.dtype(dtype)
    if out_dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected float32 or float64, got {dtype!r}")
    s = _scale_values(scales)
    want = (-(-arr.shape[0] // bm), -(-arr.shape[1] // bk))
    if s.shape != want:
        raise ValueError(f"scales: expected shape {want} for codes {arr.shape} and block "
                         f"{(bm, bk)}, got {s.shape}")
    full = np.repeat(np.repeat(s, bm, axis=0), bk, axis=1)[: arr.shape[0], : arr.shape[1]]
    with np.errstate(over="ignore", invalid="ignore"):
        return decode_table(info)[arr].astype(out_dt) * full.astype(out_dt)


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

    Returns:
        (codes, scales) of `quantize(dequantize(...), fmt, block=to_block, pow2_scale=...)`.
    """
    values = dequantize(codes, scales, fmt, block=from_block)
    return _quantize(values, fmt, block=to_block, pow2_scale=pow2_scale, arg="codes")


def delayed_scale(
    amax_history: np.ndarray,
    fmt: str | FormatInfo = "e4m3",
    *,
    margin: int = 0,
    algo: str = "max",
    scale: float = 1.0,
) -> np.float32:
    """The per-tensor scale Transformer Engine's delayed scaling derives from an amax history.

    Naming follows TE, which is the reverse of `quantize`'s: TE's ``scale`` multiplies
    x before the cast (``codes = cast(x * scale)``, see `cast_scaled`) and its
    ``scale_inv = 1 / scale`` is what the GEMM multiplies the result by; `quantize`'s
    ``scales`` correspond to TE's ``scale_inv``. As TE's ``_default_sf_compute``:
    ``scale = float32(float32(fmt_max / amax) / 2**margin)`` in float32, and the
    previous `scale` is kept where amax is 0 or not finite.

    Args:
        amax_history: 1-D float array of recent amax values (most recent first, as TE
            stores it: row 0 of ``amax_history``).
        fmt: the format the tensor is cast to (E4M3 forward, E5M2 for gradients in
            TE's HYBRID recipe).
        margin: a non-negative int; the scale is divided by 2**margin for headroom.
        algo: "max" (TE's default ``amax_compute_algo``): the history's max;
            "most_recent": its first entry.
        scale: the current scale, kept when the amax is 0, Inf or NaN.

    Returns:
        float32 scale (TE's ``scale``); ``np.float32(1) / scale`` is TE's ``scale_inv``.
    """
    info = _element_format(fmt)
    hist = np.asarray(amax_history, dtype=np.float32).reshape(-1)
    if hist.size == 0:
        raise ValueError("amax_history: expected at least one amax value")
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin: expected a non-negative int, got {margin!r}")
    _check_choice(algo, ("max", "most_recent"), "algo")
    with np.errstate(invalid="ignore"):
        amax = np.float32(np.max(hist)) if algo == "max" else hist[0]
    if not np.isfinite(amax) or amax <= 0:
        return np.float32(scale)
    sf = np.float32(info.max) / amax
    with np.errstate(over="ignore"):
        return np.float32(sf / np.float32(2.0**margin))


def cast_scaled(x: np.ndarray, scale: float, fmt: str | FormatInfo = "e4m3") -> np.ndarray:
    """Transformer Engine's per-tensor cast: codes = saturate(float32(x * scale)) (RNE).

    TE converts with CUDA's ``__nv_fp8_e4m3(float)``, which saturates: with a delayed
    (stale) scale, values past fmt_max give +-fmt_max instead of NaN/Inf.
    """
    info = _element_format(fmt)
    x32 = _check_x(x, "x", ndim=None)
    with np.errstate(over="ignore", invalid="ignore"):
        return encode(x32 * np.float32(scale), info, saturate=True)


# --- helpers -------------------------------------------------------------------------


def _element_format(fmt) -> FormatInfo:
    info = format_info(fmt)
    if not info.signed:
        raise ValueError(f"fmt: {info.name} is a scale format, not an element format")
    return info


def _check_x(x, arg: str, ndim: int | None = 2) -> np.ndarray:
    """x as a float32 array (float64 rounded, float16/bfloat16 widened); 2-D unless ndim=None."""
    arr = _float_input(x, arg)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{arg}: expected a 2-D (M, K) array, got shape {arr.shape}")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf
        return np.ascontiguousarray(arr, dtype=np.float32)


def _check_block(block) -> tuple[int, int]:
    ok = isinstance(block, (tuple, list)) and len(block) == 2 and all(
        isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b > 0 for b in block)
    if not ok:
        raise ValueError(f"block: expected (bm, bk), two positive ints, got {block!r}")
    return int(block[0]), int(block[1])


def _convention(convention) -> CastConvention:
    """Looks a cast convention up by name; a CastConvention passes through."""
    return lookup(convention, CONVENTIONS, CastConvention, arg="convention",
                  what="convention")


def _check_choice(value, choices: tuple[str, ...], arg: str) -> None:
    if value not in choices:
        raise ValueError(f"{arg}: expected one of {', '.join(choices)}, got {value!r}")


def _check_nonfinite(x32: np.ndarray, nonfinite: str, arg: str) -> None:
    _check_choice(nonfinite, _NONFINITE, "nonfinite")
    if nonfinite == "raise" and not np.all(np.isfinite(x32)):
        raise ValueError(f"{arg}: contains NaN/Inf (or float64 beyond float32's range), "
                         "which would poison the block amax "
                         "(pass nonfinite='propagate' to get the torch reference's result)")


def _blocks(x32: np.ndarray, bm: int, bk: int) -> np.ndarray:
    """x zero-padded to whole blocks, viewed as (Mb, bm, Kb, bk)."""
    m, k = x32.shape
    mb, kb = -(-m // bm), -(-k // bk)
    if (mb * bm, kb * bk) != (m, k):
        padded = np.zeros((mb * bm, kb * bk), dtype=np.float32)
        padded[:m, :k] = x32
        x32 = padded
    return x32.reshape(mb, bm, kb, bk)


def _block_amax(blocks: np.ndarray) -> np.ndarray:
    """max(|x|) per block (Mb, Kb); zero padding never raises it; NaN propagates."""
    if blocks.size == 0:
        return np.zeros((blocks.shape[0], blocks.shape[2]), dtype=blocks.dtype)
    return np.abs(blocks).max(axis=(1, 3))


def _unblock(blocks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mb, bm, kb, bk = blocks.shape
    return blocks.reshape(mb * bm, kb * bk)[: shape[0], : shape[1]]


def _pow2_ceil(s: np.ndarray) -> np.ndarray:
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


def _pow2_floor_log2f(m: np.ndarray) -> np.ndarray:
    """2**floor(fl32(log2(m))) for float32 m: torch's exp2(floor(log2(m))) on CUDA.

    log2 is rounded to float32 before the floor, as CUDA's log2f returns it: a multiplier
    a few ulps below 2**k has log2 within half a float32 ulp of k and rounds up to 2**k.
    (Exactly floor(log2) elsewhere. float64 log2 is far more accurate than float32's ulp,
    so its float32 rounding is the correctly rounded log2f.) NaN stays NaN, 0 gives 0.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e = np.floor(np.log2(m.astype(np.float64)).astype(np.float32))
        return np.exp2(e.astype(np.float64)).astype(np.float32)


def _scale_values(scales) -> np.ndarray:
    """float32 scale values from float32 scales or uint8 E8M0 codes."""
    s = np.asarray(scales)
    if s.dtype == np.uint8 or s.dtype == E8M0.ml_dtype:
        return decode(s.view(np.uint8), E8M0)
    if not np.issubdtype(s.dtype, np.floating):
        raise TypeError(f"scales: expected float32 scales or uint8 E8M0 codes, got {s.dtype}")
    return s.astype(np.float32)
