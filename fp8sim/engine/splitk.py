"""Split-K: K cut into slices that run as separate MMA chains, their results added in FP32.

cuBLASLt with fast accumulation does this at long K. On the H100, for 64 x 64 outputs,
`fp8sim.identify` found (and every output bit confirms):

- K = 16384: 6 slices of 2816 (the last 2304),
- K = 65536: 22 slices of 3072 (the last 1024),

each slice a chain of wgmma steps that never promotes, the slice results added in
FP32 in slice order. The slice length is ceil(K / slices) rounded up to a multiple of
`align` (128 here; 256 gives the same slices for these K). How many slices cuBLASLt
picks for a shape is its heuristic, not modelled here (none for K <= 4096).

Adding the slices in order is promotion every slice length, ``fp8sim.gemm(a, b,
promote=2816)`` at K = 16384, except for the sign of a zero result (split-K starts from
the first slice's result, promotion from +0 + that result). `fp8sim.identify` with
``search="split"`` tries these intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fp8sim.engine.gemm import OUT_DTYPES, gemm
from fp8sim.formats.convert import as_codes

__all__ = ["split_bounds", "gemm_split_k", "SplitK"]

_NAN32 = np.uint32(0x7FFFFFFF)


def split_bounds(k: int, slices: int, align: int = 128) -> list[tuple[int, int]]:
    """The [k0, k1) ranges of the slices: length ceil(ceil(K / slices) / align) * align.

    Rounding up can leave fewer non-empty slices than asked (K = 256, slices = 3,
    align = 128: two slices); only non-empty ones are returned.
    """
    for name, v in (("k", k), ("slices", slices), ("align", align)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    per_slice = -(-k // slices)
    size = -(-per_slice // align) * align
    return [(k0, min(k0 + size, k)) for k0 in range(0, k, size)]


@dataclass(frozen=True, kw_only=True)
class SplitK:
    """How a library splits K for a shape: the captured slice counts, as data.

    `slices` answers 1 at K <= `unsplit_max_k` (no capture there was ever split), the
    captured count for a shape in `table` (by (M, N, K); `table_16bit` where bfloat16 or
    float16 outputs were split differently), and None (unknown) otherwise.
    """

    name: str
    align: int = 128
    """Slice lengths are ceil(K / slices) rounded up to a multiple of this (`split_bounds`)."""
    unsplit_max_k: int = 4096
    """K at or below which the library does not split."""
    table: Mapping[tuple[int, int, int], int] = field(default_factory=dict, hash=False)
    """Captured slice counts by (M, N, K), float32 output."""
    table_16bit: Mapping[tuple[int, int, int], int] = field(default_factory=dict, hash=False)
    """Shapes whose bfloat16/float16 outputs were split differently from float32."""
    device: str = ""
    """The GPU the counts were captured on (the heuristic depends on it)."""
    description: str = ""

    def slices(self, m: int, n: int, k: int, out_dtype: str = "float32") -> int | None:
        """The slice count for this shape, or None where it was never captured."""
        if k <= self.unsplit_max_k:
            return 1
        key = (int(m), int(n), int(k))
        count = self.table.get(key)
        if out_dtype != "float32":
            count = self.table_16bit.get(key, count)
        return count


def gemm_split_k(a, b, *, slices: int, align: int = 128, out_dtype: str = "float32",
                 **gemm_kwargs) -> np.ndarray:
    """`fp8sim.gemm` with K split into slices whose float32 results are added in order.

    Args:
        a, b: FP8 inputs as for `fp8sim.gemm`.
        slices: how many slices K is cut into (1: plain `gemm`).
        align: slice lengths are rounded up to a multiple of this.
        out_dtype: the sum, rounded to nearest even ("float32", "bfloat16", "float16").
        **gemm_kwargs: a_format, b_format, promote (inside each slice), preset.
            C and scales are not modelled with split-K and are refused.

    Returns:
        (M, N) array of out_dtype; NaN results are 0x7FFFFFFF in float32.
    """
    for name in ("c", "scale_a", "scale_b", "scaling"):
        if gemm_kwargs.get(name) is not None:
            raise ValueError(f"{name}: split-K with C or scales is not modelled "
                             "(how each slice's epilogue applies them is unverified)")
    if out_dtype not in OUT_DTYPES:
        raise ValueError(f"out_dtype: expected one of {', '.join(OUT_DTYPES)}, got {out_dtype!r}")
    a, af = as_codes(a, gemm_kwargs.pop("a_format", "e4m3"), arg="a", fmt_arg="a_format")
    b, bf = as_codes(b, gemm_kwargs.pop("b_format", "e4m3"), arg="b", fmt_arg="b_format")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"b: expected shape ({a.shape[-1]}, N) to match a's K, got {b.shape}")
    acc = None
    for k0, k1 in split_bounds(a.shape[1], slices, align):
        part = gemm(np.ascontiguousarray(a[:, k0:k1]), np.ascontiguousarray(b[k0:k1]),
                    a_format=af, b_format=bf, **gemm_kwargs)
        if acc is None:
            acc = part
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                acc = acc + part
    acc.view(np.uint32)[np.isnan(acc)] = _NAN32
    if out_dtype != "float32":
        with np.errstate(over="ignore"):
            acc = acc.astype(OUT_DTYPES[out_dtype])
    return acc
