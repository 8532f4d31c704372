"""Number formats: one frozen description per 8-bit format, looked up by name.

Every other module takes its format parameters from here, so a format is defined
once, as data, and nothing else hard-codes exponent biases or NaN codes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np

__all__ = [
    "FormatInfo",
    "E4M3",
    "E5M2",
    "E4M3FNUZ",
    "E5M2FNUZ",
    "E8M0",
    "FORMATS",
    "format_info",
    "format_of_dtype",
    "decode_table",
    "decode_code",
]


@dataclass(frozen=True, kw_only=True)
class FormatInfo:
    """Describes an 8-bit floating-point format, numpy.finfo style."""

    name: str
    """Short name used across fp8sim ("e4m3")."""
    dtype_name: str
    """The ml_dtypes name of the same format ("float8_e4m3fn")."""
    k: int = 8
    """Bits per code."""
    exponent_bits: int
    """Width of the exponent field."""
    mantissa_bits: int
    """Width of the stored mantissa field (the hidden bit excluded)."""
    bias: int
    """Exponent bias: value = 2**(field - bias) * 1.mantissa for normal codes."""
    signed: bool = True
    """False for unsigned formats (E8M0 has no sign bit)."""
    has_inf: bool
    """True if the format has infinities (E5M2: 0x7C / 0xFC)."""
    has_subnormals: bool = True
    """False for E8M0, whose codes are all powers of two."""
    has_negative_zero: bool = True
    """False for the FNUZ formats, where 0x80 is the (only) NaN."""
    max_code: int
    """Code of the largest finite positive value."""
    nan_code: int
    """The NaN code fp8sim produces (positive sign where the format has one)."""
    inf_code: int | None = None
    """Code of +Inf, None where the format has no infinities."""

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value."""
        return (self.max_code >> self.mantissa_bits) - self.bias

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal value (also the subnormals' exponent)."""
        return 1 - self.bias if self.has_subnormals else -self.bias

    @property
    def max(self) -> float:
        """Largest finite value."""
        return float(decode_table(self)[self.max_code])

    @property
    def smallest_normal(self) -> float:
        """Smallest positive normal value (numpy's `tiny`)."""
        return 2.0**self.emin

    tiny = smallest_normal

    @property
    def smallest_subnormal(self) -> float:
        """Smallest positive value."""
        return 2.0 ** (self.emin - self.mantissa_bits) if self.has_subnormals else 2.0**self.emin

    @property
    def eps(self) -> float:
        """Distance from 1.0 to the next larger value."""
        return 2.0**-self.mantissa_bits

    @property
    def nan_codes(self) -> tuple[int, ...]:
        """Every code that decodes to NaN."""
        table = decode_table(self)
        return tuple(int(c) for c in np.flatnonzero(np.isnan(table)))

    @property
    def ml_dtype(self) -> np.dtype:
        """The ml_dtypes dtype of this format."""
        return np.dtype(getattr(ml_dtypes, self.dtype_name))


E4M3 = FormatInfo(
    name="e4m3", dtype_name="float8_e4m3fn", exponent_bits=4, mantissa_bits=3, bias=7,
    has_inf=False, max_code=0x7E, nan_code=0x7F,
)
E5M2 = FormatInfo(
    name="e5m2", dtype_name="float8_e5m2", exponent_bits=5, mantissa_bits=2, bias=15,
    has_inf=True, max_code=0x7B, nan_code=0x7F, inf_code=0x7C,
)
E4M3FNUZ = FormatInfo(
    name="e4m3fnuz", dtype_name="float8_e4m3fnuz", exponent_bits=4, mantissa_bits=3, bias=8,
    has_inf=False, has_negative_zero=False, max_code=0x7F, nan_code=0x80,
)
E5M2FNUZ = FormatInfo(
    name="e5m2fnuz", dtype_name="float8_e5m2fnuz", exponent_bits=5, mantissa_bits=2, bias=16,
    has_inf=False, has_negative_zero=False, max_code=0x7F, nan_code=0x80,
)
E8M0 = FormatInfo(
    name="e8m0", dtype_name="float8_e8m0fnu", exponent_bits=8, mantissa_bits=0, bias=127,
    signed=False, has_inf=False, has_subnormals=False, has_negative_zero=False,
    max_code=0xFE, nan_code=0xFF,
)

FORMATS: dict[str, FormatInfo] = {f.name: f for f in (E4M3, E5M2, E4M3FNUZ, E5M2FNUZ, E8M0)}
"""Every format fp8sim knows, by short name."""

_ALIASES = {f.dtype_name: f for f in FORMATS.values()}


def format_info(fmt: str | FormatInfo | np.dtype | type, *, arg: str = "fmt") -> FormatInfo:
    """Returns the FormatInfo for a short name, an ml_dtypes name or dtype.

    Raises ValueError naming `arg` for anything unknown.
    """
    if isinstance(fmt, FormatInfo):
        return fmt
    if isinstance(fmt, str):
        key = fmt.lower()
        if key in FORMATS:
            return FORMATS[key]
        if key in _ALIASES:
            return _ALIASES[key]
    else:
        try:
            found = format_of_dtype(np.dtype(fmt))
        except TypeError:
            found = None
        if found is not None:
            return found
    names = ", ".join(sorted(FORMATS) + sorted(_ALIASES))
    raise ValueError(f"{arg}: unknown FP8 format {fmt!r}; expected one of {names}")


def format_of_dtype(dtype: np.dtype) -> FormatInfo | None:
    """Returns the format of an ml_dtypes float8 dtype, or None for other dtypes."""
    for f in FORMATS.values():
        if dtype == f.ml_dtype:
            return f
    return None


def decode_code(fmt: FormatInfo, code: int) -> float:
    """Decodes one code from the format's fields (the definition, no lookup tables)."""
    m, e = fmt.mantissa_bits, fmt.exponent_bits
    negative = fmt.signed and bool(code & 0x80)
    field = (code >> m) & ((1 << e) - 1)
    mantissa = code & ((1 << m) - 1)
    # NaN keeps the code's sign bit (0x80 of the FNUZ formats reads as -NaN), as ml_dtypes.
    nan = -math.nan if (negative or not fmt.has_negative_zero and code == 0x80) else math.nan
    if code in (fmt.nan_code, fmt.nan_code | (0x80 if fmt.signed and fmt.has_negative_zero else 0)):
        return nan
    if fmt.inf_code is not None and (code & 0x7F) == fmt.inf_code:
        return -math.inf if negative else math.inf
    if fmt.has_inf and field == (1 << e) - 1:
        return nan
    if field == 0 and fmt.has_subnormals:
        value = mantissa * 2.0 ** (fmt.emin - m)
    else:
        value = (1 + mantissa * 2.0**-m) * 2.0 ** (field - fmt.bias)
    return -value if negative else value


@functools.cache
def decode_table(fmt: FormatInfo) -> np.ndarray:
    """All 256 codes of `fmt` decoded to float32 (read-only), built from the fields."""
    table = np.array([decode_code(fmt, c) for c in range(256)], dtype=np.float32)
    table.setflags(write=False)
    return table
