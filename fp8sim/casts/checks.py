"""Argument checks and block geometry shared by every cast (block casts, MX, delayed scaling).

Public inside the package: `check_x` turns an array argument into float32 with errors
naming it (`float_array` checks it without converting), `check_block` / `resolve_block`
validate a scaling block and fit it to an array, `blocks` / `block_amax` / `unblock` view
an array as zero-padded blocks.
"""

from __future__ import annotations

import numpy as np

from fp8sim.formats.convert import _float_dtype, _float_input, decode
from fp8sim.formats.info import E8M0, FormatInfo, format_info

__all__ = ["element_format", "float_array", "check_x", "check_block",
           "resolve_block", "check_choice", "check_nonfinite", "blocks", "block_amax", "unblock",
           "scale_array", "scale_values", "NONFINITE"]

NONFINITE = ("raise", "propagate")
"""What a cast does with NaN/Inf input: refuse it, or do what the torch reference does."""


def element_format(fmt, arg: str = "fmt") -> FormatInfo:
    """The FormatInfo of an element format (E4M3, E5M2); scale formats (E8M0) are refused."""
    info = format_info(fmt, arg=arg)
    if not info.signed:
        raise ValueError(f"{arg}: {info.name} is a scale format, not an element format")
    return info


def float_array(x, arg: str, ndim: int | None = 2) -> np.ndarray:
    """x as an array `check_x` takes, not yet converted (nothing copied for an array)."""
    arr = np.asarray(x)
    _float_dtype(arr, arg)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{arg}: expected a 2-D (M, K) array, got shape {arr.shape}")
    return arr


def check_x(x, arg: str, ndim: int | None = 2) -> np.ndarray:
    """x as a float32 array (float64 rounded, float16/bfloat16 widened); 2-D unless ndim=None."""
    arr = _float_input(float_array(x, arg, ndim), arg)
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf
        return np.ascontiguousarray(arr, dtype=np.float32)


def _positive_int(b) -> bool:
    return isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b > 0


def check_block(block, arg: str = "block", *, allow_none: bool = False) -> tuple:
    """(bm, bk) as two positive ints (None too, spanning the axis, where allow_none)."""
    ok = isinstance(block, (tuple, list)) and len(block) == 2 and all(
        _positive_int(b) or (allow_none and b is None) for b in block)
    if not ok:
        what = "positive ints or None" if allow_none else "two positive ints"
        raise ValueError(f"{arg}: expected (bm, bk), {what}, got {block!r}")
    return tuple(None if b is None else int(b) for b in block)


def resolve_block(block: tuple, shape: tuple[int, int]) -> tuple[int, int]:
    """The block fitted to an array of `shape`: None spans the axis, a longer extent is cut.

    A block longer than its axis covers the whole axis as one partial block; zero padding
    never changes an amax, so cutting it to the axis gives the same codes and scales
    without allocating the padding (`block=(2**20, 2**20)` on a (4, 256) array is the
    per-tensor cast, not 4 TiB of zeros). Extents are at least 1 (empty axes).
    """
    return tuple(max(1, n if b is None else min(int(b), n))
                 for b, n in zip(block, shape, strict=True))


def check_choice(value, choices: tuple[str, ...], arg: str) -> None:
    """Raises ValueError naming `arg` unless value is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{arg}: expected one of {', '.join(choices)}, got {value!r}")


def check_nonfinite(x32: np.ndarray, nonfinite: str, arg: str) -> None:
    """Refuses NaN/Inf in x where nonfinite is "raise" (they poison their block's amax)."""
    check_choice(nonfinite, NONFINITE, "nonfinite")
    if nonfinite == "raise" and not np.all(np.isfinite(x32)):
        raise ValueError(f"{arg}: contains NaN/Inf (or float64 beyond float32's range), "
                         "which would poison the block amax "
                         "(pass nonfinite='propagate' to get the torch reference's result)")


def blocks(x32: np.ndarray, bm: int, bk: int) -> np.ndarray:
    """x zero-padded to whole blocks, viewed as (Mb, bm, Kb, bk)."""
    m, k = x32.shape
    mb, kb = -(-m // bm), -(-k // bk)
    if (mb * bm, kb * bk) != (m, k):
        padded = np.zeros((mb * bm, kb * bk), dtype=np.float32)
        padded[:m, :k] = x32
        x32 = padded
    return x32.reshape(mb, bm, kb, bk)


def block_amax(blk: np.ndarray) -> np.ndarray:
    """max(|x|) per block (Mb, Kb); zero padding never raises it; NaN propagates."""
    if blk.size == 0:
        return np.zeros((blk.shape[0], blk.shape[2]), dtype=blk.dtype)
    return np.abs(blk).max(axis=(1, 3))


def unblock(blk: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The (M, K) array of a (Mb, bm, Kb, bk) block view, padding dropped."""
    mb, bm, kb, bk = blk.shape
    return blk.reshape(mb * bm, kb * bk)[: shape[0], : shape[1]]


def scale_array(scales) -> np.ndarray:
    """scales as an array of float scales or E8M0 codes, not yet converted; TypeError otherwise."""
    s = np.asarray(scales)
    if not (s.dtype == np.uint8 or s.dtype == E8M0.ml_dtype
            or np.issubdtype(s.dtype, np.floating)):
        raise TypeError(f"scales: expected float32 scales or uint8 E8M0 codes, got {s.dtype}")
    return s


def scale_values(scales) -> np.ndarray:
    """float32 scale values from float32 scales or uint8 E8M0 codes."""
    s = scale_array(scales)
    if s.dtype == np.uint8 or s.dtype == E8M0.ml_dtype:
        return decode(s.view(np.uint8), E8M0)
    return s.astype(np.float32)
