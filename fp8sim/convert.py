"""float32/float64 <-> 8-bit codes: the public `encode` and `decode`.

NaN codes: with ``saturate=False`` a NaN keeps its sign (0x7F / 0xFF), as torch and
ml_dtypes do; with ``saturate=True`` every NaN becomes 0x7F, as CUDA's
``__nv_cvt_float_to_fp8(x, __NV_SATFINITE, ...)`` returns. The FNUZ formats have a
single NaN, 0x80, and no negative zero.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from . import _convert_kernels as _k
from .formats import FormatInfo, decode_table, format_info, format_of_dtype
from .rounding import RoundMode, round_mode

__all__ = ["encode", "decode", "as_codes"]

_EXACT_UPCAST = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def encode(
    x: np.ndarray | float,
    fmt: str | FormatInfo = "e4m3",
    *,
    saturate: bool = False,
    rounding: str | RoundMode = RoundMode.TiesToEven,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Rounds float32/float64 values to 8-bit codes (uint8, same shape as `x`).

    Args:
        x: floating-point values (float16 and bfloat16 are widened exactly first).
        fmt: "e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz" or an ml_dtypes name.
        saturate: overflow and Inf give the largest finite value of that sign
            (CUDA's __NV_SATFINITE) instead of Inf (E5M2) or NaN (E4M3).
        rounding: a RoundMode or its short name; nearest-even by default.
        rng: seed or numpy Generator for stochastic rounding (ignored otherwise).

    Directed modes follow IEEE 754 on overflow: a mode that rounds toward zero
    returns the largest finite value, never Inf/NaN.
    """
    info = format_info(fmt)
    if not info.signed:
        raise ValueError(f"fmt: {info.name} is a scale format; use fp8sim.quant.encode_e8m0")
    mode = round_mode(rounding)
    arr = np.asarray(x)
    if arr.dtype in _EXACT_UPCAST:
        arr = arr.astype(np.float32)
    if arr.dtype not in _k.SOURCE_PARAMS:
        raise TypeError(f"x: expected a float32 or float64 array, got dtype {arr.dtype}")
    flat = np.ascontiguousarray(arr).reshape(-1)
    bits = flat.view(np.int32 if flat.dtype == np.float32 else np.int64)
    if mode == RoundMode.Stochastic:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        rnd = gen.integers(0, 2**32, size=flat.shape[0], dtype=np.uint32)
    else:
        rnd = np.empty(0, dtype=np.uint32)
    out = np.empty(flat.shape[0], dtype=np.uint8)
    _k.encode_bits(bits, out, *_k.SOURCE_PARAMS[flat.dtype], *_k.format_params(info),
                   int(mode), bool(saturate), rnd)
    return out.reshape(arr.shape)


def as_codes(
    x: np.ndarray, fmt: str | FormatInfo | None, *, arg: str, fmt_arg: str = "fmt"
) -> tuple[np.ndarray, FormatInfo]:
    """Returns (uint8 codes, format) for uint8 codes with a format or an ml_dtypes float8 array.

    A float8 dtype gives the format; `fmt` then only has to agree with it when it is
    not the default "e4m3". A torch float8 tensor is accepted too (torch is never
    imported here).
    """
    if type(x).__module__.startswith("torch"):
        x = _torch_to_numpy(x)
    arr = np.asarray(x)
    from_dtype = format_of_dtype(arr.dtype)
    if from_dtype is not None:
        if fmt not in (None, "e4m3") and format_info(fmt, arg=fmt_arg) != from_dtype:
            raise ValueError(f"{arg}: array dtype {arr.dtype} contradicts format {fmt!r}")
        return arr.view(np.uint8), from_dtype
    if arr.dtype != np.uint8:
        raise TypeError(
            f"{arg}: expected uint8 FP8 codes or an ml_dtypes float8 array, got dtype {arr.dtype}")
    return arr, format_info("e4m3" if fmt is None else fmt, arg=fmt_arg)


def _torch_to_numpy(t) -> np.ndarray:
    """Converts a (CPU or GPU) torch float8 tensor to an ml_dtypes array without copying codes twice."""
    import torch  # only reached when the caller passed a torch tensor

    names = {torch.float8_e4m3fn: "float8_e4m3fn", torch.float8_e5m2: "float8_e5m2"}
    t = t.detach().cpu()
    if t.dtype in names:
        return t.view(torch.uint8).numpy().view(getattr(ml_dtypes, names[t.dtype]))
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def decode(codes: np.ndarray, fmt: str | FormatInfo = "e4m3") -> np.ndarray:
    """Decodes 8-bit codes (uint8, or an ml_dtypes float8 array) to float32, exactly."""
    arr, info = as_codes(codes, fmt, arg="codes")
    return decode_table(info)[arr]
