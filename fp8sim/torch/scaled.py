"""`torch._scaled_mm` on the CPU, returning the bits an H100 returns: a drop-in for kernel tests.

A test written against ``torch._scaled_mm`` on a GPU swaps its expected value for
``fp8sim.torch.scaled_mm`` with the same arguments and runs on any machine:

    >>> import torch, fp8sim.torch
    >>> a = torch.randn(64, 256).to(torch.float8_e4m3fn)                  # (M, K) row-major
    >>> b = torch.randn(32, 256).to(torch.float8_e4m3fn).t()              # (K, N) column-major
    >>> one = torch.tensor(1.0)
    >>> want = fp8sim.torch.scaled_mm(a, b, one, one, out_dtype=torch.bfloat16)

It takes torch's arguments, refuses what torch's CUDA path refuses (same conditions,
messages naming the argument), and picks the kernel torch's dispatcher picks on Hopper:

============================================  ==========================================
scales                                        fp8sim kernel (`fp8sim.KERNELS`)
============================================  ==========================================
tensor-wise: one element each                 "cublaslt" / "cublaslt-fast" (split-K at
                                              long K: `cublaslt_splits`)
row-wise: scale_a (M, 1), scale_b (1, N)      "torch-rowwise" / "torch-rowwise-fast"
1x128 x 128x128: (M, K/128), (K/128, N/128)   "cublaslt-blockwise"
1x128 x 128x1: (M, K/128), (K/128, N)         "cublaslt-blockwise"
============================================  ==========================================

(K/128 is ceil(K / 128).) `use_fast_accum` picks the "-fast" kernels (no promotion);
with blockwise scales it is refused, as cuBLASLt refuses it on an H200. `bias` (N,) is added in the
epilogue: ``out = to_out(float32(float32(scaled accumulator) + float32(bias[j])))``, one
float32 rounding for the scaled product (as without bias) and one for the sum, then the
output rounding. The captures hold no GEMM with a bias, so that order is an assumption
(cuBLASLt documents the bias as added to alpha * A @ B in the compute type, float32).
`scale_result` only scales FP8 outputs, which are not modelled: out_dtype None (torch's
default, mat_a's FP8 type) raises NotImplementedError; pass torch.float32, torch.bfloat16 or
torch.float16. torch is an optional dependency (``pip install fp8sim[torch]``).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import ml_dtypes
import numpy as np

from fp8sim._torch_arrays import torch_to_numpy

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["scaled_mm"]

_UNSPLIT_MAX_K = 4096  # fast accumulation was never seen split at K <= 4096


def _torch():
    """The torch module, or an ImportError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ImportError("fp8sim.torch needs torch: pip install 'fp8sim[torch]' "
                          "(a CPU build is enough)") from None
    return torch


def _fp8_codes(t, arg: str, torch) -> tuple[np.ndarray, str]:
    """(uint8 codes as a numpy array with t's strides, format) of a torch float8 tensor."""
    names = {torch.float8_e4m3fn: "e4m3", torch.float8_e5m2: "e5m2"}
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{arg}: expected a torch float8 tensor, got {type(t).__name__}")
    if t.dtype not in names:
        raise ValueError(f"{arg}: expected dtype torch.float8_e4m3fn or torch.float8_e5m2 "
                         f"(Hopper's FP8 operands), got {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{arg}: must be a matrix (2-D), got {t.dim()}-D shape "
                         f"{tuple(t.shape)}")
    return torch_to_numpy(t, arg).view(np.uint8), names[t.dtype]


def _float32(t, arg: str, torch) -> np.ndarray:
    """A float32 scale tensor as a numpy array (its values, any strides)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{arg}: expected a float32 torch tensor, got {type(t).__name__}")
    if t.dtype != torch.float32:
        kind = ("E8M0 block scales (MXFP8, BlockWise1x32) need Blackwell"
                if t.dtype == getattr(torch, "float8_e8m0fnu", None) else
                "torch._scaled_mm on Hopper takes float32 scales")
        raise ValueError(f"{arg}: expected dtype torch.float32, got {t.dtype} ({kind})")
    return torch_to_numpy(t, arg)


def _out_name(out_dtype, mat_a, torch) -> str:
    """'float32', 'bfloat16' or 'float16' for torch's out_dtype (None: mat_a's FP8 dtype)."""
    names = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
    if out_dtype is None or out_dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        shown = f"None (mat_a's {mat_a.dtype})" if out_dtype is None else str(out_dtype)
        raise NotImplementedError(
            f"out_dtype: FP8 output ({shown}, with scale_result) is not modelled; pass "
            "out_dtype=torch.float32, torch.bfloat16 or torch.float16")
    if out_dtype not in names:
        raise ValueError(f"out_dtype: expected torch.float32, torch.bfloat16 or torch.float16, "
                         f"got {out_dtype}")
    return names[out_dtype]


def _scaling(sa: np.ndarray, sb: np.ndarray, m: int, k: int, n: int) -> str:
    """Which of torch's scaling pairs the scale shapes select, in its order of priority."""
    g = -(-k // 128)
    if sa.size == 1 and sb.size == 1:
        return "tensor"
    if sa.ndim != 2 or sb.ndim != 2:
        raise ValueError(f"scale_a: for non-tensorwise scaling scale tensors must be 2-D, got "
                         f"shapes {sa.shape} and {sb.shape}")
    if sa.shape == (m, 1) and sb.shape == (1, n):
        return "row"
    if sa.shape == (-(-m // 128), g) and sb.shape == (g, n):
        raise NotImplementedError("scale_a: BlockWise128x128 scales on A (with 1x128 on B) are "
                                  "not modelled; fp8sim has 1x128 x 128x128 and 1x128 x 128x1")
    if sa.shape == (m, g) and sb.shape in ((g, -(-n // 128)), (g, n)):
        return "blockwise"
    raise ValueError(
        f"scale_a: shapes {sa.shape} and {sb.shape} fit no scaling of torch._scaled_mm: "
        f"tensor-wise (one element each), row-wise ({m}, 1) and (1, {n}), or blockwise "
        f"({m}, {g}) with ({g}, {-(-n // 128)}) (128x128) or ({g}, {n}) (128x1)")


def scaled_mm(mat_a: torch.Tensor, mat_b: torch.Tensor, scale_a: torch.Tensor,
              scale_b: torch.Tensor, bias: torch.Tensor | None = None,
              scale_result: torch.Tensor | None = None, out_dtype: torch.dtype | None = None,
              use_fast_accum: bool = False, *, gpu: str = "H100",
              slices: int | None = None) -> torch.Tensor:
    """What ``torch._scaled_mm`` returns on an H100 (or `gpu`), computed on the CPU, bit for bit.

    Args:
        mat_a: (M, K) torch.float8_e4m3fn or float8_e5m2, row-major.
        mat_b: (K, N) likewise, column-major (``b.t()`` of a contiguous (N, K) tensor), as
            cuBLASLt requires; K and N multiples of 16; not both E5M2.
        scale_a, scale_b: float32 tensors: one element each (tensor-wise), (M, 1) and
            (1, N) (row-wise), or (M, ceil(K/128)) with (ceil(K/128), ceil(N/128)) or
            (ceil(K/128), N) (blockwise).
        bias: None or (N,) bfloat16 (bfloat16 output) / float16 (float16 output); torch
            refuses a bias with float32 output.
        scale_result: None or a one-element float32 tensor; it only scales FP8 outputs.
        out_dtype: torch.float32, torch.bfloat16 or torch.float16.
        use_fast_accum: cuBLASLt's fast accumulation: no promotion (split-K at long K).
        gpu: (keyword only, not torch's) "H100" (default) or "H200": the card whose
            cuBLASLt split-K choice to reproduce (`fp8sim.engine.cublaslt_splits`).
        slices: (keyword only, not torch's) cut K into this many slices instead of the
            library's recorded choice: tensor-wise and blockwise scaling (the kernels that
            split); row-wise scaling never splits and refuses it (but 1).

    Returns:
        (M, N) torch tensor of out_dtype on mat_a's device.

    Raises:
        ValueError, TypeError: what torch's CUDA path refuses, naming the argument.
        NotImplementedError: FP8 outputs, BlockWise128x128 on A, blockwise K beyond the
            captured split-K.
    """
    from fp8sim.engine.split_choice import check_gpu, check_slices

    torch = _torch()
    check_gpu(gpu)
    slices = check_slices(slices)
    if not isinstance(use_fast_accum, bool | np.bool_):  # "no" would read as True
        raise TypeError(f"use_fast_accum: expected True or False, got {use_fast_accum!r}")
    a, fa = _fp8_codes(mat_a, "mat_a", torch)
    b, fb = _fp8_codes(mat_b, "mat_b", torch)
    m, k = a.shape
    if b.shape[0] != k:
        raise ValueError(f"mat_b: mat_a and mat_b shapes cannot be multiplied ({m}x{k} and "
                         f"{b.shape[0]}x{b.shape[1]})")
    n = b.shape[1]
    _check_layout(mat_a, mat_b, m, k, n)
    if fa == fb == "e5m2":
        raise ValueError("mat_b: multiplication of two float8_e5m2 matrices is not supported "
                         "(cuBLASLt); make one of them float8_e4m3fn")
    out_name = _out_name(out_dtype, mat_a, torch)
    sa = _float32(scale_a, "scale_a", torch)
    sb = _float32(scale_b, "scale_b", torch)
    if scale_result is not None:
        if not isinstance(scale_result, torch.Tensor) or scale_result.numel() != 1 or \
                scale_result.dtype != torch.float32:
            raise ValueError("scale_result: must be a float scalar (a one-element float32 "
                             "tensor)")
    bias32 = _bias(bias, n, out_name, torch)
    kind = _scaling(sa, sb, m, k, n)
    if kind == "row" and slices not in (None, 1):
        raise ValueError("slices: row-wise scaling never splits K (torch's row-wise kernels; "
                         "cuBLASLt's recording, fp8sim.engine.cublaslt_splits); leave slices out")
    if m == 0 or n == 0 or k == 0:
        out = np.zeros((m, n), np.float32).astype(_np_dtype(out_name))
        return _to_torch(out, out_name, mat_a.device, torch)
    a8 = a.view(getattr(ml_dtypes, "float8_e4m3fn" if fa == "e4m3" else "float8_e5m2"))
    b8 = b.view(getattr(ml_dtypes, "float8_e4m3fn" if fb == "e4m3" else "float8_e5m2"))
    compute = "float32" if bias32 is not None else out_name
    out = _run(a8, b8, sa, sb, kind, m, n, k, out_name, compute, bool(use_fast_accum), gpu,
               slices)
    if bias32 is not None:
        out = _add_bias(out, bias32, out_name)
    return _to_torch(out, out_name, mat_a.device, torch)


def _check_layout(mat_a, mat_b, m: int, k: int, n: int) -> None:
    """cuBLASLt's layout and size rules, as torch checks them on CUDA."""
    if m and k and not (mat_a.stride(1) == 1 and mat_a.stride(0) > 1):
        raise ValueError(f"mat_a: must be row-major (stride ({k}, 1)), got stride "
                         f"{tuple(mat_a.stride())}; pass mat_a.contiguous()")
    if k and n and not (mat_b.stride(0) == 1 and mat_b.stride(1) > 1):
        raise ValueError(f"mat_b: must be column-major (stride (1, {k})), got stride "
                         f"{tuple(mat_b.stride())}; pass b.t().contiguous().t(), or the .t() of "
                         "a contiguous (N, K) tensor")
    if k % 16:
        raise ValueError(f"mat_a: expected trailing dimension of mat_a to be divisible by 16, "
                         f"got shape ({m}, {k})")
    if n % 16:
        raise ValueError(f"mat_b: shape ({k}, {n}) must be divisible by 16")


def _bias(bias, n: int, out_name: str, torch) -> np.ndarray | None:
    """The bias as float32 (exact widening), after torch's checks."""
    if bias is None:
        return None
    if not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias: expected a torch tensor, got {type(bias).__name__}")
    if bias.numel() != n:
        raise ValueError(f"bias: must be size {n}, got {bias.numel()}")
    if out_name == "float32":
        raise ValueError("bias: not supported when out_dtype is torch.float32 (torch refuses "
                         "it); use bfloat16 or float16 output")
    want = torch.bfloat16 if out_name == "bfloat16" else torch.float16
    if bias.dtype != want:
        raise ValueError(f"bias: must be {want} to compute {out_name} output, got {bias.dtype}")
    return bias.detach().cpu().reshape(-1).to(torch.float32).numpy()


def _np_dtype(out_name: str) -> np.dtype:
    return {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16),
            "float16": np.dtype(np.float16)}[out_name]


def _run(a8, b8, sa, sb, kind: str, m: int, n: int, k: int, out_name: str, compute: str,
         fast: bool, gpu: str = "H100", slices: int | None = None) -> np.ndarray:
    """Runs the kernel torch's dispatcher would pick; `compute` is the dtype returned;
    `slices` (None: the library's choice on `gpu`) the split of K."""
    from fp8sim.engine.kernel import KERNELS

    if kind == "tensor":
        kern = KERNELS["cublaslt-fast" if fast else "cublaslt"]
        return _split_run(kern, a8, b8, np.float32(sa.reshape(-1)[0]),
                          np.float32(sb.reshape(-1)[0]), compute, gpu, slices, m, n, k)
    if kind == "row":
        kern = KERNELS["torch-rowwise-fast" if fast else "torch-rowwise"]
        if fast and k > _UNSPLIT_MAX_K:
            warnings.warn(f"use_fast_accum: row-wise fast accumulation at K = {k} > "
                          f"{_UNSPLIT_MAX_K} was never captured; one unpromoted chain is "
                          "assumed", stacklevel=3)
        return kern(a8, b8, scale_a=np.ascontiguousarray(sa, np.float32),
                    scale_b=np.ascontiguousarray(sb, np.float32), out_dtype=compute)
    if fast:  # as torch 2.11 + cuBLASLt 13.1 on an H200 answers it
        raise ValueError("use_fast_accum: cuBLASLt's scaled GEMM does not support fast "
                         "accumulation with blockwise scaling (torch raises RuntimeError)")
    return _split_run(KERNELS["cublaslt-blockwise"], a8, b8, np.ascontiguousarray(sa, np.float32),
                      np.ascontiguousarray(sb, np.float32), compute, gpu, slices, m, n, k)


def _split_run(kern, a8, b8, sa, sb, compute: str, gpu: str, slices: int | None, m: int,
               n: int, k: int) -> np.ndarray:
    """A cuBLASLt kernel with its split of K on `gpu` (or `slices`); a shape whose split was
    never recorded is a NotImplementedError, as every entry point refuses it."""
    try:
        return kern(a8, b8, scale_a=sa, scale_b=sb, out_dtype=compute, gpu=gpu, slices=slices)
    except ValueError as e:
        if str(e).startswith(("slices:", "gpu:")):
            raise NotImplementedError(
                f"mat_a: cuBLASLt's split of K at (M, N, K) = ({m}, {n}, {k}) for "
                f"{kern.name} on the {gpu} was never recorded; scaled_mm(..., slices=S) runs "
                "a split of your choice (fp8sim/engine/CUBLASLT_SPLITS.md: how to record)"
            ) from None
        raise


def _add_bias(out32: np.ndarray, bias32: np.ndarray, out_name: str) -> np.ndarray:
    """float32(out + bias[j]), rounded to the output type (NaN as cuBLASLt writes it)."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = (out32 + bias32[None, :]).astype(np.float32)
    nan = np.isnan(s)
    with np.errstate(over="ignore"):
        out = s.astype(_np_dtype(out_name))
    out.view(np.uint16)[nan] = 0x7FFF
    return out


def _to_torch(out: np.ndarray, out_name: str, device, torch):
    """A numpy float32 / ml_dtypes bfloat16 / float16 array as a torch tensor on `device`."""
    out = np.ascontiguousarray(out)
    if out_name == "bfloat16":
        t = torch.from_numpy(out.view(np.uint16).copy()).view(torch.bfloat16)
    else:
        t = torch.from_numpy(out.copy())
    return t.to(device) if str(device) != "cpu" else t

