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
from fp8sim.engine.splitk import SplitK

__all__ = ["Kernel", "KERNELS", "kernel", "cublaslt_fast_promote", "CUBLASLT_FAST_SLICES_H100",
           "CUBLASLT_FAST_SPLIT_H100"]

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

CUBLASLT_FAST_SPLIT_H100 = SplitK(device="H100", slices=CUBLASLT_FAST_SLICES_H100,
                                  slices_16bit=CUBLASLT_FAST_SLICES_H100_16BIT)
"""cuBLASLt fast accumulation's split of K on the H100 (none up to K = 4096)."""


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
    split_k: SplitK | None = None
    """How the library cuts long K into slices (cuBLASLt fast accumulation), None: never."""

    def __call__(self, a: np.ndarray, b: np.ndarray, *, slices: int | None = None,
                 problem_shape: tuple[int, int, int] | None = None, **kwargs) -> np.ndarray:
        """Runs fp8sim.gemm with this kernel's settings; keyword arguments override them.

        A kernel that splits K (`split_k`) promotes every slice length: the captured slice
        count of the GEMM's shape, or `slices` from the caller. `problem_shape` (M, N, K)
        names the GEMM the library ran when `a` and `b` are a crop of its rows and columns
        (the split depends on the whole shape). An unknown split raises ValueError.
        """
        return gemm(a, b, **self.gemm_kwargs(a, b, slices=slices, problem_shape=problem_shape,
                                             **kwargs))

    def gemm_kwargs(self, a, b, *, slices: int | None = None,
                    problem_shape: tuple[int, int, int] | None = None, **kwargs) -> dict:
        """The `fp8sim.gemm` keyword arguments this kernel runs a and b with."""
        settings = {"promote": self.promote, "scaling": self.scaling, "preset": self.step,
                    "out_dtype": self.out_dtype}
        if self.split_k is None:
            if slices is not None or problem_shape is not None:
                arg = "slices" if slices is not None else "problem_shape"
                raise ValueError(f"{arg}: the {self.name} kernel does not split K")
        else:
            if "promote" in kwargs:
                raise ValueError(f"promote: the {self.name} kernel promotes where its split of K "
                                 "puts the slices; pass slices= to choose the split")
            out_dtype = kwargs.get("out_dtype", self.out_dtype)
            settings["promote"] = self._split_promote(a, b, out_dtype, slices, problem_shape)
        return settings | kwargs

    def _split_promote(self, a, b, out_dtype, slices, problem_shape) -> int:
        """The promotion interval of this kernel's split of K for a GEMM of a and b."""
        a_shape, b_shape = np.shape(a), np.shape(b)
        if len(a_shape) != 2 or len(b_shape) != 2:
            return 0  # fp8sim.gemm names the malformed argument
        (m, k), n = a_shape, b_shape[1]
        if problem_shape is not None:
            shape = tuple(problem_shape) if isinstance(problem_shape, (tuple, list)) else ()
            if len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                      or v < 1 for v in shape):
                raise ValueError(f"problem_shape: expected (M, N, K) positive ints, got "
                                 f"{problem_shape!r}")
            if shape[2] != k or shape[0] < m or shape[1] < n:
                raise ValueError(f"problem_shape: {shape} does not contain a ({m}, {k}) x "
                                 f"({k}, {n}) crop (K must be the same)")
            m, n = int(shape[0]), int(shape[1])
        if slices is None:
            slices = self.split_k.slice_count(m, n, k, out_dtype)
            if slices is None:
                raise ValueError(
                    f"slices: {self.name} splits K = {k} > {self.split_k.max_unsplit_k} into a "
                    f"number of slices that is {self.split_k.device} cuBLASLt's heuristic, and "
                    f"({m}, {n}, {k}) was not captured; pass slices= (fp8sim.identify(..., "
                    "search='split') finds it from outputs), or problem_shape= if a and b are "
                    "a crop of a captured GEMM")
        elif isinstance(slices, bool) or not isinstance(slices, (int, np.integer)) or slices < 1:
            raise ValueError(f"slices: expected a positive int, got {slices!r}")
        return self.split_k.promote(k, int(slices))


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
           split_k=CUBLASLT_FAST_SPLIT_H100,
           description="cuBLASLt (torch._scaled_mm) with use_fast_accum=True: no promotion, "
                       "then acc * float32(scale_a * scale_b). Past K = 4096 cuBLASLt splits K "
                       "into slices whose FP32 sum is promotion every slice length: the H100's "
                       "captured slice counts apply, other shapes need slices=."),
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



def cublaslt_fast_promote(m: int, n: int, k: int, out_dtype: str = "float32") -> int | None:
    """The promotion interval equal to cuBLASLt fast accumulation's split-K, or None.

    0 (one chain through K) for K <= 4096, as every capture there shows; the slice
    length for the captured shapes; None where the slice count is not known.
    """
    slices = CUBLASLT_FAST_SPLIT_H100.slice_count(m, n, k, out_dtype)
    return None if slices is None else CUBLASLT_FAST_SPLIT_H100.promote(k, slices)


def kernel(name: str | Kernel) -> Kernel:
    """Looks a kernel up by name; a Kernel passes through."""
    if isinstance(name, Kernel):
        return name
    if name in KERNELS:
        return KERNELS[name]
    raise ValueError(f"kernel: unknown kernel {name!r}; expected one of {', '.join(KERNELS)}")
