"""float32/float64 <-> 8-bit codes: the public `encode` and `decode`.

NaN codes: with ``saturate=False`` a NaN keeps its sign (0x7F / 0xFF), as torch does
(ml_dtypes agrees for E4M3; for E5M2 it keeps NaN payload bits, giving e.g. 0x7E, and
CUDA's ``__NV_NOSAT`` gives 0x7F whatever the sign); with ``saturate=True`` every NaN
becomes 0x7F, as CUDA's ``__nv_cvt_float_to_fp8(x, __NV_SATFINITE, ...)`` returns. The
FNUZ formats have a single NaN, 0x80, and no negative zero. float64 input is rounded
once, straight from float64 (ml_dtypes goes through float32 and so rounds twice when
float32(x) lands on a midpoint). E8M0 scales go through `encode_e8m0`.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from fp8sim._memory import check_large
from fp8sim._torch_arrays import host_array
from fp8sim.formats import _convert_kernels as _k
from fp8sim.formats.info import E8M0, FormatInfo, decode_table, format_info, format_of_dtype
from fp8sim.formats.rounding import RoundMode, round_mode

__all__ = ["encode", "encode_e8m0", "decode", "as_codes"]

_EXACT_UPCAST = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))
_E8M0_BYTES = 56
"""Bytes `encode_e8m0` allocates per element (float64 bits and int64 fields: 51 measured)."""
_DECODE_BYTES = 5
"""Bytes `decode` allocates per code (the float32 result and indexing buffers: 4.1 measured)."""


def _float_dtype(arr: np.ndarray, arg: str) -> np.dtype:
    """The dtype `_float_input` converts `arr` to (native float32/float64); TypeError otherwise."""
    dt = arr.dtype.newbyteorder("=") if arr.dtype.kind == "f" else arr.dtype
    if dt in _EXACT_UPCAST:
        dt = np.dtype(np.float32)
    if dt not in _k.SOURCE_PARAMS:
        raise TypeError(f"{arg}: expected a float32 or float64 array, got dtype {arr.dtype}")
    return dt


def _float_input(x: np.ndarray | float, arg: str = "x") -> np.ndarray:
    """`x` as a float32 or float64 array (float16/bfloat16 widened exactly); TypeError otherwise."""
    arr = host_array(x, arg)
    dt = _float_dtype(arr, arg)
    return arr if arr.dtype == dt else arr.astype(dt)


def _check_bool(v, arg: str) -> None:
    """A flag must be a bool: saturate="no" would otherwise read as True."""
    if not isinstance(v, bool | np.bool_):
        raise TypeError(f"{arg}: expected True or False, got {v!r}")


def _random_words(n: int, shape: tuple[int, ...], rng: np.random.Generator | int | None,
                  random_bits: np.ndarray | None) -> np.ndarray:
    """The 32-bit random word of each element for stochastic rounding (flat uint32)."""
    if random_bits is not None:
        if rng is not None:
            raise ValueError("random_bits: give either rng or random_bits, not both")
        words = np.asarray(random_bits)
        if words.dtype != np.uint32:
            raise TypeError(f"random_bits: expected a uint32 array, got dtype {words.dtype}")
        if words.shape != shape:
            raise ValueError(f"random_bits: shape {words.shape} differs from x's shape {shape}")
        return np.ascontiguousarray(words).reshape(-1)
    if isinstance(rng, bool | np.bool_) or not (
            rng is None or isinstance(rng, int | np.integer | np.random.Generator)):
        raise TypeError("rng: expected a numpy Generator, a non-negative int seed or None, "
                        f"got {type(rng).__name__}")
    if isinstance(rng, int | np.integer):
        if rng < 0:
            raise ValueError("rng: expected a numpy Generator, a non-negative int seed or None, "
                             f"got {rng}")
        rng = np.random.default_rng(rng)
    elif rng is None:
        rng = np.random.default_rng()
    return rng.integers(0, 2**32, size=n, dtype=np.uint32)


def encode(
    x: np.ndarray | float,
    fmt: str | FormatInfo = "e4m3",
    *,
    saturate: bool = False,
    rounding: str | RoundMode = RoundMode.TiesToEven,
    rng: np.random.Generator | int | None = None,
    random_bits: np.ndarray | None = None,
) -> np.ndarray:
    """Rounds float32/float64 values to 8-bit codes (uint8, same shape as `x`).

    Args:
        x: floating-point values (float16 and bfloat16 are widened exactly first).
        fmt: "e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "e8m0" or an ml_dtypes name.
        saturate: overflow and Inf give the largest finite value of that sign
            (CUDA's __NV_SATFINITE) instead of Inf (E5M2) or NaN (E4M3).
        rounding: a RoundMode or its short name; nearest-even by default.
        rng: a non-negative int seed, a numpy Generator or None, for stochastic rounding
            (ignored otherwise); it draws ``integers(0, 2**32, size=x.size,
            dtype=np.uint32)``, in C order.
        random_bits: instead of `rng`, the uint32 random word of each element (shape
            of `x`): stochastic rounding rounds |x| up exactly when the word is below
            the first 32 bits of the dropped fraction, (|x| - lower) / gap * 2**32.

    Returns:
        uint8 codes. Every element is rounded on its own, so the result does not
        depend on the number of threads.

    Directed modes follow IEEE 754 on overflow: a mode that rounds toward zero
    returns the largest finite value, never Inf/NaN. "e8m0" is `encode_e8m0` with
    this function's rounding (nearest-even by default) and saturation.
    """
    info = format_info(fmt)
    mode = round_mode(rounding)
    _check_bool(saturate, "saturate")
    if not info.signed:
        if random_bits is not None:
            raise ValueError("random_bits: E8M0 has no stochastic rounding")
        return encode_e8m0(x, rounding=mode, saturate=saturate)
    arr = host_array(x, "x")
    dt = _float_dtype(arr, "x")
    copies = (arr.dtype != dt) + (not arr.flags.c_contiguous)  # float copies before the kernel
    stochastic = mode == RoundMode.Stochastic
    check_large(arr.size * (1 + copies * dt.itemsize + 4 * stochastic),
               f"x: encoding shape {arr.shape}", hint="encode it in pieces")
    arr = _float_input(arr)
    flat = np.ascontiguousarray(arr).reshape(-1)
    bits = flat.view(np.int32 if flat.dtype == np.float32 else np.int64)
    if stochastic:
        rnd = _random_words(flat.shape[0], arr.shape, rng, random_bits)
    elif random_bits is not None:
        raise ValueError("random_bits: only used with rounding='stochastic'")
    else:
        rnd = np.empty(0, dtype=np.uint32)
    out = np.empty(flat.shape[0], dtype=np.uint8)
    _k.encode_bits(bits, out, *_k.SOURCE_PARAMS[flat.dtype], *_k.format_params(info),
                   int(mode), bool(saturate), rnd)
    return out.reshape(arr.shape)


def encode_e8m0(
    x: np.ndarray | float,
    *,
    rounding: str | RoundMode = RoundMode.TowardPositive,
    saturate: bool = False,
) -> np.ndarray:
    """Rounds positive values to E8M0 scale codes, the power of two 2**(code - 127).

    Scale formats (OCP MX, DeepGEMM's power-of-two scales) keep only an exponent, so a
    scale is rounded to a power of two; the default rounds up, 2**ceil(log2(x)), so
    that dividing by the scale never overflows.

    Args:
        x: float32/float64 values (float16/bfloat16 widened exactly), any shape.
        rounding: "up" (default), "down", "zero" (same as down here) or "nearest",
            in the linear domain: between 2**e and 2**(e+1) the midpoint is 1.5 * 2**e,
            and a tie goes to the even code. (ml_dtypes 0.7 rounds such ties up; 0.5.0 did not.)
        saturate: results above 2**127 (and +Inf) give 0xFE (2**127) instead of NaN.

    Returns:
        uint8 codes. E8M0 has no zero, no sign and no subnormals: +-0 and every
        result below 2**-127 give 0x00 (2**-127, the smallest scale); negative
        values, NaN and -Inf give the NaN code 0xFF; +Inf gives 0xFF (0xFE with
        `saturate`).
    """
    mode = round_mode(rounding)
    _check_bool(saturate, "saturate")
    if mode == RoundMode.Stochastic:
        raise ValueError("rounding: stochastic rounding is not supported for E8M0")
    arr = host_array(x, "x")
    _float_dtype(arr, "x")
    check_large(arr.size * _E8M0_BYTES, f"x: encoding shape {arr.shape}",
               hint="encode it in pieces")
    arr = _float_input(arr)
    bits = np.ascontiguousarray(arr, dtype=np.float64).view(np.int64)  # exact widening
    ef = (bits >> 52) & 0x7FF
    mant = bits & ((1 << 52) - 1)
    code = ef - (1023 - E8M0.bias)  # floor(log2 x) + 127 for normal float64
    half = np.int64(1 << 51)
    if mode == RoundMode.TowardPositive:
        code += mant != 0
    elif mode == RoundMode.TiesToEven:
        code += (mant > half) | ((mant == half) & (code % 2 == 1))
    out = np.clip(code, 0, E8M0.max_code + 1)
    if saturate:
        out[out > E8M0.max_code] = E8M0.max_code
    out[ef == 0] = 0  # +-0 and float64 subnormals: far below 2**-127
    out[(ef == 0x7FF) & (mant == 0)] = E8M0.max_code if saturate else E8M0.nan_code
    out[(ef == 0x7FF) & (mant != 0)] = E8M0.nan_code
    out[(bits < 0) & ((ef != 0) | (mant != 0))] = E8M0.nan_code  # negative, not -0
    return out.astype(np.uint8)


def as_codes(
    x: np.ndarray, fmt: str | FormatInfo | None, *, arg: str, fmt_arg: str = "fmt"
) -> tuple[np.ndarray, FormatInfo]:
    """Returns (uint8 codes, format) for uint8 codes with a format or an ml_dtypes float8 array.

    A float8 dtype gives the format; a `fmt` passed as well must name the same format
    (ValueError naming `fmt_arg` otherwise), None takes the dtype's. uint8 codes take
    `fmt`, "e4m3" when None. A torch float8 tensor is accepted too (torch is never
    imported here).
    """
    arr = host_array(x, arg)
    from_dtype = format_of_dtype(arr.dtype)
    if from_dtype is not None:
        if fmt is not None and format_info(fmt, arg=fmt_arg) != from_dtype:
            named = fmt.name if isinstance(fmt, FormatInfo) else fmt
            raise ValueError(f"{arg}: array dtype {arr.dtype} contradicts {fmt_arg}={named!r} "
                             f"(a float8 array carries its format: pass {fmt_arg}=None or "
                             f"{from_dtype.name!r}, or uint8 codes)")
        return arr.view(np.uint8), from_dtype
    if arr.dtype != np.uint8:
        raise TypeError(
            f"{arg}: expected uint8 FP8 codes or an ml_dtypes float8 array, got dtype {arr.dtype}")
    return arr, format_info("e4m3" if fmt is None else fmt, arg=fmt_arg)


def decode(codes: np.ndarray, fmt: str | FormatInfo | None = None) -> np.ndarray:
    """Decodes 8-bit codes (uint8, or an ml_dtypes float8 array) to float32, exactly.

    `fmt`: the codes' format; None takes a float8 array's own, else "e4m3".
    """
    arr, info = as_codes(codes, fmt, arg="codes")
    check_large(arr.size * _DECODE_BYTES, f"codes: decoding shape {arr.shape}",
               hint="decode it in pieces")
    return decode_table(info)[arr]
