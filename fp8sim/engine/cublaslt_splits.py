"""cuBLASLt's own split-K choice per shape, read from the library on the H100 and the H200.

cuBLASLt (behind torch._scaled_mm and torch.nn.functional.scaled_mm) cuts K into slices
when an output has few tiles and K is long; which count it picks is its heuristic. A probe
(`fp8sim/capture/cublaslt_probe`: an LD_PRELOAD interposer of ``cublasLtMatmul``) recorded
the configuration torch ran for a grid of shapes models use, per card, family and output
type; `data/cublaslt_splits.json.gz` keeps it (card, cuBLASLt and torch versions with it).
Recorded so far: the H100 (every family; per-tensor fast accumulation on the grid only);
a card or family without a recording raises ValueError naming `gpu` or `family` (the
kernels then fall back to their captured `SplitK` tables).
See CUBLASLT_SPLITS.md beside this file.

The answer for a shape comes from, in order:

1. the rule: no split at K <= ``unsplit_max_k`` (5120 on the H100 for most families; each
   family and output type has its own, in the data) or for outputs of more than
   ``split_max_mn`` elements (M x N; about 130000 on the H100); row-wise scaling never
   splits; both thresholds hold at every recorded point;
2. the recorded count at that (M, N, K) (grid and held-out random shapes);
3. the dense recordings, kept as runs: every M (1 up to M x N = 160000) at N and K among
   the projections of common models (forward and Dgrad GEMMs at any token count), and
   every K (a multiple of 16, or of 128 for blockwise) up to 131072 at M and N among them
   (Wgrad GEMMs at any token count).

Nothing is interpolated: the dense recordings show the count jumping between neighbouring
M (N = 128, K = 16384 on the H100: 6 slices at M 1-48 and 64, 5 at M 49-63, 4 at 65-72),
and a bracket rule (the common count of the recorded grid points around a shape), tried on
the first H100 grid, was wrong at 1,759 of 48,926 dense points it answered.
Anything else inside the split region is refused with a ValueError naming ``slices=``.

Families: "tensor-fast", "tensor" (per-tensor scales, with / without fast accumulation),
"row-fast", "row" (row-wise), "block128" (1x128 x 128x128), "block1" (1x128 x 128x1).
"""

from __future__ import annotations

import bisect
import gzip
import json
from functools import cache
from pathlib import Path

import numpy as np

__all__ = ["FAMILIES", "GPUS", "RANGE", "cublaslt_slices", "split_source", "batch_invariance",
           "card_info", "recorded", "invariance_text"]

DATA = Path(__file__).parent / "data" / "cublaslt_splits.json.gz"
FAMILIES = ("tensor-fast", "tensor", "row-fast", "row", "block128", "block1")
GPUS = ("H100", "H200")
RANGE = {"m": (1, 65536), "n": (1, 28672), "k": (1, 131072)}
"""The shapes the recordings span (torch's M, N, K); outside: ValueError (except that K at
or below a card's never-split bound is unsplit at any M and N)."""
_GROUP = {"tensor-fast": "tensor-fast", "tensor": "tensor", "row-fast": "row", "row": "row",
          "block128": "block128", "block1": "block1"}
_OUTS = {"float32": "float32", "bfloat16": "bfloat16", "float16": "bfloat16"}
"""float16 outputs are taken to split as bfloat16 ones (both 16-bit; not recorded)."""


class _Table:
    """One card x group x output type: thresholds, recorded counts, grid axes."""

    def __init__(self, rec: dict):
        self.unsplit_max_k = int(rec["unsplit_max_k"])
        self.split_max_mn = int(rec["split_max_mn"])
        self.m_multiple = int(rec.get("m_multiple", 1))
        """Every recorded M is a multiple of this (4 for blockwise scaling on cuBLASLt 13.1:
        other M raise CUBLAS_STATUS_NOT_SUPPORTED)."""
        self.points = int(rec["points"])
        self.rule_points = int(rec["rule_points"])
        self.table: dict[tuple[int, int, int], int] = {}
        for item in rec["table"].split():
            m, n, k, s = (int(v) for v in item.split(","))
            self.table[(m, n, k)] = s
        self.m_runs = {tuple(int(v) for v in key.split(",")): r
                       for key, r in rec.get("m_runs", {}).items()}
        self.k_runs = {tuple(int(v) for v in key.split(",")): r
                       for key, r in rec.get("k_runs", {}).items()}

    def rule(self, m: int, n: int, k: int) -> int | None:
        """1 outside the split region, None inside."""
        if k <= self.unsplit_max_k or m * n > self.split_max_mn:
            return 1
        return None

    def dense(self, m: int, n: int, k: int) -> int | None:
        """The count from the dense recordings (every M at projection N and K; every token
        count K at projection M and N), None off them or where a point was not recorded."""
        r = self.m_runs.get((n, k))
        if r is not None and m <= r[0]:
            return _run_value(r[1:], m)
        r = self.k_runs.get((m, n))
        if r is not None and r[1] <= k <= r[2] and (k - r[1]) % r[0] == 0:
            return _run_value(r[3:], k)
        return None

    def dense_text(self) -> str:
        """The densely recorded range in words ('' when there is none)."""
        parts = []
        if self.m_runs:
            ns = sorted({n for n, _ in self.m_runs})
            ks = sorted({k for _, k in self.m_runs})
            parts.append(f"every M for N in {{{', '.join(map(str, ns))}}} and K in "
                         f"{{{', '.join(map(str, ks))}}} (up to M x N = "
                         f"{max(r[0] * n for (n, _), r in self.m_runs.items())})")
        if self.k_runs:
            mn = sorted(self.k_runs)
            r = next(iter(self.k_runs.values()))
            parts.append(f"every K (a multiple of {r[0]}, {r[1]}..{r[2]}) for (M, N) in "
                         f"{{{', '.join(f'{m}x{n}' for m, n in mn)}}}")
        return " (recorded densely: " + "; ".join(parts) + ")" if parts else ""


def _run_value(runs: list[int], x: int) -> int | None:
    """The value of the run [start, value, start, value, ...] holding x (0: not recorded)."""
    i = bisect.bisect_right(runs[0::2], x) - 1
    v = runs[2 * i + 1] if i >= 0 else 0
    return v or None


@cache
def _data() -> dict:
    with gzip.open(DATA, "rt") as f:
        return json.load(f)


@cache
def _table(gpu: str, group: str, out: str) -> _Table:
    rec = _data()["cards"][gpu]["groups"].get(group, {}).get("outs", {}).get(out)
    if rec is None:
        raise ValueError(f"family: no {group} recording for {out} outputs on the {gpu} "
                         f"(recorded: {', '.join(_data()['cards'][gpu]['groups'])})")
    return _Table(rec)


def recorded(family: str, out_dtype: str = "float32", gpu: str = "H100") -> bool:
    """Whether the data holds a recording for this family, output type and card."""
    out = _OUTS.get(out_dtype) if isinstance(out_dtype, str) else None
    card = _data()["cards"].get(gpu, {})
    return out is not None and out in card.get("groups", {}).get(_GROUP.get(family), {}).get(
        "outs", {})


@cache
def family_splits(family: str) -> bool:
    """Whether a family splits K on some recorded card: the smallest output at the longest K
    is where it splits first, so a family the rule leaves unsplit there never does."""
    for gpu in GPUS:
        for out in ("float32", "bfloat16"):
            if recorded(family, out, gpu) and \
                    split_source(family, 1, 1, RANGE["k"][1], out, gpu) != (1, "rule"):
                return True
    return False


def card_info(gpu: str = "H100") -> dict:
    """Where a card's recording came from: device name, SM count, cuBLASLt and torch
    versions."""
    _check_gpu(gpu)
    c = _data()["cards"][gpu]
    return {k: c[k] for k in ("device", "sms", "cublaslt_version", "torch", "cuda")}


def _check_gpu(gpu) -> None:
    have = [g for g in GPUS if g in _data()["cards"]]
    if gpu in GPUS and gpu not in have:
        raise ValueError(f"gpu: cuBLASLt's split-K choice is recorded on the "
                         f"{' and '.join(have)} only, not yet on the {gpu} "
                         "(fp8sim/engine/CUBLASLT_SPLITS.md: how to record a card)")
    if gpu not in GPUS:
        raise ValueError(f"gpu: expected one of {', '.join(repr(g) for g in GPUS)}, got {gpu!r}")


def check_family(family) -> str:
    """A family name of FAMILIES, else a ValueError naming `family`."""
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")
    return family


def check_out(out_dtype) -> str:
    """The recorded output name ("float32" or "bfloat16"; float16 splits as bfloat16) of an
    output dtype, else a ValueError naming `out_dtype`."""
    try:
        key = out_dtype if isinstance(out_dtype, str) else str(np.dtype(out_dtype))
    except TypeError:
        key = None
    out = _OUTS.get(key)
    if out is None:
        raise ValueError(f"out_dtype: expected float32, bfloat16 or float16, got {out_dtype!r}")
    return out


def _check(family, m, n, k, out_dtype, gpu) -> tuple[int, int, int, str]:
    check_family(family)
    _check_gpu(gpu)
    out = check_out(out_dtype)
    vals = []
    for name, v in (("m", m), ("n", n), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}: expected an int, got {v!r}")
        lo, hi = RANGE[name]
        if not lo <= v <= hi:
            raise ValueError(f"{name}: {v} is outside the recorded range of cuBLASLt's split "
                             f"choice, {name.upper()} in [{lo}, {hi}] (M, N, K up to "
                             f"{RANGE['m'][1]}, {RANGE['n'][1]}, {RANGE['k'][1]}); pass slices=")
        vals.append(int(v))
    return vals[0], vals[1], vals[2], out


def split_source(family: str, m: int, n: int, k: int, out_dtype: str = "float32",
                 gpu: str = "H100") -> tuple[int | None, str]:
    """(slice count, where it came from: "rule", "table", "dense" or "unknown").

    K <= the card's ``unsplit_max_k`` is unsplit at any M, N >= 1 (every recording); longer
    K must lie in `RANGE`."""
    out = _check(family, 1, 1, k, out_dtype, gpu)[3]
    t = _table(gpu, _GROUP[family], out)
    if k <= t.unsplit_max_k and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                    and v >= 1 for v in (m, n)):
        return 1, "rule"
    m, n, k, out = _check(family, m, n, k, out_dtype, gpu)
    r = t.rule(m, n, k)
    if r is not None:
        return r, "rule"
    s = t.table.get((m, n, k))
    if s is not None:
        return s, "table"
    s = t.dense(m, n, k)
    if s is not None:
        return s, "dense"
    return None, "unknown"


def cublaslt_slices(family: str, m: int, n: int, k: int, out_dtype: str = "float32",
                    gpu: str = "H100") -> int:
    """How many K slices cuBLASLt runs for torch's (M, N, K) FP8 GEMM of this family.

    Args:
        family: "tensor-fast", "tensor", "row-fast", "row", "block128", "block1".
        m, n, k: torch's shape (A is M x K, B is K x N).
        out_dtype: "float32" or "bfloat16" ("float16" taken as bfloat16).
        gpu: "H100" or "H200".

    Raises ValueError outside `RANGE`, and inside the split region where the recording
    does not give the count (the message names the way out).
    """
    s, _ = split_source(family, m, n, k, out_dtype, gpu)
    if s is None:
        t = _table(gpu, _GROUP[family], _check(family, m, n, k, out_dtype, gpu)[3])
        if m % t.m_multiple:
            raise ValueError(
                f"m: cuBLASLt runs {family} scaling only for M a multiple of {t.m_multiple} "
                f"(every other M raised CUBLAS_STATUS_NOT_SUPPORTED on the {gpu}), got M = {m}; "
                "pass slices= to simulate such a GEMM anyway")
        raise ValueError(
            f"slices: cuBLASLt's split of ({m}, {n}, {k}) ({family}, {out_dtype}, {gpu}) was "
            f"not recorded: with K > {t.unsplit_max_k} and M x N <= {t.split_max_mn} the "
            "library picks it by a heuristic, and this shape is off the recording"
            f"{t.dense_text()}; pass slices= (fp8sim.identify(..., search='split') finds it "
            "from outputs) or record it (fp8sim/engine/CUBLASLT_SPLITS.md)")
    return s


KERNEL_FAMILY = {"cublaslt-fast": "tensor-fast", "cublaslt": "tensor",
                 "torch-rowwise-fast": "row-fast", "torch-rowwise": "row",
                 "cublaslt-blockwise": "block128"}
"""The kernels whose split is cuBLASLt's choice (`fp8sim.KERNELS` names), by recorded
family (blockwise: the 1x128 x 128x1 epilogue is "block1")."""


def batch_invariance(kernel, n: int, k: int, gpu: str = "H100", m_max: int = 65536, *,
                     out_dtype: str = "float32", family: str | None = None
                     ) -> list[tuple[int, int, int | None]]:
    """The M ranges (m_lo, m_hi, slices) over which cuBLASLt keeps one split of K.

    Within a range a row's bits do not change with the batch size M (the split is the only
    M-dependent part of the arithmetic fp8sim models); at a range boundary they may.
    slices None: the count is not known there (off the recording). Where cuBLASLt runs the
    family only for M a multiple of `m_multiple` (blockwise: 4), the split-region ranges
    hold for those M (the others raise in the library).

    kernel: a kernel name ("cublaslt-fast", "cublaslt", "torch-rowwise[-fast]",
    "cublaslt-blockwise" - family "block128" unless `family` says "block1") or a family.
    """
    name = getattr(kernel, "name", kernel)
    fam = family or KERNEL_FAMILY.get(name, name)
    if fam not in FAMILIES:
        raise ValueError(f"kernel: expected a cuBLASLt kernel ({', '.join(KERNEL_FAMILY)}) "
                         f"or a family ({', '.join(FAMILIES)}), got {kernel!r}")
    if isinstance(m_max, bool) or not isinstance(m_max, (int, np.integer)) or \
            not 1 <= m_max <= RANGE["m"][1]:
        raise ValueError(f"m_max: expected an int in [1, {RANGE['m'][1]}], got {m_max!r}")
    _check(fam, 1, n, k, out_dtype, gpu)
    t = _table(gpu, _GROUP[fam], _check(fam, 1, n, k, out_dtype, gpu)[3])
    ranges: list[list] = []
    last_small = min(m_max, t.split_max_mn // n) if k > t.unsplit_max_k else 0
    step = t.m_multiple
    for m in range(step, last_small + 1, step):
        s, _ = split_source(fam, m, n, k, out_dtype, gpu)
        if ranges and ranges[-1][2] == s:
            ranges[-1][1] = m
        else:  # contiguous: the M between multiples of `step` go with the range after them
            ranges.append([ranges[-1][1] + 1 if ranges else 1, m, s])
    if last_small < m_max:
        if ranges and ranges[-1][2] == 1:
            ranges[-1][1] = m_max
        else:
            ranges.append([(ranges[-1][1] + 1) if ranges else 1, m_max, 1])
    return [tuple(r) for r in ranges]


def invariance_text(kernel, n: int, k: int, gpu: str = "H100", m_max: int = 65536, *,
                    out_dtype: str = "float32", family: str | None = None) -> str:
    """`batch_invariance` as the lines `fp8sim splits` prints: a header naming the card and
    library version, then one line per M range."""
    ranges = batch_invariance(kernel, n, k, gpu, m_max, out_dtype=out_dtype, family=family)
    name = getattr(kernel, "name", kernel)
    fam = family or KERNEL_FAMILY.get(name, name)
    info = card_info(gpu)
    v = info["cublaslt_version"] or 0
    lines = [f"{name} ({fam}, {out_dtype} out) N={n} K={k} on the {gpu} (cuBLASLt "
             f"{v // 10000}.{v // 100 % 100}.{v % 100}, torch {info['torch']})"]
    step = _table(gpu, _GROUP[fam], _check(fam, 1, n, k, out_dtype, gpu)[3]).m_multiple
    if step > 1:
        lines.append(f"(cuBLASLt runs {fam} scaling only for M a multiple of {step}; the "
                     "ranges hold for those M)")
    for lo, hi, s in ranges:
        where = f"M {lo}-{hi}" if lo != hi else f"M {lo}"
        if s is None:
            lines.append(f"{where}: not recorded (pass slices=)")
        elif s == 1:
            lines.append(f"{where}: 1 slice (no split)")
        else:
            lines.append(f"{where}: {s} slices")
    if len(ranges) > 1:
        lines.append("rows keep their bits while M stays within one range; they may change "
                     "across a boundary")
    elif ranges[0][2] is None:
        lines.append("not recorded at any M here: whether rows keep their bits is unknown")
    else:
        lines.append("one split for every M: rows keep their bits at any batch size")
    return "\n".join(lines)
