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

from fp8sim._lookup import lookup
from fp8sim._torch_arrays import is_torch
from fp8sim.engine import cublaslt_splits
from fp8sim.engine.epilogue import GROUP, GROUP_A_FIRST, GROUP_COLUMN, Epilogue
from fp8sim.engine.gemm import OUT_DTYPES, check_out_dtype, gemm, resolve_scaling
from fp8sim.engine.mma import HOPPER, MMAStep
from fp8sim.engine.splitk import SplitK, gemm_split_k, split_bounds
from fp8sim.formats.info import format_info, format_of_dtype

__all__ = ["Kernel", "KERNELS", "kernel", "cublaslt_fast_promote", "CUBLASLT_FAST_SLICES_H100",
           "CUBLASLT_FAST_SPLIT_H100", "CUBLASLT_BLOCKWISE_SPLIT",
           "CUBLASLT_BLOCKWISE_WGRAD_SPLIT"]

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
                "the H100, as first captured: one chain up to K = 4096, the captured slice "
                "counts beyond (cuBLASLt's recorded choice, fp8sim.engine.cublaslt_splits, "
                "comes first wherever it covers the shape).")
"""cuBLASLt fast accumulation's split of K on the H100."""


CUBLASLT_BLOCKWISE_SPLIT = SplitK(
    name="cublaslt-blockwise 1x128 x 128x128", epilogue="group", align=512, unsplit_max_k=4096,
    unsplit_min_tiles=9, device="H200", table={
        (64, 128, 8192): 3, (64, 128, 16384): 6, (64, 128, 32768): 11,
        (128, 128, 5120): 1, (128, 128, 6144): 2, (128, 128, 7168): 2, (128, 128, 8192): 3,
        (128, 128, 10240): 3, (128, 128, 12288): 4, (128, 128, 14336): 5,
        (128, 128, 16384): 6, (128, 128, 18432): 6, (128, 128, 20480): 7,
        (128, 128, 24576): 8, (128, 128, 32768): 11, (128, 128, 40960): 14,
        (128, 128, 49152): 14, (128, 128, 65536): 15,
        (128, 256, 8192): 3, (128, 256, 16384): 6, (128, 256, 32768): 7,
        (256, 128, 8192): 3, (256, 128, 16384): 6, (256, 128, 32768): 7,
        (256, 256, 8192): 3, (256, 256, 16384): 3, (256, 256, 32768): 3,
        (384, 384, 8192): 1, (384, 384, 16384): 1, (384, 384, 32768): 1,
        (512, 512, 16384): 1, (512, 512, 32768): 1,
        (64, 7168, 18432): 1, (64, 18432, 7168): 1, (128, 1536, 7168): 1,
        (128, 7168, 16384): 1, (256, 7168, 18432): 1, (256, 18432, 7168): 1,
        (1024, 7168, 18432): 1, (1024, 18432, 7168): 1, (2048, 1536, 7168): 1,
        (4096, 2048, 7168): 1, (4096, 7168, 16384): 1, (4096, 7168, 18432): 1,
        (4096, 18432, 7168): 1},
    description="torch._scaled_mm / F.scaled_mm with BlockWise1x128 x BlockWise128x128 "
                "(cuBLASLt 13.1, H200): at long K for few output tiles, S slices of ceil(K/S) "
                "rounded up to 512, each the group epilogue over its own K groups from +0, the "
                "slice results added in FP32 in order; bf16 out rounds that sum. Every capture "
                "with K <= 5120 was unsplit, and so was every output of 9 or more 128 x 128 "
                "tiles (384 x 384 up to K = 32768, 512 x 512, the DeepSeek-V3 layer shapes up "
                "to K = 18432); 256 x 256 (4 tiles) and smaller were split.")
"""Split-K of cuBLASLt's forward blockwise kernel: slice counts captured, by (M, N, K)."""

CUBLASLT_BLOCKWISE_WGRAD_SPLIT = SplitK(
    name="cublaslt-blockwise 1x128 x 128x1", epilogue="group-column", align=128,
    unsplit_max_k=4096, unsplit_min_tiles=16, device="H200", table={
        (128, 128, 8192): 3, (128, 128, 12288): 4, (128, 128, 16384): 6,
        (128, 128, 24576): 9, (128, 128, 32768): 11, (128, 128, 65536): 15,
        (256, 256, 16384): 3, (256, 256, 32768): 3, (512, 512, 16384): 1,
        (2048, 7168, 4096): 1, (7168, 2048, 4096): 1, (7168, 18432, 1024): 1},
    description="torch._scaled_mm / F.scaled_mm with BlockWise1x128 on both operands (the "
                "Wgrad GEMM; cuBLASLt 13.1, H200): S slices of ceil(K/S) rounded up to 128, "
                "each the group-column epilogue over its own K groups, added in FP32 in order; "
                "outputs of 16 or more 128 x 128 tiles (512 x 512 up, the layer shapes) were "
                "never split.")
"""Split-K of cuBLASLt's 1x128 x 128x1 (Wgrad) kernel: slice counts captured, by (M, N, K)."""



UNSPLIT_ANY_CARD_K = 4096
"""K up to which no recording or capture of cuBLASLt, on any card, split K: the kernels run
one chain there on a card whose choice was not recorded, and refuse beyond it."""

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
    the kernel takes (the one whose shapes fit the scales given is used; shapes that fit
    two, as at N = 1, need scaling= named)."""
    out_dtype: str = "float32"
    verified: bool = False
    """True where GPU captures back this kernel bit for bit."""
    device: str = "H100"
    """The GPU whose captures verify it."""
    split: tuple[SplitK, ...] = ()
    """Where the library splits K, one `SplitK` per scale layout (its `epilogue`; None:
    any): the rule and the captured slice counts. Empty: the kernel never splits."""
    formats: tuple[str, ...] = ()
    """The operand formats the kernel takes (what its captures back); empty: e4m3 and e5m2."""
    out_dtypes: tuple[str, ...] = ()
    """The output types the kernel writes (what its captures back); empty: every out_dtype."""
    two_e5m2: bool = True
    """Whether the kernel takes E5M2 for both operands (cuBLASLt's FP8 GEMM refuses it)."""
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
                 problem_shape: tuple[int, int, int] | None = None, gpu: str = "H100",
                 **kwargs) -> np.ndarray:
        """Runs fp8sim.gemm with this kernel's settings; keyword arguments override them.

        slices: cut K into this many slices (`fp8sim.engine.splitk`); by default cuBLASLt
        kernels take the count the library picks for the GEMM's shape on `gpu`
        (`fp8sim.engine.cublaslt_splits`), other kernels 1 (they never split). Raises
        ValueError naming `slices` where that count is not known.
        problem_shape: (M, N, K) of the GEMM the library ran, when `a` and `b` are a crop of
        its rows and columns (the split depends on the whole shape).
        gpu: "H100" (default) or "H200": the card whose split-K choice applies.
        """
        settings, count, split = self._resolve(a, b, slices, problem_shape, kwargs, gpu)
        if count > 1:  # a split that is no promotion: the slices one by one
            return gemm_split_k(a, b, slices=count, align=_align(split), **settings)
        return gemm(a, b, **settings)

    def slices_for(self, a, b, *, slices: int | None = None,
                   problem_shape: tuple[int, int, int] | None = None, gpu: str = "H100",
                   **kwargs) -> int:
        """How many slices this kernel runs a and b in, one by one (1: one gemm call, a
        split that is promotion every slice length folded in)."""
        return self._resolve(a, b, slices, problem_shape, kwargs, gpu)[1]

    def gemm_kwargs(self, a, b, *, slices: int | None = None,
                    problem_shape: tuple[int, int, int] | None = None, gpu: str = "H100",
                    **kwargs) -> dict:
        """The `fp8sim.gemm` keyword arguments this kernel runs a and b with (its split of K
        as promotion every slice length); ValueError where the split is no promotion."""
        settings, count, _ = self._resolve(a, b, slices, problem_shape, kwargs, gpu)
        if count > 1:
            raise ValueError(f"slices: {count} slices of a kernel that promotes or scales at "
                             "each promotion are not one gemm; call the kernel")
        return settings

    @property
    def splits_k(self) -> bool:
        """True where this kernel's library splits K for some shapes (so `slices` applies)."""
        family = cublaslt_splits.KERNEL_FAMILY.get(self.name)
        return bool(self.split) or (family is not None and cublaslt_splits.family_splits(family))

    def refuse_slices(self, slices, arg: str = "slices") -> None:
        """A ValueError naming `arg` where `slices` asks a kernel that never splits K for a
        split (slices=1, one chain through K, is what such a kernel runs: accepted)."""
        if slices is not None and slices != 1 and not self.splits_k:
            names = ", ".join(name for name, k in KERNELS.items() if k.splits_k)
            raise ValueError(f"{arg}: kernel {self.name} never splits K (only cuBLASLt's "
                             f"per-tensor and blockwise kernels do: {names}); leave it out")

    def _resolve(self, a, b, slices, problem_shape, kwargs, gpu: str = "H100"
                 ) -> tuple[dict, int, SplitK | None]:
        """(gemm settings, slices left to run one by one, the split used): a split that is
        promotion every slice length is folded into the settings (1 slice left)."""
        if gpu not in cublaslt_splits.GPUS:
            raise ValueError(f"gpu: expected one of {', '.join(map(repr, cublaslt_splits.GPUS))}"
                             f", got {gpu!r}")
        settings = {"promote": self.promote, "scaling": self.scaling, "preset": self.step,
                    "out_dtype": self.out_dtype} | kwargs
        a_shape, b_shape = _shape(a), _shape(b)
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[1] != b_shape[0]:
            return settings, 1, None  # fp8sim.gemm names the malformed argument
        (m, k), n = a_shape, b_shape[1]
        self._check_types(a, b, settings)
        ep = self._epilogue(settings, m, k, n)
        split = self._split_for(ep)
        if problem_shape is not None:
            m, n = _check_problem_shape(problem_shape, m, n, k)
        if slices is None:
            slices = self._captured_slices(split, m, n, k, settings["out_dtype"], gpu, ep)
        elif isinstance(slices, bool) or not isinstance(slices, (int, np.integer)) or slices < 1:
            raise ValueError(f"slices: expected a positive int, got {slices!r}")
        else:
            self.refuse_slices(slices)
        bounds = self.slice_bounds(k, int(slices), split)
        if len(bounds) > 1 and settings.get("c") is not None:
            raise ValueError(f"c: {self.name} with slices={slices} splits K into {len(bounds)} "
                             "slices, and split-K with C is not modelled (which slice adds C "
                             "is unverified), as gemm_split_k refuses it; pass slices=1 or add "
                             "C to the output yourself")
        if len(bounds) > 1 and settings.get("promote", 0) == 0 and \
                (ep is None or ep.when != "promotion"):
            # adding the slices in order is promotion every slice length (a fused MMA step
            # never returns -0, so not even a zero's sign differs); end scales stay at the end
            settings["promote"] = bounds[0][1]
            return settings, 1, split
        return settings, len(bounds), split

    @staticmethod
    def slice_bounds(k: int, slices: int, split: SplitK | None) -> list[tuple[int, int]]:
        """The [k0, k1) slices K is cut in: `slices` of a multiple of the split's alignment
        (128 where no `SplitK` applies); fewer than asked at short K."""
        return split_bounds(k, slices, _align(split))

    def _check_types(self, a, b, settings: dict) -> None:
        """Refuses operand formats and output types that no capture of this kernel backs."""
        fmts = []
        for arg, x in (("a", a), ("b", b)):
            fmt = _format_name(x, settings.get(f"{arg}_format"))
            fmts.append(fmt)
            if self.formats and fmt is not None and fmt not in self.formats:
                named = f"{arg}_format" if settings.get(f"{arg}_format") is not None else arg
                raise ValueError(f"{named}: {self.name} takes {' or '.join(self.formats)} "
                                 f"operands (what its captures back), got {fmt}")
        if not self.two_e5m2 and fmts == ["e5m2", "e5m2"]:
            raise ValueError(f"b_format: {self.name} does not multiply two E5M2 operands "
                             "(cuBLASLt refuses it, as torch._scaled_mm does); make one e4m3")
        out = _out_name(settings.get("out_dtype"))
        if self.out_dtypes and out is not None and out not in self.out_dtypes:
            raise ValueError(f"out_dtype: {self.name} writes {' or '.join(self.out_dtypes)} "
                             f"(what its captures back), got {out}")

    @staticmethod
    def _epilogue(settings: dict, m: int, k: int, n: int) -> Epilogue | None:
        """The epilogue these settings select for an (m, k) x (k, n) GEMM (None: plain)."""
        promote = settings.get("promote", 0)
        try:
            return resolve_scaling(settings.get("scaling"), settings.get("scale_a"),
                                   settings.get("scale_b"), m, k, n,
                                   promote if isinstance(promote, (int, np.integer)) else 0)
        except (ValueError, TypeError):
            return None  # fp8sim.gemm names the argument when the kernel runs

    def _split_for(self, ep: Epilogue | None) -> SplitK | None:
        """The `SplitK` of the scale layout the epilogue `ep` is, None if none applies."""
        for sp in self.split:
            if sp.epilogue is None or (ep is not None and sp.epilogue == ep.name):
                return sp
        return None

    def _captured_slices(self, split: SplitK | None, m: int, n: int, k: int, out_dtype,
                         gpu: str = "H100", ep: Epilogue | None = None) -> int:
        """The split-K slice count of an (M, N, K) GEMM on `gpu`: cuBLASLt's recorded choice
        (`cublaslt_splits`), else from `split` where it was captured on that card; or a
        ValueError."""
        dt = check_out_dtype(out_dtype)
        out = "float32" if dt == np.float32 else str(dt)
        if m == 0 or n == 0:
            return 1  # an empty output: nothing to split
        family = cublaslt_splits.KERNEL_FAMILY.get(self.name)
        if family == "block128" and ep is not None and ep.name == "group-column":
            family = "block1"
        if family is not None and cublaslt_splits.recorded(family, out, gpu):
            return cublaslt_splits.cublaslt_slices(family, m, n, k, out, gpu)
        if split is None:
            if family == "tensor" and k > UNSPLIT_ANY_CARD_K:
                raise ValueError(f"gpu: {self.name}'s split of K = {k} on the {gpu} was never "
                                 f"recorded (cuBLASLt splits K > {UNSPLIT_ANY_CARD_K} for small "
                                 "outputs by a heuristic of its own); pass slices= or "
                                 "gpu='H100' (fp8sim/engine/CUBLASLT_SPLITS.md: how to record)")
            return 1
        if split.device and split.device != gpu and k > split.unsplit_max_k:
            # short K is unsplit on both cards (every recording); long K is card-specific
            raise ValueError(f"gpu: {self.name}'s split of K = {k} on the {gpu} was never "
                             f"recorded (captured on the {split.device} only: {split.name}); "
                             f"pass slices= or gpu={split.device!r} "
                             "(fp8sim/engine/CUBLASLT_SPLITS.md: how to record)")
        count = split.slices(m, n, k, out)
        if count is None:
            raise ValueError(
                f"slices: {self.name} splits K = {k} > {split.unsplit_max_k} by a heuristic "
                f"of the library for small outputs ({split.name}), and no capture has the "
                f"split for (M, N, K) = ({m}, {n}, {k}) ({split.device}); pass slices= (1: no "
                "split; fp8sim.identify(..., search='split') finds it from outputs), or "
                "problem_shape= if a and b are a crop of a larger GEMM")
        return count




def _align(split: SplitK | None) -> int:
    """The multiple of K a slice's length is rounded up to (128 where no SplitK applies)."""
    return split.align if split is not None else 128


def _shape(x) -> tuple[int, ...]:
    """The shape of an array or torch tensor, without converting it."""
    return tuple(int(v) for v in getattr(x, "shape", np.shape(x)))


def _format_name(x, fmt) -> str | None:
    """The operand format gemm will read `x` as (None where gemm will name a bad argument)."""
    try:
        if fmt is not None:
            return format_info(fmt).name
        dt = getattr(x, "dtype", None)
        if dt is not None and is_torch(dt):
            name = str(dt).removeprefix("torch.")
            return format_info(name).name if name.startswith("float8") else "e4m3"
        found = format_of_dtype(np.dtype(dt if dt is not None else np.asarray(x).dtype))
    except (ValueError, TypeError):
        return None
    return found.name if found is not None else "e4m3"


def _out_name(out_dtype) -> str | None:
    """The OUT_DTYPES name of an out_dtype (None where gemm will name a bad one)."""
    try:
        dt = check_out_dtype(out_dtype)
    except ValueError:
        return None
    return next(name for name, v in OUT_DTYPES.items() if v == dt)


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


class _Named(dict):
    """A dict of named things whose missing key is a KeyError listing the names there are."""

    def __missing__(self, key):
        raise KeyError(f"kernel: unknown name {key!r}; expected one of {', '.join(self)}")


KERNELS: dict[str, Kernel] = _Named({k.name: k for k in (
    Kernel(name="triton", verified=True,
           description="Triton on Hopper: tl.dot chains wgmma steps through all of K and never "
                       "promotes."),
    Kernel(name="triton-promote128", promote=128, verified=True,
           description="Triton with an explicit acc += part; part = 0 every 128 elements."),
    Kernel(name="deepgemm", promote=128, scaling="group", verified=True,
           description="DeepGEMM-style fine-grained scaling: at each promotion acc = fma(part, "
                       "float32(scale_a[i, g] * scale_b[g, j // 128]), acc)."),
    Kernel(name="cublaslt-fast", scaling="tensor", verified=True, two_e5m2=False,
           split=(CUBLASLT_FAST_SPLIT_H100,),
           description="cuBLASLt (torch._scaled_mm) with use_fast_accum=True: no promotion, "
                       "then acc * float32(scale_a * scale_b). At long K (first at K = 5136) "
                       "for small outputs cuBLASLt splits K into slices whose FP32 sum is "
                       "promotion every slice length; the count per shape is cuBLASLt's "
                       "recorded choice (`fp8sim splits`); scale applied once to the slices' "
                       "sum (captures with random scales)."),
    Kernel(name="cublaslt", promote=128, scaling="tensor", verified=True, two_e5m2=False,
           description="cuBLASLt (torch._scaled_mm) with use_fast_accum=False: promotion "
                       "every 128, then acc * float32(scale_a * scale_b). At long K for small "
                       "outputs it splits K as cublaslt-fast does, by its own recorded choice "
                       "per shape (`fp8sim splits`)."),
    Kernel(name="torch-rowwise-fast", scaling="row", out_dtype="bfloat16", verified=True,
           description="torch._scaled_mm with row-wise scales, use_fast_accum=True, bf16 out."),
    Kernel(name="torch-rowwise", promote=128, scaling="row", out_dtype="bfloat16",
           verified=True,
           description="torch._scaled_mm with row-wise scales, promotion every 128, bf16 out."),
    Kernel(name="cublaslt-blockwise", promote=128, scaling=(GROUP, GROUP_COLUMN),
           split=(CUBLASLT_BLOCKWISE_SPLIT, CUBLASLT_BLOCKWISE_WGRAD_SPLIT), verified=True,
           device="H200", formats=("e4m3",), out_dtypes=("float32", "bfloat16"),
           description="cuBLASLt blockwise scaling (torch._scaled_mm / F.scaled_mm with "
                       "BlockWise1x128 scale_a): promotion every 128; scale_b (G, ceil(N/128)) "
                       "(BlockWise128x128): acc = fma(p, fl(sa*sb), acc); scale_b (G, N) "
                       "(BlockWise1x128 on B, 128x1 tiles): acc = fma(fl(p*sa), sb, acc). "
                       "bf16 out rounds the float32 result. At long K for few output tiles "
                       "it splits K (see split: slices rounded up to 512 forward, 128 Wgrad)."),
    Kernel(name="torchao-triton-blockwise", promote=128, scaling=(GROUP_A_FIRST, GROUP_COLUMN),
           verified=True, device="H200", formats=("e4m3",), out_dtypes=("float32", "bfloat16"),
           description="torchao 0.18's Triton triton_fp8_gemm_1x128_128x128 / _128x1: one "
                       "tl.dot per 128 of K (a chain of 4 wgmma steps from +0), then "
                       "`acc += dot * a_s * b_s` compiles to acc = fma(fl(p*sa), sb, acc). "
                       "bf16 out rounds the float32 result; never splits K."),
)})
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
    return lookup(name, KERNELS, Kernel, arg="kernel", what="kernel")
