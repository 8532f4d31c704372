"""The public FP8 GEMM: validates arguments, then runs the engine and the epilogue.

A GEMM is a chain of MMA steps along K (`fp8sim.mma`), with optional promotion of
the partial accumulator into FP32 every `promote` elements and one of three scaling
epilogues: DeepGEMM-style group scales applied with an fma at each promotion,
cuBLASLt's per-tensor alpha, or torch's row-wise scales.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import ml_dtypes
import numba
import numpy as np

from fp8sim.engine import _gemm_kernels as _k
from fp8sim.engine.mma import MMAStep
from fp8sim.engine.mma import preset as _preset
from fp8sim.formats.convert import as_codes
from fp8sim.formats.info import FormatInfo, decode_table

__all__ = ["gemm", "SCALINGS", "OUT_DTYPES", "ENGINES"]

SCALINGS = ("group", "tensor", "row")
OUT_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16),
              "float16": np.dtype(np.float16)}
_NAN32 = np.uint32(0x7FFFFFFF)


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    *,
    a_format: str | FormatInfo = "e4m3",
    b_format: str | FormatInfo = "e4m3",
    promote: int = 0,
    c: np.ndarray | None = None,
    scale_a: np.ndarray | float | None = None,
    scale_b: np.ndarray | float | None = None,
    scaling: str | None = None,
    out_dtype: str = "float32",
    preset: str | MMAStep = "hopper",
    engine: str = "cpu",
) -> np.ndarray:
    """D = A @ B as an H100 computes it with wgmma FP8 steps, bit for bit.

    Args:
        a: (M, K) uint8 FP8 codes, or an ml_dtypes float8 array (its dtype gives the format).
        b: (K, N) likewise.
        a_format, b_format: "e4m3" or "e5m2" (ml_dtypes names accepted).
        promote: 0 never promotes; N (a positive multiple of 32) adds the partial
            accumulator into an FP32 accumulator (round to nearest even) every N
            elements of K, and once more for a last, shorter chunk.
        c: float32 (M, N), the accumulator input of the first MMA step.
        scale_a, scale_b, scaling: "group" (scale_a (M, ceil(K/promote)), scale_b
            (ceil(K/promote), ceil(N/128)), fma at each promotion), "tensor" (two
            scalars, out = fl(acc * fl(scale_a * scale_b))) or "row" (scale_a (M, 1),
            scale_b (1, N), out = fl(fl(acc * scale_b[j]) * scale_a[i]), the order the
            H100 uses); None infers it from the shapes.
        out_dtype: "float32", "bfloat16" or "float16" (rounded to nearest even from float32;
            NaN is 0x7FFF in both 16-bit types, as cuBLASLt writes it).
        preset: the MMA step model, "hopper" (verified) or another `fp8sim.mma` preset.
        engine: "cpu" (numba, all cores) or "gpu" (CUDA kernels through CuPy on any NVIDIA
            GPU of compute capability >= 7.0, no FP8 hardware needed): the same bits.

    Returns:
        (M, N) array of out_dtype. NaN results are 0x7FFFFFFF in float32, as on the GPU.

    Raises:
        ValueError, TypeError: an argument is malformed; the message names it.
    """
    a, af = as_codes(a, a_format, arg="a", fmt_arg="a_format")
    b, bf = as_codes(b, b_format, arg="b", fmt_arg="b_format")
    step = _preset(preset)
    _check_engine(engine)
    if a.ndim != 2:
        raise ValueError(f"a: expected a 2-D (M, K) array, got shape {a.shape}")
    if b.ndim != 2:
        raise ValueError(f"b: expected a 2-D (K, N) array, got shape {b.shape}")
    m, k = a.shape
    if k < 1:
        raise ValueError(f"a: K must be at least 1, got shape {a.shape}")
    if b.shape[0] != k:
        raise ValueError(f"b: expected shape ({k}, N) to match a's K = {k}, got {b.shape}")
    n = b.shape[1]
    promote = _check_promote(promote, step)
    out_dt = _check_out_dtype(out_dtype)
    c32 = _check_c(c, m, n)
    kind = _infer_scaling(scaling, scale_a, scale_b, m, k, n, promote)
    group = kind == "group"
    sa = sb = np.zeros((1, 1), np.float32)
    if group:
        if step.exact:
            raise ValueError("scaling: the 'exact' preset is one float64 sum without "
                             "promotion, so group scaling does not apply; use 'ideal'")
        sa, sb = _check_group_scales(scale_a, scale_b, m, k, n, promote)
    elif kind == "tensor":
        with np.errstate(over="ignore", invalid="ignore"):
            alpha = np.float32(_f32_scalar(scale_a, "scale_a") * _f32_scalar(scale_b, "scale_b"))
    elif kind == "row":
        ra = _f32_array(scale_a, (m, 1), "scale_a")
        rb = _f32_array(scale_b, (1, n), "scale_b")

    out = np.empty((m, n), dtype=np.float32)
    if m and n:
        _run(a, b, af, bf, step, promote, c32, group, sa, sb, out, engine)
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "tensor":
            out = out * alpha
        elif kind == "row":
            out = (out * rb) * ra  # the H100 multiplies by scale_b first
    nan = np.isnan(out)
    out.view(np.uint32)[nan] = _NAN32
    if out_dt != out.dtype:
        with np.errstate(over="ignore"):
            out = out.astype(out_dt)
        out.view(np.uint16)[nan] = 0x7FFF  # cuBLASLt's bf16 and f16 NaN
    return out


def _run(a, b, af: FormatInfo, bf: FormatInfo, step: MMAStep, promote: int, c32, group, sa, sb,
         out, engine: str = "cpu") -> None:
    """Dispatches to the engine kernel for the step model."""
    k = a.shape[1]
    chunk = promote if promote > 0 else max(k, 1)
    has_c = c32 is not None
    c_arr = c32 if has_c else np.zeros((1, 1), np.float32)
    if step.fused:
        if step.align_rounding != step.result_rounding or step.zero_products_in_emax or \
                step.frac_bits is None or step.frac_bits > 28:
            raise ValueError(f"preset: {step.name} has no fast kernel (only truncating fused "
                             "steps with at most 28 fractional bits do); use "
                             "fp8sim.engine.reference.gemm")
        mode, frac, block = _k.FUSED, step.frac_bits, step.terms
    else:  # one product at a time: blocks of K only amortize the decoding
        mode, frac, block = (_k.EXACT if step.exact else _k.IDEAL), 13, 32
        if step.exact:  # one float64 sum: promotion does not apply
            chunk, promote = max(k, 1), 0
    tav, tag = _tables(af)
    tbv, tbg = _tables(bf)
    if engine == "gpu":
        from fp8sim.engine import _gpu

        # the epilogue as the engines' op-codes: group scales at each promotion or none
        if group:
            epi = (_gpu.WHEN_PROMOTION, 0, True, sa, sb, 128)
        else:
            one = np.ones((1, 1), np.float32)
            epi = (_gpu.WHEN_NONE, 0, False, one, one, _gpu.NO_COLUMN)
        _gpu.gemm_tiles(a, b, tav, tag, tbv, tbg, c_arr, has_c, mode, block, frac, chunk,
                        promote > 0, *epi, out)
        return
    with _threads_for(a.shape[0], b.shape[1]):
        _k.gemm_tiles(np.ascontiguousarray(a), np.ascontiguousarray(b), tav, tag, tbv, tbg,
                      c_arr, has_c, mode, block, frac, chunk, promote > 0, group, sa, sb, out)


@contextlib.contextmanager
def _threads_for(m: int, n: int) -> Iterator[None]:
    """Runs the engine on no more threads than the output has tiles.

    With fewer tiles than threads the idle threads only wait at the parallel loop's
    barrier, which costs milliseconds a call on a busy machine (7.8 ms instead of
    0.12 ms for a 64x64x64 GEMM). The bits never depend on the thread count.
    """
    threads = numba.get_num_threads()
    tiles = -(-m // _k.IB) * -(-n // _k.JB)
    if tiles >= threads:
        yield
        return
    numba.set_num_threads(max(1, tiles))
    try:
        yield
    finally:
        numba.set_num_threads(threads)


@functools.cache
def _tables(fmt: FormatInfo) -> tuple[np.ndarray, np.ndarray]:
    """(values, 2**exponent) of all 256 codes; the exponent table is 0 for zero and non-finite."""
    values = decode_table(fmt)
    pow2 = np.zeros(256, dtype=np.float32)
    for code, v in enumerate(values):
        if v != 0 and np.isfinite(v):
            e = max(math.frexp(float(v))[1] - 1, fmt.emin)
            pow2[code] = np.float32(2.0**e)
    pow2.setflags(write=False)
    return values, pow2


ENGINES = ("cpu", "gpu")


def _check_engine(engine) -> None:
    """Accepts "cpu" or "gpu" (the latter only where CuPy finds a CUDA GPU)."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "gpu":
        from fp8sim.engine import _gpu

        _gpu.check()


def _check_promote(promote, step: MMAStep) -> int:
    if isinstance(promote, bool) or not isinstance(promote, (int, np.integer)):
        raise TypeError(f"promote: expected an int (0 or a multiple of 32), got {promote!r}")
    promote = int(promote)
    if promote < 0 or promote % 32 != 0:
        raise ValueError(f"promote: expected 0 (never) or a positive multiple of 32, got {promote}")
    if promote and promote % step.terms != 0:
        raise ValueError(f"promote: {promote} is not a multiple of the {step.name} step's "
                         f"{step.terms} terms")
    return promote


def _check_out_dtype(out_dtype) -> np.dtype:
    if isinstance(out_dtype, str) and out_dtype in OUT_DTYPES:
        return OUT_DTYPES[out_dtype]
    try:
        dt = np.dtype(out_dtype)
    except TypeError:
        dt = None
    if dt is not None and dt in OUT_DTYPES.values():
        return dt
    raise ValueError(f"out_dtype: expected one of {', '.join(OUT_DTYPES)}, got {out_dtype!r}")


def _check_c(c, m: int, n: int) -> np.ndarray | None:
    if c is None:
        return None
    arr = np.asarray(c)
    if arr.dtype in (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)):
        arr = arr.astype(np.float32)
    if arr.dtype != np.float32:
        raise TypeError(f"c: expected a float32 array, got dtype {arr.dtype} "
                        "(convert it with .astype(np.float32) if rounding it is intended)")
    if arr.shape != (m, n):
        raise ValueError(f"c: expected shape ({m}, {n}), got {arr.shape}")
    return np.ascontiguousarray(arr)


def _infer_scaling(scaling, scale_a, scale_b, m, k, n, promote) -> str | None:
    """The scaling kind asked for, or inferred from the scale shapes."""
    if scaling is not None and scaling not in SCALINGS:
        raise ValueError(f"scaling: expected one of {', '.join(SCALINGS)} or None, got {scaling!r}")
    if scale_a is None and scale_b is None:
        if scaling is not None:
            raise ValueError(f"scale_a: scaling={scaling!r} needs scale_a and scale_b")
        return None
    if scale_a is None or scale_b is None:
        missing = "scale_a" if scale_a is None else "scale_b"
        raise ValueError(f"{missing}: scale_a and scale_b must be given together")
    if scaling is not None:
        return scaling
    sa, sb = np.shape(scale_a), np.shape(scale_b)
    fits = []
    if sa in ((), (1,)) and sb in ((), (1,)):
        fits.append("tensor")
    if sa == (m, 1) and sb == (1, n):
        fits.append("row")
    if promote > 0:
        g = -(-k // promote)
        if sa == (m, g) and sb == (g, -(-n // 128)):
            fits.append("group")
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise ValueError(
            f"scale_a: shapes {sa} and {sb} fit no scaling: expected scalars (tensor), "
            f"({m}, 1) and (1, {n}) (row), or ({m}, ceil(K/promote)) and "
            f"(ceil(K/promote), {-(-n // 128)}) with promote > 0 (group)")
    raise ValueError(f"scaling: shapes {sa} and {sb} are ambiguous ({' or '.join(fits)}); "
                     "pass scaling= explicitly")


def _f32_array(x, shape: tuple, arg: str) -> np.ndarray:
    """x as float32 of exactly `shape`; float64 values must be exactly float32 already."""
    arr = np.asarray(x)
    if arr.shape != shape:
        raise ValueError(f"{arg}: expected shape {shape}, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{arg}: expected float32 scales, got dtype {arr.dtype}")
    out = arr.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        inexact = (out.astype(arr.dtype) != arr) & ~np.isnan(arr)
    if np.any(inexact):
        raise ValueError(f"{arg}: values are not exactly representable in float32")
    return np.ascontiguousarray(out)


def _f32_scalar(x, arg: str) -> np.float32:
    """A tensor scale: a scalar or a one-element array, exactly float32."""
    arr = np.asarray(x)
    if arr.size != 1:
        raise ValueError(f"{arg}: tensor scaling expects a scalar, got shape {arr.shape}")
    return _f32_array(arr.reshape(()), (), arg)[()]


def _check_group_scales(scale_a, scale_b, m, k, n, promote):
    if promote <= 0:
        raise ValueError("promote: group scaling applies scales at each promotion; "
                         "it needs promote > 0")
    g = -(-k // promote)
    sa = _f32_array(scale_a, (m, g), "scale_a")
    sb = _f32_array(scale_b, (g, -(-n // 128)), "scale_b")
    return sa, sb
