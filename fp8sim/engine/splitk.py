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

Scaled kernels whose epilogue applies the scales at each promotion (blockwise 1x128 x
128x128 or 128x1, `fp8sim.engine.epilogue`) split the same way: each slice runs the
epilogue over its own K groups from acc = +0 (slice boundaries are multiples of the
promotion interval, so the groups and their scales stay whole), and the slice results are
added in FP32 in order. cuBLASLt's blockwise kernels on the H200 do exactly this when an
output has few tiles (M x N up to 256 x 256 captured) and K >= 6144, with slices of
ceil(K / S) rounded up to 512 for 1x128 x 128x128 scales (K = 8192: 3 slices of 3072) and to
128 for 1x128 x 128x1 (K = 8192: 3 slices of 2816); bfloat16 outputs round the float32 sum.
`SplitK` records, as data, the rule and which slice count the library picked for which
shape (`fp8sim.engine.kernel.CUBLASLT_BLOCKWISE_SPLIT`).

Scales applied once at the end (cuBLASLt's per-tensor alpha) apply to the FP32 sum of the
slices, after the last one is added: H100 captures of torch._scaled_mm without fast
accumulation (promotion every 128 inside each slice) at random shapes and scales match
that bit for bit, and not scaling each slice before the sum
(`fp8sim/engine/CUBLASLT_SPLITS.md`). cuBLASLt's own slice count for every shape:
`fp8sim.engine.cublaslt_splits`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fp8sim.engine import _gpu_arrays
from fp8sim.engine.gemm import check_out_dtype, check_scales, gemm, resolve_scaling
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
    """How a library splits K for one scale layout: the rule and the captured slice counts.

    K is cut into `slices(m, n, k)` slices of ceil(K / slices) rounded up to `align`
    (`split_bounds`). `slices` answers 1 at K <= `unsplit_max_k` and for outputs of at
    least `unsplit_min_tiles` 128 x 128 tiles (no capture there was ever split), the
    captured count for a shape in `table` (by (M, N, K); `table_16bit` where bfloat16 or
    float16 outputs were split differently; 1 where a capture showed no split), and None
    (unknown) otherwise: the count is the library's heuristic.
    """

    name: str
    epilogue: str | None = None
    """The epilogue (scale layout) this split belongs to, e.g. "group"; None: any."""
    align: int = 128
    """Slice lengths are ceil(K / slices) rounded up to a multiple of this (`split_bounds`)."""
    unsplit_max_k: int = 4096
    """K at or below which the library does not split."""
    unsplit_min_tiles: int | None = None
    """Outputs of at least this many 128 x 128 tiles are not split at any K (the library
    splits K only to fill the GPU when there are few output tiles); None: no such rule
    was established, every long-K shape must be in `table`."""
    table: Mapping[tuple[int, int, int], int] = field(default_factory=dict, hash=False)
    """Captured slice counts by (M, N, K), float32 output (1: captured, not split)."""
    table_16bit: Mapping[tuple[int, int, int], int] = field(default_factory=dict, hash=False)
    """Shapes whose bfloat16/float16 outputs were split differently from float32."""
    device: str = ""
    """The GPU the counts were captured on (the heuristic depends on it)."""
    description: str = ""

    def slices(self, m: int, n: int, k: int, out_dtype: str = "float32") -> int | None:
        """The slice count for this shape, or None where it is not known."""
        key = (int(m), int(n), int(k))
        count = self.table.get(key)
        if out_dtype != "float32":
            count = self.table_16bit.get(key, count)
        if count is not None:
            return count
        if k <= self.unsplit_max_k:
            return 1
        tiles = -(-int(m) // 128) * -(-int(n) // 128)
        if self.unsplit_min_tiles is not None and tiles >= self.unsplit_min_tiles:
            return 1
        return None


def gemm_split_k(a, b, *, slices: int, align: int = 128, out_dtype: str = "float32",
                 **gemm_kwargs) -> np.ndarray:
    """`fp8sim.gemm` with K split into slices whose float32 results are added in order.

    Args:
        a, b: FP8 inputs as for `fp8sim.gemm`.
        slices: how many slices K is cut into (1: plain `gemm`).
        align: slice lengths are rounded up to a multiple of this.
        out_dtype: the sum, rounded to nearest even ("float32", "bfloat16", "float16").
        **gemm_kwargs: a_format, b_format, promote (inside each slice), preset, and
            scale_a, scale_b, scaling for epilogues that scale at each promotion: each
            slice gets the scales of its own K groups (slice lengths must then be
            multiples of promote). Scales applied at the end (``tensor``,
            ``row``) scale the FP32 sum of the slices once. C (with more than one slice)
            is not modelled and is refused.

    Returns:
        (M, N) array of out_dtype; NaN results are 0x7FFFFFFF in float32.
    """
    out_dt = check_out_dtype(out_dtype)
    xp, gemm_kwargs = _on_device(a, b, gemm_kwargs)
    if xp is np:
        a, af = as_codes(a, gemm_kwargs.pop("a_format", None), arg="a", fmt_arg="a_format")
        b, bf = as_codes(b, gemm_kwargs.pop("b_format", None), arg="b", fmt_arg="b_format")
    else:  # CuPy uint8 codes (`fp8sim.gemm(engine="gpu")` checks them slice by slice)
        af, bf = gemm_kwargs.pop("a_format", None), gemm_kwargs.pop("b_format", None)
    if a.ndim != 2:
        raise ValueError(f"a: expected a 2-D (M, K) array, got shape {a.shape}")
    if b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"b: expected shape ({a.shape[1]}, N) to match a's K, got {b.shape}")
    m, k = a.shape
    n = b.shape[1]
    bounds = split_bounds(k, slices, align)
    if len(bounds) > 1 and gemm_kwargs.get("c") is not None:
        raise ValueError(f"c: slices={slices} splits K into {len(bounds)} slices, and split-K "
                         "with C is not modelled (which slice adds C is unverified); pass "
                         "slices=1 or add C to the output yourself")
    scale_a = gemm_kwargs.pop("scale_a", None)
    scale_b = gemm_kwargs.pop("scale_b", None)
    scaling = gemm_kwargs.pop("scaling", None)
    promote = gemm_kwargs.get("promote", 0)
    if isinstance(promote, bool) or not isinstance(promote, (int, np.integer)):
        raise TypeError(f"promote: expected an int (0 or a multiple of 32), got {promote!r}")
    ep = end = None
    if scale_a is not None or scale_b is not None or scaling is not None:
        ep = resolve_scaling(scaling, scale_a, scale_b, m, k, n, int(promote))
        if ep is None:
            raise ValueError(f"scaling: no epilogue fits scale_a and scale_b ({scaling!r})")
        scale_a, scale_b = check_scales(ep, scale_a, scale_b, m, k, n, promote)
        size = bounds[0][1] - bounds[0][0]
        if ep.when == "end":  # applied once to the sum of the slices
            end, ep = (ep, scale_a, scale_b), None
        elif len(bounds) > 1 and (promote <= 0 or size % promote):
            raise ValueError(f"promote: split-K slices of {size} must be whole promotion groups "
                             f"for {ep.name!r} scaling; got promote={promote}")
    acc = None
    for k0, k1 in bounds:
        kw = dict(gemm_kwargs)
        if ep is not None:
            kw |= {"scaling": ep, **_slice_scales(ep, scale_a, scale_b, k0, k1, promote)}
        part = gemm(xp.ascontiguousarray(a[:, k0:k1]), xp.ascontiguousarray(b[k0:k1]),
                    a_format=af, b_format=bf, **kw)
        if acc is None:
            acc = part
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                acc = acc + part
    if end is not None:
        acc = _end_scale(*end, acc, xp)
    nan = xp.isnan(acc)
    acc.view(np.uint32)[nan] = _NAN32
    if out_dt != acc.dtype and xp is not np and out_dt != np.float16:  # CuPy: bf16 bits
        return _gpu_arrays.bf16_bits(acc, xp)  # 0x7FFF NaN, as gemm(engine="gpu") writes bfloat16
    if out_dt != acc.dtype:
        with np.errstate(over="ignore"):
            acc = acc.astype(out_dt)
        acc.view(np.uint16)[nan] = 0x7FFF  # cuBLASLt's bf16 and f16 NaN, as gemm writes it
    return acc


def _on_device(a, b, kwargs: dict):
    """(array module, gemm keyword arguments) of a split GEMM: numpy for host arrays; for
    GPU arrays CuPy, the slices run on the GPU engine, and the scales (a scalar or a row or
    column of them) are read to the host, where `check_scales` checks them."""
    if not _gpu_arrays.is_device(a, b):
        return np, kwargs
    from fp8sim.engine._gpu import _cupy

    cp = _cupy()
    kwargs = dict(kwargs)
    for key in ("scale_a", "scale_b"):
        if _gpu_arrays.is_device(kwargs.get(key)):
            kwargs[key] = cp.asnumpy(_gpu_arrays.to_cupy(kwargs[key], key)[0])
    return cp, kwargs | {"engine": "gpu"}


def _end_scale(ep, sa, sb, acc, xp=np):
    """An end epilogue on the FP32 sum: product acc * fl(sa*sb), a-first fl(acc*sa)*sb,
    b-first fl(acc*sb)*sa, each product rounded to float32."""
    sa = xp.asarray(sa, np.float32)
    sb = xp.asarray(sb, np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        if ep.order == "product":
            return acc * (sa * sb).astype(np.float32)
        if ep.order == "a-first":
            return (acc * sa).astype(np.float32) * sb
        return (acc * sb).astype(np.float32) * sa


def _slice_scales(ep, scale_a, scale_b, k0: int, k1: int, promote: int) -> dict:
    """The scales of the K groups in [k0, k1): columns of a group scale_a, rows of scale_b."""
    g0, g1 = k0 // promote, -(-k1 // promote)
    sa, sb = scale_a, scale_b
    if ep.scale_a == "group":
        sa = np.ascontiguousarray(np.asarray(scale_a)[:, g0:g1])
    if ep.scale_b in ("block", "group-column"):
        sb = np.ascontiguousarray(np.asarray(scale_b)[g0:g1])
    return {"scale_a": sa, "scale_b": sb}
