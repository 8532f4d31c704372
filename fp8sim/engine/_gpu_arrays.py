"""`fp8sim.gemm(..., engine="gpu")` on device arrays (CuPy, torch CUDA tensors): no host copies.

`fp8sim.gemm` hands its call here when an operand already lives on the GPU
(`is_device`): the operands, C and the scales stay there, the engine's kernels
(`fp8sim.engine._gpu`) run on them, and the result comes back as an array of the same
kind: a CuPy array for CuPy inputs, a torch CUDA tensor (through DLPack, zero copy) when
any input is a torch tensor. float32 and float16 outputs have those dtypes; bfloat16
outputs are a torch.bfloat16 tensor, or for CuPy (which has no bfloat16) a uint16 array of
the bfloat16 bits. The checks are `fp8sim.gemm`'s; values that would need reading back
(float64 scales exact in float32) are not checked: device scales must be float32.
"""

from __future__ import annotations

import numpy as np

from fp8sim._torch_arrays import is_torch

__all__ = ["is_device", "is_torch", "to_cupy", "from_cupy", "gemm", "bf16_bits",
           "refuse_on_cpu"]

_TORCH_FP8 = {"float8_e4m3fn": "e4m3", "float8_e5m2": "e5m2"}


def is_device(*xs) -> bool:
    """True when any argument is a GPU array (CuPy, or a torch tensor on CUDA)."""
    for x in xs:
        if x is None:
            continue
        if is_torch(x):
            if getattr(x, "is_cuda", False):
                return True
        elif hasattr(x, "__cuda_array_interface__"):
            return True
    return False


def refuse_on_cpu(**arrays) -> None:
    """TypeError naming the first CuPy array: engine="cpu" reads host memory only.

    (torch CUDA tensors are copied to the host by `as_codes`, as before.)
    """
    for arg, x in arrays.items():
        if x is not None and not is_torch(x) and hasattr(x, "__cuda_array_interface__"):
            raise TypeError(f"{arg}: a GPU array needs engine='gpu' (engine='cpu' takes host "
                            "arrays; copy it with .get() for the CPU engine)")


def to_cupy(x, arg: str):
    """(CuPy view of a device array, format from a torch float8 dtype or None); no copy."""
    from fp8sim.engine._gpu import _cupy

    cp = _cupy()
    fmt = None
    if is_torch(x):
        if not x.is_cuda:
            raise TypeError(f"{arg}: expected a CUDA tensor to go with the other device "
                            f"arrays, got one on {x.device}")
        name = str(x.dtype).removeprefix("torch.")
        if name in _TORCH_FP8:
            import torch

            fmt, x = _TORCH_FP8[name], x.view(torch.uint8)
        elif name == "bfloat16":
            import torch

            x = x.view(torch.int16)
        return cp.from_dlpack(x.detach()), fmt
    if isinstance(x, (np.ndarray, float, int, np.floating)) or not hasattr(
            x, "__cuda_array_interface__"):
        return cp.asarray(x), None  # a host scale or C: one small copy
    return cp.asarray(x), None


def from_cupy(x, like_torch: bool, *, bf16: bool = False):
    """A CuPy result as a torch CUDA tensor (zero copy) when like_torch, else as is."""
    if not like_torch:
        return x
    import torch

    t = torch.from_dlpack(x.view(np.int16) if bf16 else x)
    return t.view(torch.bfloat16) if bf16 else t


def gemm(a, b, *, a_format, b_format, promote, c, scale_a, scale_b, scaling, out_dtype,
         preset):
    """`fp8sim.gemm` for device arrays (see the module docstring); same arguments."""
    from fp8sim.engine import _gpu
    from fp8sim.engine import gemm as g
    from fp8sim.engine._gemm_kernels import EXACT, FUSED, IDEAL
    from fp8sim.formats.info import format_info

    cp = _gpu._cupy()
    like_torch = any(is_torch(x) for x in (a, b, c, scale_a, scale_b))
    da, fa = _codes(a, a_format, "a", "a_format", format_info)
    db, fb = _codes(b, b_format, "b", "b_format", format_info)
    step = g._preset(preset)
    m, k, n = g.check_shapes(da.shape, db.shape)
    g._check_operand(fa, "a_format")
    g._check_operand(fb, "b_format")
    promote = g.check_promote(promote, step)
    out_dt = g.check_out_dtype(out_dtype)
    has_c = c is not None
    if has_c:
        dc, _ = to_cupy(c, "c")
        if dc.dtype != np.float32:
            raise TypeError(f"c: expected a float32 array, got dtype {dc.dtype}")
        if dc.shape != (m, n):
            raise ValueError(f"c: expected shape ({m}, {n}), got {dc.shape}")
        dc = cp.ascontiguousarray(dc)
    else:
        dc = cp.zeros((1, 1), np.float32)
    ep = g.resolve_scaling(scaling, scale_a, scale_b, m, k, n, promote)
    sa = sb = None
    if ep is not None:
        if ep.when == "promotion" and step.exact:
            raise ValueError("scaling: the 'exact' preset has no promotion, so "
                             f"{ep.name!r} scaling does not apply; use 'ideal'")
        sa, sb = _device_scales(ep, scale_a, scale_b, m, k, n, promote)
    when, order, fused, sa2, sb2, bdiv = _kernel_args(ep, sa, sb, cp)
    out = cp.empty((m, n), np.float32)
    if m and n:
        chunk = promote if promote > 0 else k
        if step.fused:
            if step.align_rounding != step.result_rounding or step.zero_products_in_emax or \
                    step.frac_bits is None or step.frac_bits > 28:
                raise ValueError(f"preset: {step.name} has no fast kernel")
            mode, frac, terms = FUSED, step.frac_bits, step.terms
        else:
            mode, frac, terms = (EXACT if step.exact else IDEAL), 13, 32
            if step.exact:
                chunk, promote = k, 0
        tables = _device_tables(fa, fb)
        _gpu.gemm_device(cp.ascontiguousarray(da), cp.ascontiguousarray(db), tables, dc,
                         has_c, mode, terms, frac, chunk, promote > 0, when, order, fused,
                         sa2, sb2, bdiv, out)
    nan = cp.isnan(out)
    out = cp.where(nan, np.uint32(0x7FFFFFFF).view(np.float32), out)
    if out_dt == np.float32:
        return from_cupy(out, like_torch)
    if out_dt == np.float16:
        h = out.astype(np.float16)
        h = cp.where(nan, np.uint16(0x7FFF).view(np.float16), h)
        return from_cupy(h, like_torch)
    return from_cupy(bf16_bits(out, cp), like_torch, bf16=True)


def _codes(x, fmt, arg: str, fmt_arg: str, format_info):
    """(CuPy uint8 codes, FormatInfo) of a device operand, as `as_codes` for host arrays."""
    d, from_dtype = to_cupy(x, arg)
    if from_dtype is not None:
        info = format_info(from_dtype)
        if fmt is not None and format_info(fmt, arg=fmt_arg) != info:
            raise ValueError(f"{arg}: tensor dtype float8 {info.name} contradicts "
                             f"{fmt_arg}={fmt!r}")
        return d, info
    if d.dtype != np.uint8:
        raise TypeError(f"{arg}: expected uint8 FP8 codes (or a torch float8 tensor) on the "
                        f"device, got dtype {d.dtype}")
    return d, format_info("e4m3" if fmt is None else fmt, arg=fmt_arg)


def _device_scales(ep, scale_a, scale_b, m, k, n, promote):
    """scale_a and scale_b as float32 CuPy arrays of the epilogue's shapes, or a clear error."""
    from fp8sim.engine._gpu import _cupy
    from fp8sim.engine.gemm import exact_float32

    cp = _cupy()
    if ep.k_grouped and promote <= 0 or ep.when == "promotion" and promote <= 0:
        raise ValueError(f"promote: {ep.name!r} scaling applies its scales at each "
                         "promotion; it needs promote > 0")
    want_a, want_b = ep.scale_shapes(m, k, n, promote)
    out = []
    for arg, x, want in (("scale_a", scale_a, want_a), ("scale_b", scale_b, want_b)):
        if want is None:
            if x is not None:
                raise ValueError(f"{arg}: {ep.name!r} scaling has no {arg}; pass None")
            out.append(None)
            continue
        if x is None:
            raise ValueError(f"{arg}: {ep.name!r} scaling needs {arg}")
        d, _ = to_cupy(x, arg)
        if want == ():
            if d.size != 1:
                raise ValueError(f"{arg}: tensor scaling expects a scalar, got shape {d.shape}")
            d = d.reshape(1, 1)
        elif d.shape != want:
            raise ValueError(f"{arg}: {ep.name!r} scaling expects shape {want}, got {d.shape}")
        if d.dtype != np.float32:
            if is_device(x):
                raise TypeError(f"{arg}: device scales must be float32, got {d.dtype}")
            f32 = exact_float32(np.asarray(x), arg)
            d = cp.asarray(f32.reshape(d.shape))
        out.append(cp.ascontiguousarray(d))
    return out[0], out[1]


def _kernel_args(ep, sa, sb, cp):
    """`fp8sim.engine.epilogue.kernel_args` for device scales (already float32, 2-D)."""
    from fp8sim.engine.epilogue import (
        _NO_COLUMN,
        ORDER_PRODUCT,
        ORDERS,
        WHEN_END,
        WHEN_NONE,
        WHEN_PROMOTION,
    )

    one = cp.ones((1, 1), np.float32)
    if ep is None:
        return WHEN_NONE, ORDER_PRODUCT, False, one, one, _NO_COLUMN
    sa2 = one if sa is None else sa
    sb2 = one if sb is None else sb
    divisor = {"none": _NO_COLUMN, "tensor": _NO_COLUMN, "column": 1, "group-column": 1,
               "block": ep.block_n}[ep.scale_b]
    when = WHEN_PROMOTION if ep.when == "promotion" else WHEN_END
    return when, ORDERS.index(ep.order), ep.fused, sa2, sb2, divisor


def bf16_bits(x, xp, *, nan: str = "cublas"):
    """uint16 bfloat16 bits of float32 x on array module xp, rounded to nearest even.

    nan: "cublas" (0x7FFF, as `fp8sim.gemm` and cuBLASLt write it) or "quiet" (the sign
    and 0x7FC0, as ml_dtypes' astype converts float32 NaN).
    """
    u32 = np.uint32
    x = xp.ascontiguousarray(x, dtype=np.float32)
    bits = x.view(u32)
    r = (bits + u32(0x7FFF) + ((bits >> u32(16)) & u32(1))) >> u32(16)
    nan_bits = u32(0x7FFF) if nan == "cublas" else \
        ((bits >> u32(16)) & u32(0x8000)) | u32(0x7FC0)
    return xp.where(x != x, nan_bits, r).astype(np.uint16)


_TABLES: dict = {}


def _device_tables(fa, fb):
    """The (1024,) float32 decode tables of the two formats on the device (cached)."""
    from fp8sim.engine._gpu import _cupy
    from fp8sim.engine.gemm import _tables

    key = (fa.name, fb.name)
    if key not in _TABLES:
        tav, tag = _tables(fa)
        tbv, tbg = _tables(fb)
        _TABLES[key] = _cupy().asarray(np.concatenate([tav, tag, tbv, tbg]).astype(np.float32))
    return _TABLES[key]
