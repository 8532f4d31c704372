"""GPU side of `fp8sim.capture`: Triton wgmma kernels, torch._scaled_mm calls, CUDA conversions.

Imported only where torch and triton exist (an NVIDIA GPU is assumed). Every function
takes and returns numpy arrays (uint8 FP8 codes in, float32 or raw uint16 bits out), so
`fp8sim.capture` never touches torch itself.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import torch
import triton
import triton.language as tl

__all__ = ["device_name", "triton_gemm", "triton_scaled_gemm", "scaled_mm", "convert_torch",
           "convert_cuda"]

_TORCH_FP8 = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
_TORCH_OUT = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BLOCK_M = 64
BLOCK_N = 64
BLOCK_K = 32


def device_name() -> str:
    """The GPU's name, driver-visible versions of torch and triton."""
    return (f"{torch.cuda.get_device_name(0)}; torch {torch.__version__}; "
            f"triton {triton.__version__}; cuda {torch.version.cuda}")


def _fp8(codes: np.ndarray, fmt: str) -> torch.Tensor:
    """uint8 codes -> a CUDA float8 tensor with the same bits."""
    t = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.uint8)).cuda()
    return t.view(_TORCH_FP8[fmt])


@triton.jit
def _gemm_kernel(a_ptr, b_ptr, c_ptr, d_ptr, M, N, K, HAS_C: tl.constexpr,
                 PROMOTE: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                 BK: tl.constexpr):
    """One 64 x 64 tile: part = tl.dot(a, b, part) per 32 of K; acc += part every PROMOTE."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    mask_mn = (rm[:, None] < M) & (rn[None, :] < N)
    if HAS_C:
        part = tl.load(c_ptr + rm[:, None] * N + rn[None, :], mask=mask_mn, other=0.0)
    else:
        part = tl.zeros((BM, BN), dtype=tl.float32)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + rk
        a = tl.load(a_ptr + rm[:, None] * K + kk[None, :],
                    mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
        b = tl.load(b_ptr + kk[:, None] * N + rn[None, :],
                    mask=(kk[:, None] < K) & (rn[None, :] < N), other=0.0)
        part = tl.dot(a, b, part)
        if PROMOTE > 0:
            if ((k0 + BK) % PROMOTE == 0) | (k0 + BK >= K):
                acc += part
                part = tl.zeros((BM, BN), dtype=tl.float32)
    if PROMOTE > 0:
        out = acc
    else:
        out = part
    tl.store(d_ptr + rm[:, None] * N + rn[None, :], out, mask=mask_mn)


@triton.jit
def _scaled_kernel(a_ptr, b_ptr, sa_ptr, sb_ptr, d_ptr, M, N, K, G, NB,
                   PROMOTE: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr,
                   BK: tl.constexpr):
    """DeepGEMM-style: every PROMOTE, acc = fma(part, sa[i, g] * sb[j // 128, g], acc).

    sa is (M, G) and sb is (NB, G) with NB = ceil(N / 128), both row-major float32.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    mask_mn = (rm[:, None] < M) & (rn[None, :] < N)
    part = tl.zeros((BM, BN), dtype=tl.float32)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    g = 0
    for k0 in range(0, K, BK):
        kk = k0 + rk
        a = tl.load(a_ptr + rm[:, None] * K + kk[None, :],
                    mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
        b = tl.load(b_ptr + kk[:, None] * N + rn[None, :],
                    mask=(kk[:, None] < K) & (rn[None, :] < N), other=0.0)
        part = tl.dot(a, b, part)
        if ((k0 + BK) % PROMOTE == 0) | (k0 + BK >= K):
            sa = tl.load(sa_ptr + rm * G + g, mask=rm < M, other=0.0)
            sb = tl.load(sb_ptr + (rn // 128) * G + g, mask=rn < N, other=0.0)
            s = sa[:, None] * sb[None, :]
            acc = tl.fma(part, s, acc)
            part = tl.zeros((BM, BN), dtype=tl.float32)
            g += 1
    tl.store(d_ptr + rm[:, None] * N + rn[None, :], acc, mask=mask_mn)


def triton_gemm(a: np.ndarray, b: np.ndarray, a_format: str, b_format: str, promote: int,
                c: np.ndarray | None = None) -> np.ndarray:
    """D (float32) from the Triton kernel with promotion every `promote` (0: never)."""
    m, k = a.shape
    n = b.shape[1]
    ta, tb = _fp8(a, a_format), _fp8(b, b_format)
    d = torch.empty((m, n), dtype=torch.float32, device="cuda")
    tc = (torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)).cuda()
          if c is not None else d)
    grid = (triton.cdiv(m, BLOCK_M), triton.cdiv(n, BLOCK_N))
    _gemm_kernel[grid](ta, tb, tc, d, m, n, k, HAS_C=c is not None, PROMOTE=promote,
                       BM=BLOCK_M, BN=BLOCK_N, BK=BLOCK_K)
    return d.cpu().numpy()


def triton_scaled_gemm(a: np.ndarray, b: np.ndarray, a_format: str, b_format: str,
                       scale_a: np.ndarray, scale_b: np.ndarray, promote: int = 128
                       ) -> np.ndarray:
    """D (float32) from the DeepGEMM-style kernel; scale_b is (ceil(N/128), groups)."""
    m, k = a.shape
    n = b.shape[1]
    g = scale_a.shape[1]
    ta, tb = _fp8(a, a_format), _fp8(b, b_format)
    sa = torch.from_numpy(np.ascontiguousarray(scale_a, dtype=np.float32)).cuda()
    sb = torch.from_numpy(np.ascontiguousarray(scale_b, dtype=np.float32)).cuda()
    d = torch.empty((m, n), dtype=torch.float32, device="cuda")
    grid = (triton.cdiv(m, BLOCK_M), triton.cdiv(n, BLOCK_N))
    _scaled_kernel[grid](ta, tb, sa, sb, d, m, n, k, g, scale_b.shape[0], PROMOTE=promote,
                         BM=BLOCK_M, BN=BLOCK_N, BK=BLOCK_K)
    return d.cpu().numpy()


def _to_numpy(d: torch.Tensor) -> np.ndarray:
    """float32 as float32; bf16/f16 as raw uint16 bits."""
    d = d.contiguous()
    if d.dtype == torch.float32:
        return d.cpu().numpy()
    return d.view(torch.int16).cpu().numpy().view(np.uint16)


def scaled_mm(a: np.ndarray, b: np.ndarray, a_format: str, b_format: str, *, fast: bool,
              out_dtype: str, scale_a: np.ndarray | float = 1.0,
              scale_b: np.ndarray | float = 1.0) -> np.ndarray:
    """torch._scaled_mm with column-major B: unit, per-tensor or row-wise scales."""
    ta = _fp8(a, a_format)
    tb = _fp8(b, b_format).t().contiguous().t()
    sa = torch.tensor(np.asarray(scale_a, dtype=np.float32)).cuda()
    sb = torch.tensor(np.asarray(scale_b, dtype=np.float32)).cuda()
    d = torch._scaled_mm(ta, tb, scale_a=sa, scale_b=sb, out_dtype=_TORCH_OUT[out_dtype],
                         use_fast_accum=fast)
    torch.cuda.synchronize()
    return _to_numpy(d)


def convert_torch(x: np.ndarray, fmt: str) -> np.ndarray:
    """float32 -> FP8 codes through torch's .to(float8)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).cuda()
    return t.to(_TORCH_FP8[fmt]).view(torch.uint8).cpu().numpy()


_CVT_SRC = r"""
#include <cuda_fp8.h>
extern "C" __global__ void cvt(const float* x, unsigned char* out, int n, int e5m2, int sat) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = (unsigned char)__nv_cvt_float_to_fp8(x[i], sat ? __NV_SATFINITE : __NV_NOSAT,
                                                      e5m2 ? __NV_E5M2 : __NV_E4M3);
    }
}
"""
_cvt_kernel = None


def _include_dirs() -> list[str]:
    """Folders that may hold cuda_fp8.h (CUDA toolkit, pip's nvidia packages)."""
    found = []
    roots = [os.environ.get("CUDA_PATH", ""), os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"]
    roots += glob.glob("/usr/local/cuda-*")
    for r in roots:
        if r and os.path.exists(os.path.join(r, "include", "cuda_fp8.h")):
            found.append(os.path.join(r, "include"))
    import site
    for sp in site.getsitepackages():
        for h in glob.glob(os.path.join(sp, "nvidia", "**", "cuda_fp8.h"), recursive=True):
            found.append(os.path.dirname(h))
    return found


def convert_cuda(x: np.ndarray, fmt: str, saturate: bool) -> np.ndarray:
    """float32 -> FP8 codes through __nv_cvt_float_to_fp8 (NOSAT or SATFINITE), via CuPy."""
    global _cvt_kernel
    import cupy as cp
    if _cvt_kernel is None:
        errors = []
        for opts in [()] + [(f"-I{d}",) for d in _include_dirs()]:
            try:
                k = cp.RawKernel(_CVT_SRC, "cvt", options=("--std=c++17",) + opts)
                k.compile()
                _cvt_kernel = k
                break
            except Exception as e:  # noqa: BLE001 - try the next include folder
                errors.append(f"{opts}: {e}"[:300])
        if _cvt_kernel is None:
            raise RuntimeError("cupy: could not compile __nv_cvt_float_to_fp8: "
                               + " | ".join(errors))
    xd = cp.asarray(np.ascontiguousarray(x, dtype=np.float32))
    out = cp.empty(x.shape, dtype=cp.uint8)
    n = x.size
    _cvt_kernel(((n + 255) // 256,), (256,),
                (xd, out, np.int32(n), np.int32(fmt == "e5m2"), np.int32(bool(saturate))))
    return cp.asnumpy(out)
