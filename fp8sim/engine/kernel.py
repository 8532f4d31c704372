"""Whole FP8 GEMM kernels described as data: an MMA step, a promotion interval, an epilogue.

Each named kernel is what a real library does on Hopper, as captured on an H100
(`../shared/HOPPER_FP8.md`). Calling one runs `fp8sim.gemm` with its settings:

    >>> fp8sim.engine.kernel.KERNELS["deepgemm"](a, b, scale_a=sa, scale_b=sb)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fp8sim.engine.gemm import OUT_DTYPES, gemm
from fp8sim.engine.mma import HOPPER, MMAStep
from fp8sim.engine.splitk import SplitK, gemm_split_k, split_bounds

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

CUBLASLT_FAST_SPLIT_H100 = SplitK(
    name="cublaslt-fast", align=128, unsplit_max_k=4096, table=CUBLASLT_FAST_SLICES_H100,
    table_16bit=CUBLASLT_FAST_SLICES_H100_16BIT, device="H100",
    description="cuBLASLt with fast accumulation (torch._scaled_mm, use_fast_accum=True) on "
                "the H100: one chain up to K = 4096, the captured slice counts beyond.")
"""cuBLASLt fast accumulation's split of K on the H100."""


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
    split: SplitK | None = None
    """Where the library splits K: the captured slice counts (None: it never splits)."""
    description: str = ""

    def __call__(self, a: np.ndarray, b: np.ndarray, *, slices: int | None = None,
                 problem_shape: tuple[int, int, int] | None = None, **kwargs) -> np.ndarray:
        """Runs fp8sim.gemm with this kernel's settings; keyword arguments override them.

        slices: cut K into this many slices (`fp8sim.engine.splitk`); by default the count
        captured in `split` for the GEMM's shape, 1 where the kernel never splits. Raises
        ValueError naming `slices` where K is long and the split of the shape is unknown.
        problem_shape: (M, N, K) of the GEMM the library ran, when `a` and `b` are a crop of
        its rows and columns (the split depends on the whole shape).
        """
        settings, count = self._resolve(a, b, slices, problem_shape, kwargs)
        if count > 1:  # a split that is no promotion: the slices one by one
            align = self.split.align if self.split is not None else 128
            return gemm_split_k(a, b, slices=count, align=align, **settings)
        return gemm(a, b, **settings)

    def gemm_kwargs(self, a, b, *, slices: int | None = None,
                    problem_shape: tuple[int, int, int] | None = None, **kwargs) -> dict:
        """The `fp8sim.gemm` keyword arguments this kernel runs a and b with (its split of K
        as promotion every slice length); ValueError where the split is no promotion."""
        settings, count = self._resolve(a, b, slices, problem_shape, kwargs)
        if count > 1:
            raise ValueError(f"slices: {count} slices of a kernel that promotes or scales at "
                             "each promotion are not one gemm; call the kernel")
        return settings

    def _resolve(self, a, b, slices, problem_shape, kwargs) -> tuple[dict, int]:
        """(gemm settings, slices left to run one by one): a split that is promotion every
        slice length is folded into the settings (1 slice left)."""
        settings = {"promote": self.promote, "scaling": self.scaling, "preset": self.step,
                    "out_dtype": self.out_dtype} | kwargs
        a_shape, b_shape = np.shape(a), np.shape(b)
        if len(a_shape) != 2 or len(b_shape) != 2:
            return settings, 1  # fp8sim.gemm names the malformed argument
        (m, k), n = a_shape, b_shape[1]
        if problem_shape is not None:
            m, n = _check_problem_shape(problem_shape, m, n, k)
        if slices is None:
            slices = self._captured_slices(m, n, k, settings["out_dtype"])
        if isinstance(slices, bool) or not isinstance(slices, (int, np.integer)) or slices < 1:
            raise ValueError(f"slices: expected a positive int, got {slices!r}")
        align = self.split.align if self.split is not None else 128
        bounds = split_bounds(k, int(slices), align)
        if len(bounds) > 1 and _promotes_as_split(settings):
            settings["promote"] = bounds[0][1]  # the slices' sum in order, exactly
            return settings, 1
        return settings, len(bounds)

    def _captured_slices(self, m: int, n: int, k: int, out_dtype) -> int:
        """The split-K slice count of an (M, N, K) GEMM from `split`, or a ValueError."""
        if self.split is None:
            return 1
        dt = np.dtype(OUT_DTYPES.get(out_dtype, out_dtype)) if isinstance(out_dtype, str) \
            else np.dtype(out_dtype)
        count = self.split.slices(m, n, k, "float32" if dt == np.float32 else str(dt))
        if count is None:
            raise ValueError(
                f"slices: {self.name} splits K = {k} > {self.split.unsplit_max_k} by a "
                f"heuristic of the library, and no capture has the split for (M, N, K) = "
                f"({m}, {n}, {k}) ({self.split.device}); pass slices= (fp8sim.identify(..., "
                "search='split') finds it from outputs), or problem_shape= if a and b are a "
                "crop of a captured GEMM")
        return count


def _promotes_as_split(settings: dict) -> bool:
    """True where adding the slices in order is promotion every slice length: the kernel
    never promotes inside a slice and applies no scales at promotion (a fused MMA step never
    returns -0, so not even a zero's sign differs)."""
    scaling = settings.get("scaling")
    at_promotion = getattr(scaling, "when", None) == "promotion" or scaling in _AT_PROMOTION
    return settings.get("promote", 0) == 0 and not at_promotion


_AT_PROMOTION = {"group"}
"""Scaling names applied at each promotion: their split-K restarts the scaled sum per slice."""


def _check_problem_shape(shape, m: int, n: int, k: int) -> tuple[int, int]:
    """(M, N) of a problem_shape that contains an (m, k) x (k, n) crop, or ValueError."""
    full = tuple(shape) if isinstance(shape, (tuple, list)) else ()
    if len(full) != 3 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
                             for v in full):
        raise ValueError(f"problem_shape: expected (M, N, K) positive ints, got {shape!r}")
    if full[2] != k or full[0] < m or full[1] < n:
        raise ValueError(f"problem_shape: {full} does not contain a ({m}, {k}) x ({k}, {n}) "
                         "crop (K must be the same)")
    return int(full[0]), int(full[1])


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
           split=CUBLASLT_FAST_SPLIT_H100,
           description="cuBLASLt (torch._scaled_mm) with use_fast_accum=True: no promotion, "
                       "then acc * float32(scale_a * scale_b). Past K = 4096 cuBLASLt splits K "
                       "into slices whose FP32 sum is promotion every slice length: the H100's "
                       "captured slice counts apply, other shapes need slices=. (The long-K "
                       "captures have unit scales: alpha applied once to the slices' sum is "
                       "unverified there.)"),
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
    slices = CUBLASLT_FAST_SPLIT_H100.slices(m, n, k, out_dtype)
    if slices is None:
        return None
    bounds = split_bounds(k, slices, CUBLASLT_FAST_SPLIT_H100.align)
    return 0 if len(bounds) == 1 else bounds[0][1]


def kernel(name: str | Kernel) -> Kernel:
    """Looks a kernel up by name; a Kernel passes through."""
    if isinstance(name, Kernel):
        return name
    if name in KERNELS:
        return KERNELS[name]
    raise ValueError(f"kernel: unknown kernel {name!r}; expected one of {', '.join(KERNELS)}")
