"""Kernel outputs as raw bits: the common ground of `fp8sim.analysis.oracle` and identify.

A kernel's output may come as float32, bfloat16 (ml_dtypes), float16, raw uint16 bits
(what torch's bfloat16 becomes through ``.view(torch.int16)``) or a torch tensor.
Bit-exact comparison works on the bits, so everything is reduced to (bits, out_dtype)
here; torch is imported only when the caller passed a torch tensor.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from fp8sim._torch_arrays import host_array
from fp8sim.analysis.stats import ulp_distance

__all__ = ["output_bits", "bits_to_float", "float_dtype", "out_dtype_name", "ulp_distance_bits",
           "OUT_DTYPE_NAMES"]

_BY_DTYPE = {np.dtype(np.float32): "float32", np.dtype(ml_dtypes.bfloat16): "bfloat16",
             np.dtype(np.float16): "float16"}
OUT_DTYPE_NAMES = ("float32", "bfloat16", "float16")
_ALIASES = {"f32": "float32", "fp32": "float32", "bf16": "bfloat16", "f16": "float16",
            "fp16": "float16", "half": "float16"}
_BITS = {"float32": np.uint32, "bfloat16": np.uint16, "float16": np.uint16}
_FLOAT = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16),
          "float16": np.dtype(np.float16)}


def out_dtype_name(out_dtype, *, arg: str = "out_dtype") -> str:
    """The canonical name ("float32", "bfloat16", "float16") of an output dtype or its alias."""
    if isinstance(out_dtype, str):
        name = _ALIASES.get(out_dtype.lower(), out_dtype.lower())
        if name in OUT_DTYPE_NAMES:
            return name
    else:
        try:
            dt = np.dtype(out_dtype)
        except TypeError:
            dt = None
        if dt in _BY_DTYPE:
            return _BY_DTYPE[dt]
    raise ValueError(f"{arg}: expected one of {', '.join(OUT_DTYPE_NAMES)}, got {out_dtype!r}")


def output_bits(x, out_dtype=None, *, arg: str = "actual") -> tuple[np.ndarray, str]:
    """Returns (raw bits as uint32/uint16, out_dtype name) of a kernel output.

    Args:
        x: float32, ml_dtypes.bfloat16 or float16 array, a torch tensor of those
            dtypes, or raw bits (uint16 for bfloat16/float16, uint32 for float32).
        out_dtype: names the output type; required for raw uint16 bits, otherwise it
            must agree with the array's dtype when given.
        arg: the argument name used in error messages.

    Raises:
        TypeError: the dtype is not an output type.
        ValueError: out_dtype is unknown, missing for uint16 bits, or contradicts x.
    """
    arr = host_array(x, arg)
    want = None if out_dtype is None else out_dtype_name(out_dtype)
    if arr.dtype in (np.dtype(np.uint16), np.dtype(np.int16)):
        if want is None:
            raise ValueError(f"{arg}: raw 16-bit output needs out_dtype='bfloat16' or 'float16'")
        if want == "float32":
            raise ValueError(f"{arg}: 16-bit output contradicts out_dtype='float32'")
        return arr.view(np.uint16), want
    if arr.dtype in (np.dtype(np.uint32), np.dtype(np.int32)):
        if want not in (None, "float32"):
            raise ValueError(f"{arg}: 32-bit output contradicts out_dtype={want!r}")
        return arr.view(np.uint32), "float32"
    have = _BY_DTYPE.get(arr.dtype)
    if have is None:
        raise TypeError(f"{arg}: expected a float32, bfloat16 or float16 output (or its raw "
                        f"uint16/uint32 bits), got dtype {arr.dtype}")
    if want is not None and want != have:
        raise ValueError(f"{arg}: dtype {arr.dtype} contradicts out_dtype={want!r}")
    return arr.view(_BITS[have]), have


def float_dtype(out_dtype: str) -> np.dtype:
    """The numpy dtype of an output type name (ml_dtypes.bfloat16 for "bfloat16")."""
    return _FLOAT[out_dtype]


def bits_to_float(bits: np.ndarray, out_dtype: str) -> np.ndarray:
    """Views raw bits as the output type's float array (no copy)."""
    return np.asarray(bits).view(_FLOAT[out_dtype])


def ulp_distance_bits(x_bits: np.ndarray, y_bits: np.ndarray, out_dtype: str) -> np.ndarray:
    """Number of representable out_dtype values between x and y, in that format's own ulps.

    float32 uses `fp8sim.analysis.stats.ulp_distance`; bfloat16 and float16 order their
    16-bit patterns the same way (sign-magnitude to a monotone integer line), so one
    ulp is one step of the 16-bit format. +0 and -0 are 0 apart. Meaningless for NaN.
    """
    if out_dtype == "float32":
        x32, y32 = np.asarray(x_bits).view(np.float32), np.asarray(y_bits).view(np.float32)
        return ulp_distance(x32, y32)

    def ordered(v):
        bits = np.asarray(v, np.uint16).astype(np.int64)
        return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)

    return np.abs(ordered(x_bits) - ordered(y_bits))
