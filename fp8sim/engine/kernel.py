"""Whole FP8 GEMM kernels described as data: an MMA step, a promotion interval, an epilogue
and, where the library splits K, its captured split.

Each named kernel is what a real library does on Hopper, as captured on an H100/H200
(`../shared/HOPPER_FP8.md`). Calling one runs `fp8sim.gemm` with its settings:

    >>> fp8sim.engine.kernel.KERNELS["deepgemm"](a, b, scale_a=sa, scale_b=sb)
    >>> fp8sim.KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=sb, out_dtype="bfloat16")
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fp8sim.engine.epilogue import GROUP, GROUP_A_FIRST, GROUP_COLUMN, Epilogue
from fp8sim.engine.gemm import gemm
from fp8sim.engine.mma import HOPPER, MMAStep
from fp8sim.engine.splitk import SplitK, gemm_split_k

__all__ = ["Kernel", "KERNELS", "kernel", "cublaslt_fast_promote", "CUBLASLT_FAST_SLICES_H100",
           "CUBLASLT_BLOCKWISE_SPLIT"]


CUBLASLT_BLOCKWISE_SPLIT = SplitK(
    name="cublaslt-blockwise", align=128, unsplit_max_k=4096, table={}, device="H200",
    description="cuBLASLt's BlockWise1x128 kernels (torch._scaled_mm, CUDA 13.0, H200): no "
                "split seen at K <= 4096; no longer K captured yet, so longer K needs slices=.")
"""Split-K of cuBLASLt's blockwise kernels: the slice counts captured, by (M, N, K)."""


@dataclass(frozen=True, kw_only=True)
class Kernel:
    """One FP8 GEMM kernel: how it accumulates and what its epilogue does."""

    name: str
    step: MMAStep = HOPPER
    """The MMA step model."""
    promote: int = 0
    """Promotion interval in K elements; 0 never promotes."""
    scaling: str | Epilogue | tuple[Epilogue, ...] | None = None
    """The epilogue (`fp8sim.engine.epilogue`): None (plain FP32 add at promotion), a name
    ("group", "tensor", "row", ...), an Epilogue, or a tuple of them, one per scale layout
    the kernel takes (the first whose shapes fit the scales given is used)."""
    out_dtype: str = "float32"
    verified: bool = False
    """True where H100 captures back this kernel bit for bit."""
    split: SplitK | None = None
    """Where the library splits K: the captured slice counts (None: it never splits)."""
    description: str = ""

    @property
    def scaling_label(self) -> str:
        """The epilogue's name(s) for listings: "group", "group | group-column", "none"."""
        if self.scaling is None:
            return "none"
        if isinstance(self.scaling, (str, Epilogue)):
            return getattr(self.scaling, "name", self.scaling)
        return " | ".join(getattr(e, "name", e) for e in self.scaling)

    def __call__(self, a: np.ndarray, b: np.ndarray, *, slices: int | None = None,
                 **kwargs) -> np.ndarray:
        """Runs fp8sim.gemm with this kernel's settings; keyword arguments override them.

        slices: cut K into this many slices (`fp8sim.engine.splitk`); by default the count
        captured for this shape in `split`, 1 where the kernel never splits. Raises
        ValueError naming `slices` where K is long and the split for the shape is unknown.
        """
        settings = {"promote": self.promote, "scaling": self.scaling, "preset": self.step,
                    "out_dtype": self.out_dtype} | kwargs
        if slices is None:
            slices = self._captured_slices(a, b, settings["out_dtype"])
        if isinstance(slices, bool) or not isinstance(slices, (int, np.integer)) or slices < 1:
            raise ValueError(f"slices: expected a positive int, got {slices!r}")
        if slices == 1:
            return gemm(a, b, **settings)
        align = self.split.align if self.split is not None else 128
        return gemm_split_k(a, b, slices=int(slices), align=align, **settings)

    def _captured_slices(self, a, b, out_dtype) -> int:
        """The split-K slice count for this shape from `split`, or a ValueError."""
        if self.split is None:
            return 1
        m, k = tuple(getattr(a, "shape", np.shape(a)))  # torch tensors: no conversion
        n = tuple(getattr(b, "shape", np.shape(b)))[-1]
        count = self.split.slices(m, n, k, str(out_dtype))
        if count is None:
            raise ValueError(
                f"slices: {self.name} splits K at long K by a heuristic of the library, and no "
                f"capture has the split for (M, N, K) = ({m}, {n}, {k}) (known: K <= "
                f"{self.split.unsplit_max_k} is not split; captured: "
                f"{sorted(self.split.table) or 'none'}); pass slices= (1: no split), or find "
                "it with fp8sim.identify(..., search='split')")
        return count


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
    Kernel(name="cublaslt-blockwise", promote=128, scaling=(GROUP, GROUP_COLUMN),
           split=CUBLASLT_BLOCKWISE_SPLIT, verified=True,
           description="cuBLASLt blockwise scaling (torch._scaled_mm / F.scaled_mm with "
                       "BlockWise1x128 scale_a): promotion every 128; scale_b (G, ceil(N/128)) "
                       "(BlockWise128x128): acc = fma(p, fl(sa*sb), acc); scale_b (G, N) "
                       "(BlockWise1x128 on B, 128x1 tiles): acc = fma(fl(p*sa), sb, acc). "
                       "bf16 out rounds the float32 result. Splits K at long K (see split)."),
    Kernel(name="torchao-triton-blockwise", promote=128, scaling=(GROUP_A_FIRST, GROUP_COLUMN),
           verified=True,
           description="torchao 0.18's Triton triton_fp8_gemm_1x128_128x128 / _128x1: one "
                       "tl.dot per 128 of K (a chain of 4 wgmma steps from +0), then "
                       "`acc += dot * a_s * b_s` compiles to acc = fma(fl(p*sa), sb, acc). "
                       "bf16 out rounds the float32 result; never splits K."),
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
