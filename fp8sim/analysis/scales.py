"""Scale arrays blown up to their operands' shapes, for the exact product of a scaled GEMM.

The one place fp8sim's analysis expands a kernel's scales (tensor, row, 1x128 groups,
128x128 blocks, 128x1 tiles) onto the elements they multiply; the CLI and the
experiments measure scaled GEMMs against `scaled_exact`.
"""

from __future__ import annotations

import numpy as np

from fp8sim.analysis.stats import exact_product
from fp8sim.formats.convert import decode

__all__ = ["scale_expand", "scaled_exact"]


def _k_block(count: int, k: int, prefer: int | None, operand: str) -> int:
    """Length of each of `count` scale groups along K: `prefer` or 128 when they fit the
    count, else the smallest multiple of 32 that does."""
    if count == 1:
        return k
    per_group = -(-k // count)
    for cand in (prefer, 128, -(-per_group // 32) * 32):
        if cand and -(-k // cand) == count:
            return cand
    raise ValueError(f"scale_{operand}: {count} groups along K = {k} fit no group length")


def scale_expand(scale, rows: int, cols: int, *, operand: str,
                 prefer: int | None = None) -> np.ndarray:
    """A scale array blown up to its operand's (rows, cols) in float64, for the exact product.

    operand "a": scale_a of shape () (tensor), (1 or M, groups along K); "b": scale_b of
    shape (), (groups along K, 1, ceil(N / 128) or N). Groups along K are `prefer` (the
    kernel's promotion interval) or 128 elements long when that gives their count.

    Raises:
        ValueError: a scale of a shape that does not cover the operand ("scale_a: ...").
    """
    s = np.asarray(scale, np.float64)
    if s.ndim == 0 or s.size == 1:
        return np.full((rows, cols), float(s.reshape(-1)[0]))
    if s.ndim != 2:
        raise ValueError(f"scale_{operand}: expected a scalar or a 2-D array, got shape "
                         f"{s.shape}")
    if operand == "a":
        r_blk = rows if s.shape[0] == 1 else 1
        c_blk = _k_block(s.shape[1], cols, prefer, operand)
    else:
        r_blk = _k_block(s.shape[0], rows, prefer, operand)
        c_blk = cols if s.shape[1] == 1 else 1 if s.shape[1] == cols else 128
    out = np.repeat(np.repeat(s, r_blk, axis=0), c_blk, axis=1)[:rows, :cols]
    if out.shape != (rows, cols):
        raise ValueError(f"scale_{operand}: shape {s.shape} does not cover the operand's "
                         f"({rows}, {cols})")
    return out


def scaled_exact(a: np.ndarray, b: np.ndarray, scale_a=None, scale_b=None, *,
                 promote: int | None = None, a_format: str | None = None,
                 b_format: str | None = None, c: np.ndarray | None = None) -> np.ndarray:
    """The exact (float64) product of the decoded, scaled FP8 inputs (plus C).

    Scales of any granularity multiply their blocks of A and B before the sum (FP8
    values times float32 scales are exact in float64); groups along K are `promote`
    elements long where that gives their count (see `scale_expand`).
    """
    av = decode(a, a_format).astype(np.float64)
    bv = decode(b, b_format).astype(np.float64)
    m, k = av.shape
    n = bv.shape[1]
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf scales, as the API takes
        if scale_a is not None:
            av *= scale_expand(scale_a, m, k, operand="a", prefer=promote)
        if scale_b is not None:
            bv *= scale_expand(scale_b, k, n, operand="b", prefer=promote)
    return exact_product(av, bv, c)
