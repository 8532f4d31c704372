"""The GPU engine (private): CUDA kernels of `_gpu_gemm.cu`, compiled and launched by CuPy.

`fp8sim.gemm(..., engine="gpu")` calls `gemm_tiles` with the same arguments as the numba
engine's `gemm_tiles` and gets the same bits: the kernels compute the CPU engine's
arithmetic (see the .cu file for why each operation is exact). Needs CuPy
(`pip install 'fp8sim[gpu]'`) and an NVIDIA GPU of compute capability 7.0 or newer; no
FP8 hardware. Kernels compile on first use (NVRTC, a few seconds each; CuPy caches them
on disk).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from fp8sim.engine._gemm_kernels import EXACT, FUSED, IDEAL

__all__ = ["available", "check", "gemm_tiles", "gemm_device", "TILED_MAX_FRAC"]

WHEN_NONE, WHEN_PROMOTION, WHEN_END = 0, 1, 2  # as fp8sim.engine.epilogue's op-codes
NO_COLUMN = 1 << 30  # column divisor that maps every column to scale column 0
TILED_MAX_FRAC = 17  # the tiled fused kernel's float32 sums are exact up to here
_TILED_TERMS = (16, 32)
_BM = 64  # outputs per block, each way
_MAX_ROW_TILES = 65535  # grid.y limit
_SOURCE = Path(os.environ.get("FP8SIM_GPU_SOURCE") or Path(__file__).with_name("_gpu_gemm.cu"))
"""The CUDA source (FP8SIM_GPU_SOURCE: another file, for scripts/device/gpu_mutants.py)."""
_PARTS_MAX_BYTES = 1 << 30  # the interval sums of a K-split GEMM (see k_groups)
K_SPLIT = os.environ.get("FP8SIM_GPU_K_SPLIT", "1") != "0"
"""Promoted GEMMs with few output tiles sum their intervals in parallel (`k_groups`; C
enters the first K group only); FP8SIM_GPU_K_SPLIT=0 turns it off (the same bits, the
serial kernel). Checked on an H100 (2026-12-07, scripts/device/gpu_check.py: both paths
against the CPU engine, every epilogue, scaling and recipe, C; gpu_mutants.py: all 4
planted bugs caught, C added in every K group among them)."""


@functools.cache
def _cupy():
    """The cupy module, or None when it cannot be imported."""
    try:
        import cupy
    except Exception:  # ImportError, or a CUDA library that fails to load
        return None
    return cupy


@functools.cache
def available() -> str | None:
    """None when the GPU engine can run here, else the reason it cannot (one line)."""
    cp = _cupy()
    if cp is None:
        return "CuPy is not installed (pip install 'fp8sim[gpu]', or cupy-cuda12x)"
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, no device
        return f"no CUDA device ({type(e).__name__}: {e})"
    if n < 1:
        return "no CUDA device"
    major = cp.cuda.Device().compute_capability
    if int(major) < 70:
        return f"the GPU's compute capability {major} is below 7.0"
    return None


def check() -> None:
    """Raises ValueError naming `engine` when the GPU engine cannot run here."""
    why = available()
    if why is not None:
        raise ValueError(f"engine: 'gpu' cannot run here: {why}")


@functools.cache
def _kernel(name: str):
    """One kernel of the .cu source ('gemm_generic' or 'gemm_tiled<MODE, T, PROMOTED>')."""
    cp = _cupy()
    module = cp.RawModule(code=_SOURCE.read_text(), options=("--fmad=false",),
                          name_expressions=[name])
    return module.get_function(name)


def _i32(x) -> np.int32:
    return np.int32(int(x))


def k_groups(tiles: int, intervals: int, m: int, n: int, sms: int) -> int:
    """Promotion intervals per K group of a promoted GEMM with few output tiles; 0: no split.

    The intervals of a promoted GEMM start from zero, so they can be summed in parallel
    (K groups, the grid's z) and promoted in order after (promote_parts): the same bits.
    Groups are added until each SM has about four blocks, while the interval sums
    (intervals x M x N float32) fit in _PARTS_MAX_BYTES.
    """
    if intervals < 2 or tiles >= 2 * sms or intervals * m * n * 4 > _PARTS_MAX_BYTES:
        return 0
    groups = min(intervals, -(-4 * sms // tiles))
    per = -(-intervals // groups)
    return per if per < intervals else 0


def gemm_device(a, b, tables, c, has_c, mode, terms, frac, chunk, promoted, when, order, fused,
                sa, sb, bdiv, out, *, kernel: str = "auto", k_split: bool | None = None):
    """Runs one engine kernel on device arrays; `out` (M, N) float32 on the device.

    a (M, K) and b (K, N) uint8 codes, tables (1024,) float32 (A values, A 2**e, B values,
    B 2**e), c (M, N) float32 or a dummy, sa and sb float32 2-D scale arrays (shapes as
    the numba engine reads them). kernel: "auto" (tiled where it applies), "tiled" or
    "generic" (one thread per output, the CPU engine's integer arithmetic). k_split: let
    a promoted tiled GEMM with few output tiles sum its intervals in parallel (`k_groups`;
    None: the module's K_SPLIT, which the GPU tests switch to check both paths).
    """
    cp = _cupy()
    m, k = a.shape
    n = b.shape[1]
    tiled = (mode == FUSED and frac <= TILED_MAX_FRAC and terms in _TILED_TERMS) or \
        mode in (IDEAL, EXACT)
    if kernel == "generic" or (kernel == "auto" and not tiled):
        if mode != FUSED:
            raise ValueError("kernel: the generic GPU kernel computes fused steps only")
        f = _kernel("gemm_generic")
        grid = ((n + 15) // 16, (m + 15) // 16)
        if grid[1] > _MAX_ROW_TILES:
            raise ValueError(f"a: {m} rows exceed the generic GPU kernel's grid")
        f(grid, (16, 16), (a, b, tables, c, _i32(has_c), _i32(m), _i32(n), _i32(k),
                           _i32(terms), _i32(frac), _i32(chunk), _i32(promoted), _i32(when),
                           _i32(order), _i32(fused), sa, _i32(sa.shape[0]), _i32(sa.shape[1]),
                           sb, _i32(sb.shape[0]), _i32(sb.shape[1]), _i32(bdiv), out))
        return out
    if not tiled:
        raise ValueError(f"kernel: the tiled GPU kernel does not cover mode {mode}, "
                         f"{terms} terms, {frac} fractional bits")
    t = terms if mode == FUSED else 32
    name = f"gemm_tiled<{mode}, {t}, {'true' if promoted else 'false'}>"
    f = _kernel(name)
    # rows in slices the grid can address; A goes in transposed, (K, rows)
    rows = _MAX_ROW_TILES * _BM
    tiles = -(-n // _BM) * -(-m // _BM)
    intervals = -(-k // chunk)
    if k_split is None:
        k_split = K_SPLIT
    per = k_groups(tiles, intervals, m, n, _sm_count()) \
        if promoted and k_split and m <= rows else 0
    if per:
        return _gemm_k_split(f, a, b, tables, c, has_c, frac, chunk, when, order, fused, sa,
                             sb, bdiv, out, per, intervals)
    none = cp.zeros(1, np.float32)
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        at = cp.ascontiguousarray(a[r0:r1].T)
        c_part = c[r0:r1] if has_c else c
        sa_part = sa[r0:r1] if sa.shape[0] > 1 else sa
        out_part = out[r0:r1]
        mm = r1 - r0
        grid = ((n + _BM - 1) // _BM, (mm + _BM - 1) // _BM)
        f(grid, (128,), (at, b, tables, cp.ascontiguousarray(c_part), _i32(has_c), _i32(mm),
                         _i32(n), _i32(k), _i32(frac), _i32(chunk), _i32(when), _i32(order),
                         _i32(fused), cp.ascontiguousarray(sa_part), _i32(sa_part.shape[0]),
                         _i32(sa_part.shape[1]), sb, _i32(sb.shape[0]), _i32(sb.shape[1]),
                         _i32(bdiv), out_part, none, _i32(0)))
    return out


def _gemm_k_split(f, a, b, tables, c, has_c, frac, chunk, when, order, fused, sa, sb, bdiv,
                  out, per, intervals):
    """gemm_tiled over K groups of `per` intervals (grid z; C enters group 0 only), then
    promote_parts in K order."""
    cp = _cupy()
    m, k = a.shape
    n = b.shape[1]
    parts = cp.empty((intervals, m, n), np.float32)
    sa, sb = cp.ascontiguousarray(sa), cp.ascontiguousarray(sb)
    grid = ((n + _BM - 1) // _BM, (m + _BM - 1) // _BM, -(-intervals // per))
    f(grid, (128,), (cp.ascontiguousarray(a.T), b, tables, cp.ascontiguousarray(c),
                     _i32(has_c), _i32(m), _i32(n), _i32(k), _i32(frac), _i32(chunk),
                     _i32(when), _i32(order), _i32(fused), sa, _i32(sa.shape[0]),
                     _i32(sa.shape[1]), sb, _i32(sb.shape[0]), _i32(sb.shape[1]), _i32(bdiv),
                     out, parts, _i32(per)))
    threads = 256
    _kernel("promote_parts")((-(-m * n // threads),), (threads,), (
        parts, _i32(intervals), _i32(m), _i32(n), _i32(when), _i32(order), _i32(fused), sa,
        _i32(sa.shape[0]), _i32(sa.shape[1]), sb, _i32(sb.shape[0]), _i32(sb.shape[1]),
        _i32(bdiv), out))
    return out


@functools.cache
def _sm_count() -> int:
    """The current GPU's multiprocessor count."""
    return int(_cupy().cuda.Device().attributes["MultiProcessorCount"])


def gemm_tiles(a, b, tav, tag, tbv, tbg, c, has_c, mode, terms, frac, chunk, promoted, when,
               order, fused, sa, sb, bdiv, out, *, kernel: str = "auto") -> None:
    """The numba engine's `gemm_tiles` on the GPU: same arguments, `out` filled in place."""
    cp = _cupy()
    m, n = out.shape
    tables = cp.asarray(np.concatenate([tav, tag, tbv, tbg]).astype(np.float32))
    d_c = cp.asarray(np.ascontiguousarray(c, np.float32)) if has_c else \
        cp.zeros((1, 1), np.float32)
    d_out = cp.empty((m, n), np.float32)
    gemm_device(cp.asarray(np.ascontiguousarray(a)), cp.asarray(np.ascontiguousarray(b)), tables,
                d_c, bool(has_c), mode, terms, frac, chunk, bool(promoted), when, order,
                bool(fused), cp.asarray(np.ascontiguousarray(sa, np.float32)),
                cp.asarray(np.ascontiguousarray(sb, np.float32)), bdiv, d_out, kernel=kernel)
    out[...] = d_out.get()
