"""Formats: every code of every format against ml_dtypes, finfo properties, lookup by name."""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np
import pytest

from fp8sim.formats.convert import decode, encode, encode_e8m0
from fp8sim.formats.info import (
    E4M3,
    E4M3FNUZ,
    E5M2,
    E5M2FNUZ,
    E8M0,
    FORMATS,
    decode_code,
    decode_table,
    format_info,
)
from fp8sim.formats.rounding import RoundMode

ALL_CODES = np.arange(256, dtype=np.uint8)
ALL_FORMATS = list(FORMATS.values())
SIGNED_FORMATS = [f for f in ALL_FORMATS if f.signed]


def _ml_decode(fmt) -> np.ndarray:
    """The 256 codes of `fmt` as ml_dtypes widens them to float32."""
    return ALL_CODES.view(fmt.ml_dtype).astype(np.float32)


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: f.name)
def test_every_code_decodes_as_ml_dtypes(fmt):
    """All 256 codes give ml_dtypes' float32 bits, NaN bit patterns included."""
    expected = _ml_decode(fmt).view(np.uint32)
    assert np.array_equal(decode(ALL_CODES, fmt).view(np.uint32), expected)
    assert np.array_equal(decode_table(fmt).view(np.uint32), expected)
    # an ml_dtypes array carries its format in its dtype
    assert np.array_equal(decode(ALL_CODES.view(fmt.ml_dtype), fmt.name).view(np.uint32), expected)
    scalar = np.array([decode_code(fmt, c) for c in range(256)], dtype=np.float32)
    assert np.array_equal(scalar.view(np.uint32), expected)


def test_decode_keeps_shape_and_is_float32():
    """decode maps codes elementwise, any shape, to float32."""
    codes = ALL_CODES.reshape(4, 8, 8)
    out = decode(codes, "e5m2")
    assert out.dtype == np.float32 and out.shape == codes.shape
    assert not decode_table(E4M3).flags.writeable


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: f.name)
def test_finfo_properties_match_ml_dtypes(fmt):
    """max, smallest normal/subnormal, eps, NaN codes and has_inf agree with ml_dtypes."""
    fi = ml_dtypes.finfo(fmt.ml_dtype)
    assert fmt.max == float(fi.max)
    assert fmt.smallest_normal == float(fi.smallest_normal) == fmt.tiny
    assert fmt.smallest_subnormal == float(fi.smallest_subnormal)
    assert fmt.eps == float(fi.eps)
    values = _ml_decode(fmt)
    assert fmt.nan_codes == tuple(int(c) for c in np.flatnonzero(np.isnan(values)))
    assert fmt.has_inf == bool(np.isinf(values).any())
    assert fmt.max == float(np.nanmax(values[np.isfinite(values)]))
    assert float(values[fmt.max_code]) == fmt.max
    assert np.isnan(values[fmt.nan_code])
    if fmt.inf_code is not None:
        assert values[fmt.inf_code] == np.inf and values[fmt.inf_code | 0x80] == -np.inf
    assert fmt.ml_dtype == np.dtype(fmt.ml_dtype.type)


@pytest.mark.parametrize(
    ("fmt", "emin", "emax", "max", "nan_codes"),
    [
        (E4M3, -6, 8, 448.0, (0x7F, 0xFF)),
        (E5M2, -14, 15, 57344.0, (0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF)),
        (E4M3FNUZ, -7, 7, 240.0, (0x80,)),
        (E5M2FNUZ, -15, 15, 57344.0, (0x80,)),
        (E8M0, -127, 127, 2.0**127, (0xFF,)),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_known_parameters(fmt, emin, emax, max, nan_codes):
    """The published parameters of each format (OCP FP8, AMD FNUZ, OCP MX E8M0)."""
    assert (fmt.emin, fmt.emax, fmt.max, fmt.nan_codes) == (emin, emax, max, nan_codes)
    assert fmt.nan_code in fmt.nan_codes


def test_e8m0_is_an_unsigned_power_of_two_format():
    """E8M0: no sign, no zero, no subnormals: code c is 2**(c - 127)."""
    assert not E8M0.signed and not E8M0.has_subnormals and not E8M0.has_inf
    assert np.array_equal(decode(ALL_CODES[:255], E8M0), np.ldexp(1.0, np.arange(255) - 127))


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=lambda f: f.name)
def test_lookup_by_short_name_ml_dtypes_name_and_dtype(fmt):
    """Short names, ml_dtypes names (any case), dtypes and scalar types find the same object."""
    assert format_info(fmt.name) is fmt
    assert format_info(fmt.name.upper()) is fmt
    assert format_info(fmt.dtype_name) is fmt
    assert format_info(fmt.ml_dtype) is fmt
    assert format_info(getattr(ml_dtypes, fmt.dtype_name)) is fmt
    assert format_info(fmt) is fmt


@pytest.mark.parametrize("bad", ["e4m4", "float8", "", "bfloat16", np.float32, 3, None])
def test_unknown_format_names_the_argument(bad):
    """Anything that is not an 8-bit format is a ValueError starting with the argument name."""
    with pytest.raises(ValueError, match=r"^fmt: unknown FP8 format"):
        format_info(bad)
    with pytest.raises(ValueError, match=r"^a_format: "):
        format_info(bad, arg="a_format")


def test_format_info_is_frozen():
    """A format is a constant: its fields cannot be reassigned."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        E4M3.bias = 8  # type: ignore[misc]


@pytest.mark.parametrize("fmt", SIGNED_FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("rounding", list(RoundMode), ids=lambda m: m.name)
@pytest.mark.parametrize("saturate", [False, True])
def test_round_trip_every_non_nan_code(fmt, rounding, saturate):
    """decode -> encode gives back every non-NaN code, in every mode (the values are exact)."""
    codes = np.array([c for c in range(256) if c not in fmt.nan_codes], dtype=np.uint8)
    if saturate and fmt.inf_code is not None:  # Inf saturates to the largest finite value
        codes = codes[(codes & 0x7F) != fmt.inf_code]
    values = codes.view(fmt.ml_dtype).astype(np.float32)  # decoded by ml_dtypes
    rng = np.random.default_rng(0)
    for x in (values, values.astype(np.float64)):
        got = encode(x, fmt, rounding=rounding, saturate=saturate, rng=rng)
        assert np.array_equal(got, codes)
        assert np.array_equal(got.view(fmt.ml_dtype).view(np.uint8), codes)
    if not saturate and fmt.inf_code is not None:
        assert np.array_equal(encode(np.float32([np.inf, -np.inf]), fmt, rounding=rounding),
                              [fmt.inf_code, fmt.inf_code | 0x80])


@pytest.mark.parametrize("rounding", ["up", "down", "nearest", "zero"])
def test_e8m0_round_trip_every_non_nan_code(rounding):
    """Every power of two 2**-127 .. 2**127 encodes back to its own E8M0 code."""
    codes = ALL_CODES[:255]
    values = codes.view(E8M0.ml_dtype).astype(np.float32)
    for x in (values, values.astype(np.float64)):
        assert np.array_equal(encode_e8m0(x, rounding=rounding), codes)
        assert np.array_equal(encode(x, "e8m0", rounding=rounding), codes)
