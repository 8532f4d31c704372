"""Transformer Engine's per-tensor delayed scaling: a scale from an amax history multiplies x.

Naming follows TE, the reverse of `fp8sim.quantize`'s: TE's ``scale`` multiplies x before
the cast and ``scale_inv = 1 / scale`` is what the GEMM multiplies the result by.
"""

from __future__ import annotations

import numpy as np

from fp8sim._memory import check_large
from fp8sim.casts.checks import check_choice, check_x, element_format, float_array
from fp8sim.formats.convert import encode
from fp8sim.formats.info import FormatInfo

__all__ = ["delayed_scale", "cast_scaled"]


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
        amax_history: 1-D float array (or sequence) of recent amax values, each >= 0
            (an absolute max; NaN and Inf allowed), most recent first, as TE stores it:
            row 0 of ``amax_history``.
        fmt: the format the tensor is cast to (E4M3 forward, E5M2 for gradients in
            TE's HYBRID recipe).
        margin: a non-negative int; the scale is divided by 2**margin for headroom.
        algo: "max" (TE's default ``amax_compute_algo``): the history's max;
            "most_recent": its first entry.
        scale: the current scale (finite and > 0 in float32), kept when the amax is 0,
            Inf or NaN.

    Returns:
        float32 scale (TE's ``scale``); ``np.float32(1) / scale`` is TE's ``scale_inv``.
    """
    info = element_format(fmt)
    hist = _amax_history(amax_history)
    scale = _check_scale(scale)
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin: expected a non-negative int, got {margin!r}")
    check_choice(algo, ("max", "most_recent"), "algo")
    with np.errstate(invalid="ignore"):
        amax = np.float32(np.max(hist)) if algo == "max" else hist[0]
    if not np.isfinite(amax) or amax <= 0:
        return scale
    sf = np.float32(info.max) / amax
    with np.errstate(over="ignore"):
        return np.float32(sf / np.float32(2.0**margin))


def _amax_history(amax_history) -> np.ndarray:
    """The history as 1-D float32, each amax >= 0 or NaN/+Inf; TypeError/ValueError naming it."""
    hist = np.asarray(amax_history) if amax_history is not None else None
    if hist is None or hist.dtype.kind not in "iuf":
        got = "None" if hist is None else f"dtype {hist.dtype}"
        raise TypeError(f"amax_history: expected a 1-D sequence or array of real amax values, "
                        f"got {got}")
    if hist.ndim != 1:
        raise ValueError(f"amax_history: expected a 1-D array (most recent first), got shape "
                         f"{hist.shape}")
    if hist.size == 0:
        raise ValueError("amax_history: expected at least one amax value")
    with np.errstate(over="ignore"):  # float64 beyond float32's range: Inf keeps the scale
        hist = hist.astype(np.float32)
    negative = hist < 0  # NaN compares False: NaN keeps the scale, as documented
    if negative.any():
        raise ValueError(f"amax_history: an amax is an absolute max, >= 0; got "
                         f"{hist[negative][0]} at index {int(np.argmax(negative))}")
    return hist


def _check_scale(scale) -> np.float32:
    """A scale as float32, finite and > 0; TypeError/ValueError naming `scale` otherwise."""
    s = np.asarray(scale)
    if isinstance(scale, bool | np.bool_) or s.ndim != 0 or s.dtype.kind not in "iuf":
        raise TypeError(f"scale: expected a finite positive float, got {scale!r}")
    with np.errstate(over="ignore"):
        s32 = np.float32(s)
    if not (np.isfinite(s32) and s32 > 0):
        raise ValueError(f"scale: expected a finite positive float32 scale, got {scale!r}")
    return s32


def cast_scaled(x: np.ndarray, scale: float, fmt: str | FormatInfo = "e4m3") -> np.ndarray:
    """Transformer Engine's per-tensor cast: codes = saturate(float32(x * scale)) (RNE).

    TE converts with CUDA's ``__nv_fp8_e4m3(float)``, which saturates: with a delayed
    (stale) scale, values past fmt_max give +-fmt_max instead of NaN/Inf.
    """
    info = element_format(fmt)
    scale = _check_scale(scale)
    arr = float_array(x, "x", ndim=None)
    check_large(arr.size * 10, f"x: casting shape {arr.shape}",  # float32 x, x * scale, codes
                 hint="cast it in pieces")
    x32 = check_x(arr, "x", ndim=None)
    with np.errstate(over="ignore", invalid="ignore"):
        return encode(x32 * scale, info, saturate=True)

