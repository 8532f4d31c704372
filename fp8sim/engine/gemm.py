"""The public FP8 GEMM: validates arguments, then runs the engine and the epilogue.

A GEMM is a chain of MMA steps along K (`fp8sim.engine.mma`), with optional promotion of
the partial accumulator into FP32 every `promote` elements and a scaling epilogue
(`fp8sim.engine.epilogue`): scales applied at each promotion (DeepGEMM, cuBLASLt and
torchao blockwise) or once at the end (cuBLASLt's per-tensor alpha, torch's row-wise scales).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence

import ml_dtypes
import numba
import numpy as np

from fp8sim.engine import _gemm_kernels as _k
from fp8sim.engine import _gpu_arrays, budget
from fp8sim.engine.epilogue import (
    EPILOGUES,
    INFERRED,
    Epilogue,
    as_candidates,
    fitting,
    kernel_args,
    shape_text,
)
from fp8sim.engine.mma import MMAStep
from fp8sim.engine.mma import preset as _preset
from fp8sim.formats.convert import as_codes
from fp8sim.formats.info import FormatInfo, decode_table

__all__ = ["gemm", "SCALINGS", "OUT_DTYPES", "ENGINES"]

SCALINGS = tuple(EPILOGUES)
FAST_MAX_FRAC_BITS = 28
"""The widest accumulator the fast kernels model (wider steps: fp8sim.engine.reference)."""
OUT_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16),
              "float16": np.dtype(np.float16)}
_NAN32 = np.uint32(0x7FFFFFFF)


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    *,
    a_format: str | FormatInfo | None = None,
    b_format: str | FormatInfo | None = None,
    promote: int = 0,
    c: np.ndarray | None = None,
    scale_a: np.ndarray | float | None = None,
    scale_b: np.ndarray | float | None = None,
    scaling: str | Epilogue | Sequence[Epilogue] | None = None,
    out_dtype: str = "float32",
    preset: str | MMAStep = "hopper",
    engine: str = "cpu",
) -> np.ndarray:
    """D = A @ B as an H100 computes it with wgmma FP8 steps, bit for bit.

    Args:
        a: (M, K) uint8 FP8 codes, or an ml_dtypes float8 array (its dtype gives the format).
        b: (K, N) likewise.
        a_format, b_format: "e4m3" or "e5m2" (ml_dtypes names accepted); None (the
            default) takes a float8 array's own format, else "e4m3". A format that
            contradicts a float8 array's dtype, and formats wgmma does not take (E8M0, FNUZ),
            raise ValueError.
        promote: 0 never promotes; N (a positive multiple of 32) adds the partial
            accumulator into an FP32 accumulator (round to nearest even) every N
            elements of K, and once more for a last, shorter chunk.
        c: float32 (M, N), the accumulator input of the first MMA step.
        scale_a, scale_b, scaling: the scaling epilogue (`fp8sim.engine.epilogue`), an
            `Epilogue` or a name: "group" (scale_a (M, G), G = ceil(K/promote), scale_b
            (G, ceil(N/128)), acc = fma(p, fl(sa*sb), acc) at each promotion: DeepGEMM,
            cuBLASLt), "group-a-first" (the same scales, acc = fma(fl(p*sa), sb, acc): torchao's
            Triton), "group-column" (scale_b (G, N), 128x1 tiles, acc = fma(fl(p*sa), sb, acc)),
            "tensor" (two scalars, out = fl(acc * fl(scale_a * scale_b))) or "row" (scale_a
            (M, 1), scale_b (1, N), out = fl(fl(acc * scale_b[j]) * scale_a[i]), the order the
            H100 uses). A sequence of epilogues takes the first whose shapes fit; None infers
            tensor, row, group or group-column from the shapes.
        out_dtype: "float32", "bfloat16" or "float16" (rounded to nearest even from float32;
            NaN is 0x7FFF in both 16-bit types, as cuBLASLt writes it).
        preset: the MMA step model, "hopper" (verified) or another preset of
            `fp8sim.PRESETS` (`fp8sim.engine.mma`).
        engine: "cpu" (numba, all cores) or "gpu" (CUDA kernels through CuPy on any NVIDIA
            GPU of compute capability >= 7.0, no FP8 hardware needed): the same bits. With
            "gpu", device arrays (CuPy, torch CUDA tensors) stay on the device and the
            result is one too (`fp8sim.engine._gpu_arrays`).

    Returns:
        (M, N) array of out_dtype. NaN results are 0x7FFFFFFF in float32, as on the GPU.

    Raises:
        ValueError, TypeError: an argument is malformed; the message names it.
    """
    if _gpu_arrays.is_device(a, b, c, scale_a, scale_b):
        _check_engine(engine)
        if engine == "gpu":
            return _gpu_arrays.gemm(a, b, a_format=a_format, b_format=b_format,
                                    promote=promote, c=c, scale_a=scale_a, scale_b=scale_b,
                                    scaling=scaling, out_dtype=out_dtype, preset=preset)
        _gpu_arrays.refuse_on_cpu(a=a, b=b, c=c, scale_a=scale_a, scale_b=scale_b)
    a, af = as_codes(a, a_format, arg="a", fmt_arg="a_format")
    b, bf = as_codes(b, b_format, arg="b", fmt_arg="b_format")
    step = _preset(preset)
    _check_engine(engine)
    m, k, n = check_shapes(a.shape, b.shape)
    _check_operand(af, "a_format")
    _check_operand(bf, "b_format")
    need = budget.gemm_bytes(m, n, k, copies=_copy_bytes(a, b))
    budget.check_large(need, f"gemm: M={m} N={n} K={k}",  # (identify runs hundreds)
                       hint="split the output into row blocks")
    promote = check_promote(promote, step)
    out_dt = check_out_dtype(out_dtype)
    c32 = _check_c(c, m, n)
    ep = resolve_scaling(scaling, scale_a, scale_b, m, k, n, promote)
    sa = sb = None
    if ep is not None:
        if ep.when == "promotion" and step.exact:
            raise ValueError(f"scaling: the 'exact' preset is one float64 sum without promotion, "
                             f"so {ep.name!r} scaling (at each promotion) does not apply; use "
                             "'ideal'")
        sa, sb = check_scales(ep, scale_a, scale_b, m, k, n, promote)

    out = np.empty((m, n), dtype=np.float32)
    if m and n:
        _run(a, b, af, bf, step, promote, c32, kernel_args(ep, sa, sb), out, engine)
    nan = np.isnan(out)
    out.view(np.uint32)[nan] = _NAN32
    if out_dt != out.dtype:
        with np.errstate(over="ignore"):
            out = out.astype(out_dt)
        out.view(np.uint16)[nan] = 0x7FFF  # cuBLASLt's bf16 and f16 NaN
    return out


def _run(a, b, af: FormatInfo, bf: FormatInfo, step: MMAStep, promote: int, c32, epi: tuple,
         out, engine: str = "cpu") -> None:
    """Dispatches to the engine kernel for the step model."""
    k = a.shape[1]
    # an interval of K or more promotes once, at the end: the engines count in int32/int64
    chunk = min(promote, k) if promote > 0 else max(k, 1)
    has_c = c32 is not None
    c_arr = c32 if has_c else np.zeros((1, 1), np.float32)
    if step.fused:
        if step.align_rounding != step.result_rounding or step.zero_products_in_emax or \
                step.frac_bits is None or step.frac_bits > FAST_MAX_FRAC_BITS:
            raise ValueError(f"preset: {step.name} has no fast kernel (only truncating fused "
                             f"steps with at most {FAST_MAX_FRAC_BITS} fractional bits do); use "
                             "fp8sim.engine.reference.gemm")
        mode, frac, block = _k.FUSED, step.frac_bits, step.terms
    else:  # one product at a time: blocks of K only amortize the decoding
        mode, frac, block = (_k.EXACT if step.exact else _k.IDEAL), 13, 32
        if step.exact:  # one float64 sum: promotion does not apply
            chunk, promote = max(k, 1), 0
    tav, tag = _tables(af)
    tbv, tbg = _tables(bf)
    if engine == "gpu":  # the same op-codes drive the GPU kernels' epilogue
        from fp8sim.engine import _gpu

        _gpu.gemm_tiles(a, b, tav, tag, tbv, tbg, c_arr, has_c, mode, block, frac, chunk,
                        promote > 0, *epi, out)
        return
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    m, n = out.shape
    kind = "fused" if step.fused else "exact" if step.exact else "sequential"
    when, order, fused, sa, sb, bdiv = epi
    chunks = budget.row_chunks(m, n, k, kind=kind, threads=numba.get_num_threads(), tile=_k.IB)
    if sa.shape[0] not in (1, m):  # scales by blocks of rows: not cut (none such yet)
        chunks = [(0, m)]
    with _threads_for(m, n), budget.tracking(m, "fp8sim.gemm") as tick:
        for r0, r1 in chunks:  # row blocks only report progress: each output is independent
            _k.gemm_tiles(a[r0:r1], b, tav, tag, tbv, tbg, c_arr[r0:r1] if has_c else c_arr,
                          has_c, mode, block, frac, chunk, promote > 0, when, order, fused,
                          sa[r0:r1] if sa.shape[0] > 1 else sa, sb, bdiv, out[r0:r1])
            tick(r1)


def _check_operand(fmt: FormatInfo, arg: str) -> None:
    """Refuses formats wgmma cannot take as an operand (E8M0 scales, AMD's FNUZ formats)."""
    if fmt.name in ("e4m3", "e5m2"):
        return
    if not fmt.signed:
        raise ValueError(f"{arg}: {fmt.name} is a scale format (powers of two, no sign), not "
                         "an FP8 operand; operands are e4m3 or e5m2 (E8M0 scales go in "
                         "scale_a/scale_b as values)")
    raise ValueError(f"{arg}: {fmt.name} is not an operand format of Hopper's FP8 wgmma; "
                     "expected e4m3 or e5m2")


def _copy_bytes(a: np.ndarray, b: np.ndarray) -> int:
    """Bytes of the contiguous copies the engine makes of non-contiguous inputs."""
    return sum(x.nbytes for x in (a, b) if not x.flags.c_contiguous)


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


def check_promote(promote, step: MMAStep) -> int:
    """promote as an int: 0 (never) or a positive multiple of 32 and of the step's terms."""
    if isinstance(promote, bool) or not isinstance(promote, (int, np.integer)):
        raise TypeError(f"promote: expected an int (0 or a multiple of 32), got {promote!r}")
    promote = int(promote)
    if promote < 0 or promote % 32 != 0:
        raise ValueError(f"promote: expected 0 (never) or a positive multiple of 32, got {promote}")
    if promote and promote % step.terms != 0:
        raise ValueError(f"promote: {promote} is not a multiple of the {step.name} step's "
                         f"{step.terms} terms")
    return promote


def check_out_dtype(out_dtype) -> np.dtype:
    """The numpy dtype of an out_dtype name (or dtype) in OUT_DTYPES; ValueError naming it."""
    if isinstance(out_dtype, str) and out_dtype in OUT_DTYPES:
        return OUT_DTYPES[out_dtype]
    try:
        dt = np.dtype(out_dtype)
    except (TypeError, ValueError):
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



def check_shapes(a_shape: tuple, b_shape: tuple) -> tuple[int, int, int]:
    """(M, K, N) of a (M, K) x (K, N) GEMM, K >= 1; ValueError naming a or b otherwise."""
    if len(a_shape) != 2:
        raise ValueError(f"a: expected a 2-D (M, K) array, got shape {tuple(a_shape)}")
    if len(b_shape) != 2:
        raise ValueError(f"b: expected a 2-D (K, N) array, got shape {tuple(b_shape)}")
    m, k = a_shape
    if k < 1:
        raise ValueError(f"a: K must be at least 1, got shape {tuple(a_shape)}")
    if b_shape[0] != k:
        raise ValueError(f"b: expected shape ({k}, N) to match a's K = {k}, got "
                         f"{tuple(b_shape)}")
    return int(m), int(k), int(b_shape[1])

def resolve_scaling(scaling, scale_a, scale_b, m, k, n, promote) -> Epilogue | None:
    """The epilogue asked for (the one of several whose shapes fit), or inferred from shapes;
    shapes that fit two (a kernel's 128x128 and 128x1 layouts of scale_b at N = 1) are a
    ValueError asking for scaling=, never a silent pick of one arithmetic."""
    for arg, x in (("scale_a", scale_a), ("scale_b", scale_b)):
        try:
            np.shape(x)
        except ValueError:  # numpy's "inhomogeneous shape"
            raise ValueError(f"{arg}: expected an array of scales (a scalar, a row, a column "
                             "or a grid), got a ragged sequence") from None
    candidates = as_candidates(scaling)
    if scale_a is None and scale_b is None:
        if candidates is None:
            return None
        unscaled = [ep for ep in candidates if ep.scale_a == ep.scale_b == "none"]
        if not unscaled:
            raise ValueError(f"scale_a: scaling={_name(scaling)} needs scale_a and scale_b")
        return unscaled[0]
    if (scale_a is None or scale_b is None) and candidates is None:
        missing = "scale_a" if scale_a is None else "scale_b"
        raise ValueError(f"{missing}: scale_a and scale_b must be given together")
    if candidates is not None and len(candidates) == 1:
        return candidates[0]  # its shapes are checked with messages of their own
    pool = INFERRED if candidates is None else candidates
    fits = fitting(pool, scale_a, scale_b, m, k, n, promote)
    if len(fits) == 1:
        return fits[0]
    sa, sb = np.shape(scale_a), np.shape(scale_b)
    if not fits:
        need = "; ".join(f"{ep.name}: {shape_text(ep, m, k, n, promote)}" for ep in pool
                         if promote > 0 or not ep.k_grouped) or "nothing without promotion"
        extra = "" if promote > 0 or not any(ep.k_grouped for ep in pool) else \
            " (scales per K group also need promote > 0)"
        raise ValueError(f"scale_a: shapes {sa} and {sb} fit no scaling; expected {need}{extra}")
    raise ValueError(f"scaling: shapes {sa} and {sb} are ambiguous "
                     f"({' or '.join(ep.name for ep in fits)}); pass scaling= explicitly")


def _name(scaling) -> str:
    """The scaling argument in an error message."""
    if isinstance(scaling, Epilogue):
        return repr(scaling.name)
    if isinstance(scaling, str):
        return repr(scaling)
    return "[" + ", ".join(repr(getattr(s, "name", s)) for s in scaling) + "]"


def check_scales(ep: Epilogue, scale_a, scale_b, m, k, n, promote):
    """scale_a and scale_b as float32 arrays of the epilogue's shapes, or a clear error."""
    if ep.k_grouped and promote <= 0:
        raise ValueError(f"promote: {ep.name!r} scaling applies scales per K group at each "
                         "promotion; it needs promote > 0")
    if ep.when == "promotion" and promote <= 0:
        raise ValueError(f"promote: {ep.name!r} scaling applies its scales at each promotion; "
                         "it needs promote > 0")
    want_a, want_b = ep.scale_shapes(m, k, n, promote)
    out = []
    for arg, x, want, gran in (("scale_a", scale_a, want_a, ep.scale_a),
                               ("scale_b", scale_b, want_b, ep.scale_b)):
        if want is None:
            if x is not None:
                raise ValueError(f"{arg}: {ep.name!r} scaling has no {arg} (granularity "
                                 f"'none'); pass None, got shape {np.shape(x)}")
            out.append(None)
        elif x is None:
            raise ValueError(f"{arg}: {ep.name!r} scaling needs {arg} ({gran} scales)")
        elif want == ():
            out.append(_f32_scalar(x, arg))
        else:
            if np.shape(x) != want:
                hint = _hint(arg, np.shape(x), ep, m, k, n, promote)
                raise ValueError(f"{arg}: {ep.name!r} scaling ({gran} scales) expects shape "
                                 f"{want}, got {np.shape(x)}{hint}")
            out.append(_f32_array(x, want, arg))
    return out[0], out[1]


def _hint(arg, shape, ep: Epilogue, m, k, n, promote) -> str:
    """"; (G, N) is 'group-column' scaling" where another named epilogue takes that shape."""
    others = [o.name for o in EPILOGUES.values() if o.key != ep.key and
              o.scale_shapes(m, k, n, promote)[arg == "scale_b"] == tuple(shape) and
              (not o.k_grouped or promote > 0)]
    return f" ({shape} fits scaling={others[0]!r})" if others else ""


def _f32_array(x, shape: tuple, arg: str) -> np.ndarray:
    """x as float32 of exactly `shape`; float64 values must be exactly float32 already."""
    arr = np.asarray(x)
    if arr.shape != shape:
        raise ValueError(f"{arg}: expected shape {shape}, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{arg}: expected float32 scales, got dtype {arr.dtype}")
    return np.ascontiguousarray(exact_float32(arr, arg))


def exact_float32(arr: np.ndarray, arg: str) -> np.ndarray:
    """A float array as float32, refusing values float32 would round (the GPU only ever
    sees float32 scales: rounding one silently would simulate another scale)."""
    out = arr.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        inexact = (out.astype(arr.dtype) != arr) & ~np.isnan(arr)
    if np.any(inexact):
        first = arr.reshape(-1)[np.flatnonzero(inexact.reshape(-1))[0]]
        raise ValueError(f"{arg}: {float(first)!r} ({arr.dtype}) is not exactly representable "
                         f"in float32 (it rounds to {float(np.float32(first))!r}); pass float32 "
                         "scales, e.g. np.float32(s), as the GPU receives them")
    return out


def _f32_scalar(x, arg: str) -> np.float32:
    """A tensor scale: a scalar or a one-element array, exactly float32."""
    arr = np.asarray(x)
    if arr.size != 1:
        raise ValueError(f"{arg}: tensor scaling expects a scalar, got shape {arr.shape}")
    return _f32_array(arr.reshape(()), (), arg)[()]
