"""Rounding modes, named as IEEE 754 names them."""

from __future__ import annotations

import enum

__all__ = ["RoundMode", "round_mode"]


class RoundMode(enum.IntEnum):
    """How a value between two representable numbers is rounded."""

    TiesToEven = 0
    """Nearest, ties to the even code (IEEE default; torch, ml_dtypes, CUDA)."""
    TowardZero = 1
    """Truncation of the magnitude."""
    TowardPositive = 2
    """Up, toward +Inf."""
    TowardNegative = 3
    """Down, toward -Inf."""
    Stochastic = 4
    """Up with probability (distance to the lower neighbour) / (gap), from 32 random bits."""


_NAMES = {
    "nearest": RoundMode.TiesToEven, "rne": RoundMode.TiesToEven, "even": RoundMode.TiesToEven,
    "zero": RoundMode.TowardZero, "rtz": RoundMode.TowardZero, "truncate": RoundMode.TowardZero,
    "up": RoundMode.TowardPositive, "ceil": RoundMode.TowardPositive,
    "down": RoundMode.TowardNegative, "floor": RoundMode.TowardNegative,
    "stochastic": RoundMode.Stochastic, "sr": RoundMode.Stochastic,
}


def round_mode(mode: str | RoundMode, *, arg: str = "rounding") -> RoundMode:
    """Looks a rounding mode up by enum, IEEE name or short name ("nearest", "zero", ...)."""
    if isinstance(mode, RoundMode):
        return mode
    if isinstance(mode, str):
        key = mode.replace("-", "").replace("_", "").lower()
        for m in RoundMode:
            if m.name.lower() == key:
                return m
        if key in _NAMES:
            return _NAMES[key]
        key = mode.lower()
        if key in _NAMES:
            return _NAMES[key]
    options = ", ".join([m.name for m in RoundMode] + sorted(_NAMES))
    raise ValueError(f"{arg}: unknown rounding mode {mode!r}; expected one of {options}")
