"""Which split of K a kernel runs for a shape, and where that count came from.

The entry points that run kernels (`fp8sim.linear`, `Float8SimLinear`,
`fp8sim.torch.scaled_mm`, `fp8sim gemm`) let the caller name `slices` and `gpu`; this
module checks those two arguments the same way everywhere and says which split ran:

* `check_gpu` / `check_slices`: the argument checks (errors name `gpu` / `slices`);
* `kernel_splits`: whether a kernel ever splits K (cuBLASLt's per-tensor and blockwise
  kernels do; DeepGEMM, Triton and row-wise scaling never do), so a `slices` for a kernel
  that never splits is refused instead of silently simulating a split no library runs;
* `split_choice`: (slice count, source) of one GEMM: "user", "table", "rule", "dense"
  (`fp8sim.engine.cublaslt_splits`), "captured" (a kernel's captured `SplitK`), "never"
  (the kernel never splits) or "unrecorded" (a card without a recording of the kernel);
* `splits`: `cublaslt_splits.batch_invariance` for any kernel (one range for the kernels
  that never split): the M ranges over which rows keep their bits.
"""

from __future__ import annotations

import numpy as np

from fp8sim.engine import cublaslt_splits
from fp8sim.engine.cublaslt_splits import KERNEL_FAMILY
from fp8sim.engine.kernel import KERNELS, Kernel
from fp8sim.engine.kernel import kernel as lookup_kernel

__all__ = ["SOURCES", "check_gpu", "check_slices", "kernel_splits", "refuse_unsplit",
           "splitting_kernels", "split_choice", "library_split", "splits", "splits_text"]

SOURCES = {"user": "passed by the caller", "table": "cuBLASLt's recorded choice",
           "rule": "the recorded rule (short K or a large output: no split)",
           "dense": "cuBLASLt's recorded choice (dense recording: every M at projection N, K; "
                    "every token count K at projection M, N)",
           "captured": "the kernel's captured split table", "never": "the kernel never splits K",
           "unrecorded": "no recording or captured table for this kernel on this card: the "
                         "kernel runs one chain through K"}
"""Where a split count comes from (`split_choice`'s second value), in words."""


def check_gpu(gpu) -> str:
    """The card name, or a ValueError naming `gpu` ("H100" or "H200")."""
    if not isinstance(gpu, str) or gpu not in cublaslt_splits.GPUS:
        raise ValueError(f"gpu: expected one of {', '.join(map(repr, cublaslt_splits.GPUS))}, "
                         f"got {gpu!r}")
    return gpu


def check_slices(slices, arg: str = "slices") -> int | None:
    """None or a positive int; anything else is a ValueError naming `arg`."""
    if slices is None:
        return None
    if isinstance(slices, bool) or not isinstance(slices, (int, np.integer)) or slices < 1:
        raise ValueError(f"{arg}: expected a positive int (the number of K slices), "
                         f"got {slices!r}")
    return int(slices)


def kernel_splits(kern: str | Kernel) -> bool:
    """True where the kernel's library splits K for some shapes (so `slices` applies)."""
    return lookup_kernel(kern).splits_k


def refuse_unsplit(kern: str | Kernel, slices: int | None, arg: str = "slices") -> None:
    """A ValueError naming `arg` where `slices` is given for a kernel that never splits K."""
    lookup_kernel(kern).refuse_slices(slices, arg)


def splitting_kernels() -> list[str]:
    """The names in `fp8sim.KERNELS` whose library splits K."""
    return [name for name, k in KERNELS.items() if k.splits_k]


def split_choice(kern: str | Kernel, m: int, n: int, k: int, *, out_dtype: str = "float32",
                 gpu: str = "H100", slices: int | None = None, scale_a=None, scale_b=None
                 ) -> tuple[int | None, str]:
    """(slice count, source) of the split `kern` runs for torch's (M, N, K) GEMM on `gpu`.

    The source is a key of `SOURCES`; the count is None where it is not known (the kernel
    would refuse, asking for `slices`). `scale_a` / `scale_b` pick the scale layout where a
    kernel takes several (cuBLASLt blockwise: 128x128 or 128x1 blocks of B).
    """
    kobj = lookup_kernel(kern)
    check_gpu(gpu)
    settings = {"promote": kobj.promote, "scaling": kobj.scaling, "out_dtype": out_dtype,
                "scale_a": scale_a, "scale_b": scale_b}
    ep = kobj._epilogue(settings, m, k, n)
    if check_slices(slices) is not None:
        kobj.refuse_slices(slices)
        # the slices K is cut in (fewer than asked at short K)
        return len(kobj.slice_bounds(k, slices, kobj._split_for(ep))), "user"
    if not kernel_splits(kobj):
        return 1, "never"
    family = KERNEL_FAMILY.get(kobj.name)
    if family == "block128" and ep is not None and ep.name == "group-column":
        family = "block1"
    out = "float32" if str(out_dtype) == "float32" else "bfloat16"
    if family is not None and cublaslt_splits.recorded(family, out, gpu):
        try:
            return cublaslt_splits.split_source(family, m, n, k, out, gpu)
        except ValueError:
            return None, "unknown"
    split = kobj._split_for(ep)
    if split is None:
        return 1, "unrecorded"
    if split.device and split.device != gpu and k > split.unsplit_max_k:
        return None, "unknown"
    return split.slices(m, n, k, out), "captured"


def library_split(kernel: str | Kernel) -> bool:
    """True where the kernel's split of K is a library's choice per shape (cuBLASLt's
    kernels and families, row-wise included), False for kernels that never split."""
    if isinstance(kernel, str) and kernel in cublaslt_splits.FAMILIES:
        return True
    k = lookup_kernel(kernel)
    return k.name in KERNEL_FAMILY or bool(k.split)


def splits(kernel: str | Kernel, n: int, k: int, gpu: str = "H100", m_max: int = 65536, *,
           out_dtype: str = "float32", family: str | None = None
           ) -> list[tuple[int, int, int | None]]:
    """The M ranges (m_lo, m_hi, slices) over which a kernel keeps one split of K: batch
    invariance (rows keep their bits while the batch size M stays within one range).

    cuBLASLt kernels: `fp8sim.engine.cublaslt_splits.batch_invariance` (slices None where
    the count was never recorded). Kernels that never split (DeepGEMM, Triton, torchao's
    Triton blockwise): one range, 1 slice. Raises ValueError naming the argument (unknown
    kernel or gpu, n or k not a positive int, out of the recorded range).

    Args:
        kernel: a name in `fp8sim.KERNELS` (or a Kernel), or a cuBLASLt family name
            (`cublaslt_splits.FAMILIES`: "tensor-fast", "tensor", "row-fast", "row",
            "block128", "block1").
        n, k: the GEMM's N and K (torch's (M, K) x (K, N)).
        gpu: the card whose recorded choice to read, "H100" or "H200".
        m_max: the largest batch size M listed.
        out_dtype: "float32", "bfloat16" or "float16" (splits as bfloat16).
        family: for a blockwise kernel, its scale layout's family ("block128": 128x128
            blocks of B; "block1": 128x1 tiles, the Wgrad GEMM); None: the kernel's own.
    """
    check_gpu(gpu)
    for name, v in (("n", n), ("k", k), ("m_max", m_max)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    cublaslt_splits.check_out(out_dtype)
    if family is not None:
        cublaslt_splits.check_family(family)
    if isinstance(kernel, str) and kernel in cublaslt_splits.FAMILIES:
        return cublaslt_splits.batch_invariance(kernel, n, k, gpu, m_max,
                                                out_dtype=out_dtype, family=family)
    kobj = lookup_kernel(kernel)
    if not library_split(kobj):
        if m_max > cublaslt_splits.RANGE["m"][1]:
            raise ValueError(f"m_max: expected an int in [1, {cublaslt_splits.RANGE['m'][1]}]"
                             f", got {m_max!r}")
        return [(1, int(m_max), 1)]
    return cublaslt_splits.batch_invariance(kobj.name, n, k, gpu, m_max, out_dtype=out_dtype,
                                            family=family)


def splits_text(kernel: str | Kernel, n: int, k: int, gpu: str = "H100", m_max: int = 65536, *,
                out_dtype: str = "float32", family: str | None = None) -> str:
    """`splits` as the lines `fp8sim splits` prints (`cublaslt_splits.invariance_text` for
    cuBLASLt kernels)."""
    ranges = splits(kernel, n, k, gpu, m_max, out_dtype=out_dtype, family=family)
    name = getattr(kernel, "name", kernel)
    if library_split(kernel):
        text = cublaslt_splits.invariance_text(name, n, k, gpu, m_max, out_dtype=out_dtype,
                                               family=family)
        if len(ranges) == 1 and ranges[0][2] is None:  # not "rows keep their bits"
            text = text.rsplit("\n", 1)[0] + ("\nthe split was never recorded here: whether "
                                              "rows keep their bits across M is not known")
        return text
    lo, hi, _ = ranges[0]
    return "\n".join([f"{name} N={n} K={k} on the {gpu}: this kernel never splits K",
                      f"M {lo}-{hi}: 1 slice (no split)",
                      "one split for every M: rows keep their bits at any batch size"])
