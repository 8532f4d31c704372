"""One FP8 Linear layer under a recipe, on the GPU: casts, GEMMs and epilogues stay on the device.

`fp8sim.linear` (``recipes/layers.py``) for device arrays: the same `LinearRecipe`
data, the casts of `fp8sim.recipes.gpu_casts` (bit-equal to the CPU casts) and the GPU
engine on device arrays (`fp8sim.gemm(..., engine="gpu")`). Every function takes the
array module `xp`: CuPy on the GPU; numpy runs the same code on the CPU engine, which is
how the tests check it against `fp8sim.linear` without a GPU. Values are carried as
float32 arrays holding bfloat16 values (exact), outputs as uint16 bfloat16 bits.
`forward_torch` / `backward_torch` are what `Float8SimLinear(..., engine="gpu")` runs.
"""

from __future__ import annotations

import numpy as np

from fp8sim.engine._gpu_arrays import bf16_bits, from_cupy, to_cupy
from fp8sim.engine.kernel import kernel as _kernel
from fp8sim.recipes.gpu_casts import bf16_values, quantize
from fp8sim.recipes.recipe import LinearGemm, LinearRecipe

__all__ = ["run_gemm", "linear_forward", "linear_backward", "forward_torch", "backward_torch"]


def run_gemm(g: LinearGemm, a, b, xp):
    """uint16 bfloat16 bits of one recipe GEMM of float32 (bf16-valued) A (M, K), B (K, N)."""
    if g.high_precision:
        raise ValueError(f"kernel: {g.kernel!r} (a GEMM kept in bfloat16) has no GPU port; "
                         "use engine='cpu' for this recipe")
    kern = _kernel(g.kernel)
    ac, sa = quantize(a, g.a.fmt, block=g.a.resolve(a.shape), pow2_scale=g.a.pow2_scale,
                      convention=g.a.convention, xp=xp, arg="a")
    bc, sb = quantize(b, g.b.fmt, block=g.b.resolve(b.shape), pow2_scale=g.b.pow2_scale,
                      convention=g.b.convention, xp=xp, arg="b")
    m, n = ac.shape[0], bc.shape[1]
    formats = {"a_format": g.a.fmt, "b_format": g.b.fmt, "out_dtype": g.out_dtype}
    if g.scales == "after":
        one = np.float32(1)
        out = _values(_call(kern, ac, bc, xp, scale_a=one, scale_b=one, **formats), xp)
        post = _broadcast(sa, (m, 1), xp) * _broadcast(sb, (1, n), xp)
        return bf16_bits(out * post, xp, nan="quiet")
    scaling = getattr(kern, "scaling", None)
    if scaling == "tensor":
        sa, sb = sa.reshape(()), sb.reshape(())
    elif scaling == "row":
        sa, sb = _broadcast(sa, (m, 1), xp), _broadcast(sb, (1, n), xp)
    elif isinstance(scaling, tuple):  # name the layout: at N = 1 two fit the scale shapes
        per_column = g.b.block is not None and g.b.block[1] == 1
        formats["scaling"] = next((ep for ep in scaling if (ep.scale_b == "group-column")
                                   == per_column), scaling[0])
    out = _call(kern, ac, bc, xp, scale_a=sa, scale_b=sb, **formats)
    return out if out.dtype == np.uint16 else bf16_bits(out, xp, nan="quiet")


def linear_forward(r: LinearRecipe, x2, w, xp):
    """y (M, OUT) as bfloat16 bits of float32 (bf16-valued) x (M, IN) and w (OUT, IN)."""
    return run_gemm(r.forward, x2, xp.ascontiguousarray(w.T), xp)


def linear_backward(r: LinearRecipe, x2, w, g2, xp, *, need_x: bool = True,
                    need_w: bool = True):
    """(grad_x (M, IN), grad_w (OUT, IN)) as bfloat16 bits; None where not needed."""
    grad_x = run_gemm(r.grad_input, g2, w, xp) if need_x else None
    grad_w = run_gemm(r.grad_weight, xp.ascontiguousarray(g2.T), x2, xp) if need_w else None
    return grad_x, grad_w


def forward_torch(recipe: LinearRecipe, x, weight):
    """y = x @ weight.T (x's dtype) of CUDA tensors, every step on the device."""
    import torch

    with _torch_stream():
        x2 = _from_torch(x.reshape(-1, x.shape[-1]), "x")
        w = _from_torch(weight, "weight")
        y = from_cupy(linear_forward(recipe, x2, w, _cp()), True, bf16=True)
    return y.to(x.dtype).reshape(*x.shape[:-1], weight.shape[0]) if x.dtype != torch.bfloat16 \
        else y.reshape(*x.shape[:-1], weight.shape[0])


def backward_torch(recipe: LinearRecipe, x, weight, grad_output, need_x: bool, need_w: bool):
    """(grad_x, grad_w) tensors (None where not needed) of CUDA tensors, on the device."""
    with _torch_stream():
        cp = _cp()
        x2 = _from_torch(x.reshape(-1, x.shape[-1]), "x")
        w = _from_torch(weight, "weight")
        g2 = _from_torch(grad_output.reshape(-1, weight.shape[0]), "grad_output")
        gx, gw = linear_backward(recipe, x2, w, g2, cp, need_x=need_x, need_w=need_w)
        grad_x = from_cupy(gx, True, bf16=True).to(x.dtype).reshape(x.shape) if need_x \
            else None
        grad_w = from_cupy(gw, True, bf16=True).to(weight.dtype) if need_w else None
    return grad_x, grad_w


# --- helpers -------------------------------------------------------------------------


def _cp():
    from fp8sim.engine import _gpu

    _gpu.check()
    return _gpu._cupy()


class _torch_stream:
    """Runs CuPy on torch's current CUDA stream, so the two stay in order."""

    def __enter__(self):
        import torch

        cp = _cp()
        self._ctx = cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _from_torch(t, arg: str):
    """float32 CuPy values of a CUDA tensor rounded to bfloat16 (exact from bf16 bits)."""
    import torch

    if not t.is_cuda:
        raise TypeError(f"{arg}: engine='gpu' takes CUDA tensors, got one on {t.device}")
    bits, _ = to_cupy(t.detach().to(torch.bfloat16).contiguous(), arg)
    return bf16_values(bits, _cp())


def _call(kern, ac, bc, xp, **kwargs):
    """The kernel on codes: the GPU engine for device arrays, the CPU engine for numpy."""
    if xp is np:
        out = kern(ac, bc, **kwargs)
        return out.view(np.uint16) if out.dtype.itemsize == 2 and out.dtype != np.float16 \
            else out
    return kern(ac, bc, engine="gpu", **kwargs)  # split-K slices run on the GPU too


def _values(out, xp):
    """float32 values of a kernel output (bfloat16 bits or float32)."""
    return bf16_values(out, xp) if out.dtype == np.uint16 else out.astype(np.float32)


def _broadcast(s, shape, xp):
    """Row (M, 1) or column (1, N) scales; a per-tensor scale is repeated, as torchao does."""
    try:
        return xp.ascontiguousarray(xp.broadcast_to(s, shape), dtype=np.float32)
    except ValueError:
        raise ValueError(f"scales: shape {s.shape} does not fit {shape}") from None

