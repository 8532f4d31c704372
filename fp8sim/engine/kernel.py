"""Whole FP8 GEMM kernels described as data: an MMA step, a promotion interval, an epilogue.

Each named kernel is what a real library does on Hopper, as captured on an H100
(`../shared/HOPPER_FP8.md`). Calling one runs `fp8sim.gemm` with its settings:

    >>> fp8sim.engine.kernel.KERNELS["deepgemm"](a, b, scale_a=sa, scale_b=sb)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fp8sim.engine.gemm import gemm
from fp8sim.engine.mma import HOPPER, MMAStep

__all__ = ["Kernel", "KERNELS", "kernel", "cublaslt_fast_promote", "CUBLASLT_FAST_SLICES_H100"]


@dataclass(frozen=True, kw_only=True)
class Kernel:
    """One FP8 GEMM kernel: how it accumulates and what its epilogue does."""

    name: str
    step: MMAStep = HOPPER
    """The MMA step model."""
    promote: int = 0
    """Promotion interval in K elements; 0 never promotes."""
    scaling: str | None = None
    """Epilogue: None (plain FP32 add at promotion), "group" (fma with per-group scales at
    each promotion), "tensor" (one alpha at the end) or "row" (row-wise scales at the end)."""
    out_dtype: str = "float32"
    verified: bool = False
    """True where H100 captures back this kernel bit for bit."""
    description: str = ""

    def __call__(self, a: np.ndarray, b: np.ndarray, **kwargs) -> np.ndarray:
        """Runs fp8sim.gemm with this kernel's settings; keyword arguments override them."""
        settings = {"promote": self.promote, "scaling": self.scaling, "preset": self.step,
                    "out_dtype": self.out_dtype}
        return gemm(a, b, **(settings | kwargs))


KERNELS: dict[str, Kernel] = {k.name: k for k in (
    Kernel(name="triton", verified=True,
           description="Triton on Hopper: tl.dot chains wgmma steps through all of K and never "
                       "promotes."),
    Kernel(name="triton-promote128", promote=128, verified=True,
           description="Triton with an explicit acc += part; part = 0 every 128 elements."),
    Kernel(name="deepgemm", promote=128, scaling="group", verified=True,
           description="DeepGEMM-style fine-grained scaling: at each promotion acc = fma(part, "
                       "float32(scale_a[i, g] * scale_b[g, j // 128]), acc)."),
    Kernel(name="cublaslt-fast", scaling="tensor", verified=True,
           description="cuBLASLt (torch._scaled_mm) with use_fast_accum=True: no promotion, "
                       "then acc * float32(scale_a * scale_b). At long K cuBLASLt splits K "
                       "(see cublaslt_fast_promote): the slices' FP32 sum is promotion every "
                       "slice length."),
    Kernel(name="cublaslt", promote=128, scaling="tensor", verified=True,
           description="cuBLASLt (torch._scaled_mm) with use_fast_accum=False: promotion "
                       "every 128, then acc * float32(scale_a * scale_b)."),
    Kernel(name="torch-rowwise-fast", scaling="row", out_dtype="bfloat16", verified=True,
           description="torch._scaled_mm with row-wise scales, use_fast_accum=True, bf16 out."),
    Kernel(name="torch-rowwise", promote=128, scaling="row", out_dtype="bfloat16",
           verified=True,
           description="torch._scaled_mm with row-wise scales, promotion every 128, bf16 out."),
)}
"""Every named kernel."""


CUBLASLT_FAST_SLICES_H100: dict[tuple[int, int, int], int] = {
    (64, 64, 8192): 3, (64, 64, 16384): 6, (64, 64, 24576): 9, (64, 64, 32768): 12,
    (64, 64, 65536): 22, (128, 128, 16384): 6, (128, 128, 32768): 9, (128, 256, 16384): 5,
    (256, 256, 8192): 2, (256, 256, 16384): 2, (256, 256, 32768): 3,
    (512, 512, 16384): 1, (1024, 1024, 16384): 1,
}
"""Split-K slice counts cuBLASLt chose with fast accumulation on the H100, by (M, N, K),
for float32 outputs: every case captured so far (fp8sim.identify(search="split") found
each at match 1.0). It is cuBLASLt's heuristic; the H200 differs at 64 x 64 x 65536."""

CUBLASLT_FAST_SLICES_H100_16BIT: dict[tuple[int, int, int], int] = {(256, 256, 16384): 3}
"""Shapes where bfloat16/float16 outputs were split differently from float32."""


def cublaslt_fast_promote(m: int, n: int, k: int, out_dtype: str = "float32") -> int | None:
    """The promotion interval equal to cuBLASLt fast accumulation's split-K, or None.

    0 (one chain through K) for K <= 4096, as every capture there shows; the slice
    length for the captured shapes; None where the slice count is not known.
    """
    if k <= 4096:
        return 0
    key = (m, n, k)
    slices = CUBLASLT_FAST_SLICES_H100.get(key)
    if out_dtype != "float32":
        slices = CUBLASLT_FAST_SLICES_H100_16BIT.get(key, slices)
    if slices is None:
        return None
    if slices == 1:
        return 0
    from fp8sim.engine.splitk import split_bounds
    start, stop = split_bounds(k, slices)[0]
    return stop - start


def kernel(name: str | Kernel) -> Kernel:
    """Looks a kernel up by name; a Kernel passes through."""
    if isinstance(name, Kernel):
        return name
    if name in KERNELS:
        return KERNELS[name]
    raise ValueError(f"kernel: unknown kernel {name!r}; expected one of {', '.join(KERNELS)}")
