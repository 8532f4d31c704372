"""Candidate recipes of an identification and their scoring against an output, bit for bit.

A `Candidate` is one recipe (MMA step, promotion interval, epilogue, split of K); a
`Problem` holds the inputs, the output bits sought and the fixed gemm arguments;
`search_candidates` scores candidates on a row subset, then confirms the best on every
row. `fp8sim.identify` (`fp8sim.analysis.identify`) validates its arguments into a
`Problem` and summarizes the records; `fp8sim.compare` (`fp8sim.analysis.oracle`) scores
the alternatives to a mismatching recipe with the same machinery.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from fp8sim.engine.epilogue import Epilogue
from fp8sim.engine.gemm import gemm
from fp8sim.engine.mma import HOPPER, PRESETS, MMAStep
from fp8sim.engine.splitk import gemm_split_k, split_bounds

__all__ = ["Candidate", "Problem", "search_candidates", "promote_candidates",
           "split_candidates", "scaled_split_candidates", "FRAC_BITS", "TERMS",
           "SCALED_SPLIT_ALIGNS", "MIN_ELEMENTS"]

FRAC_BITS = tuple(range(10, 24))
"""Accumulator fractional bits tried by ``search="full"`` (Hopper has 13)."""
TERMS = (8, 16, 32, 64)
"""Products per fused sum tried by ``search="full"``."""
MIN_ELEMENTS = 512
"""Outputs per candidate in the first, row-subset round."""
_FULL_WORK = 1 << 22  # multiply-adds per candidate below which every row is scored at once
_MAX_SLICES = 64  # split-K slice counts tried: 2.._MAX_SLICES
_SPLIT_ALIGN = 128  # split-K slice lengths are multiples of this
_CONFIRM = 3  # candidates re-scored on every row besides those tied for the best
_SUB_COLUMNS = 256  # scaled outputs wider than twice this are first scored on these columns
SCALED_SPLIT_ALIGNS = (128, 512)
"""Slice alignments tried for blockwise split-K (cuBLASLt: 512 forward, 128 Wgrad)."""


@dataclass(frozen=True)
class Candidate:
    """One recipe tried: an MMA step model and a promotion interval."""

    step: MMAStep
    promote: int
    once: bool = False
    """True for the interval that covers K: one promotion of the whole chain at the end."""
    slices: int = 0
    """For an interval found by the split-K sweep: the number of split-K slices of that
    length that cover K (`fp8sim.engine.splitk`); 0 otherwise."""
    epilogue: Epilogue | None = None
    """The scaling epilogue tried (None: no scales)."""
    split: bool = False
    """True: K really is cut into `slices` slices, each promoting every `promote` and
    scaling its own K groups (blockwise kernels); False: `slices` only names the interval."""
    align: int = 128
    """For a real split: slice lengths are ceil(K / slices) rounded up to this."""
    slice_k: int = 0
    """For a real split: K elements per slice (the last may be shorter)."""

    @property
    def label(self) -> str:
        """Short name, e.g. "hopper p128", "hopper[frac_bits=12] p0", "hopper p4096 (once)",
        "hopper p2816 (split-K, 6 slices)", "hopper p128 group-a-first (split-K, 3 slices)"."""
        text = f"{self.step.name} p{self.promote}" + (" (once)" if self.once else "")
        if self.epilogue is not None:
            text += f" {self.epilogue.name}"
        if self.split:
            text += f" (split-K, {self.slices} slices of {self.slice_k})"
        elif self.slices:
            text += f" (split-K, {self.slices} slices)"
        return text

    def describe(self) -> dict:
        """The candidate as JSON-ready fields (`slices` 0 unless from the split-K sweep)."""
        ep = self.epilogue
        return {"promote": self.promote, "preset": self.step.name,
                "frac_bits": self.step.frac_bits, "terms": self.step.terms,
                "slices": self.slices, "slice_k": self.slice_k if self.split else 0,
                "epilogue": None if ep is None else ep.name,
                "formula": None if ep is None else ep.formula,
                "label": self.label}


@dataclass
class Problem:
    """Inputs, wanted output bits and fixed gemm arguments of one identification."""

    a: np.ndarray
    b: np.ndarray
    want: np.ndarray
    kwargs: dict
    group: int | None  # number of scale groups along K when group-scaled, else None
    epilogues: list[Epilogue] | None = None  # the scaling epilogues to try; None: no scales

    @property
    def k(self) -> int:
        return int(self.a.shape[1])

    def rows(self, idx: np.ndarray) -> Problem:
        """The same problem restricted to some output rows (C and per-row scales follow)."""
        m = self.a.shape[0]
        kw = dict(self.kwargs)
        for name in ("c", "scale_a"):
            v = kw.get(name)
            if v is not None and np.ndim(v) == 2 and np.shape(v)[0] == m:
                kw[name] = np.ascontiguousarray(np.asarray(v)[idx])
        return Problem(np.ascontiguousarray(self.a[idx]), self.b, self.want[idx], kw, self.group,
                        self.epilogues)

    def columns(self, count: int) -> Problem:
        """The same problem on its first `count` columns (a multiple of 128, so that scale_b's
        128-column blocks stay whole); C and per-column scales follow."""
        n = self.b.shape[1]
        kw = dict(self.kwargs)
        if kw.get("c") is not None:
            kw["c"] = np.ascontiguousarray(np.asarray(kw["c"])[:, :count])
        sb = kw.get("scale_b")
        if sb is not None and np.ndim(sb) == 2:
            width = np.shape(sb)[1]
            keep = count if width == n else (-(-count // 128) if width == -(-n // 128) else width)
            kw["scale_b"] = np.ascontiguousarray(np.asarray(sb)[:, :keep])
        return Problem(self.a, np.ascontiguousarray(self.b[:, :count]),
                        np.ascontiguousarray(self.want[:, :count]), kw, self.group,
                        self.epilogues)

    def applicable(self, cand: Candidate) -> bool:
        """False for recipes that cannot be run with these arguments (gemm would refuse)."""
        p = cand.promote
        if p and p % cand.step.terms:
            return False
        ep = cand.epilogue
        if ep is not None and ep.when == "promotion" and (p <= 0 or cand.step.exact):
            return False
        if self.group is not None and (ep is None or ep.k_grouped):
            return p > 0 and not cand.step.exact and math.ceil(self.k / p) == self.group
        return True

    def matched(self, cand: Candidate) -> int:
        """Output elements the candidate reproduces bit for bit."""
        kw = self.kwargs if cand.epilogue is None else self.kwargs | {"scaling": cand.epilogue}
        if cand.split:
            got = gemm_split_k(self.a, self.b, slices=cand.slices, align=cand.align,
                               promote=cand.promote, preset=cand.step, **kw)
        else:
            got = gemm(self.a, self.b, promote=cand.promote, preset=cand.step, **kw)
        return int(np.count_nonzero(got.view(self.want.dtype) == self.want))


def split_candidates(k: int, step: MMAStep, skip: Iterable[int] = (),
                     max_slices: int = _MAX_SLICES) -> list[Candidate]:
    """Promotion intervals of split-K: for 2..max_slices slices, the slice length
    ceil(K / slices) rounded up to 128, unless `skip` (the plain sweep) has it already.

    Unpromoted slices of length L whose FP32 results are added in order give the bits
    of promotion every L (`fp8sim.splitk`), but for the sign of a zero result.
    """
    seen, out = set(skip), []
    for n in range(2, max_slices + 1):
        bounds = split_bounds(k, n, _SPLIT_ALIGN)
        size = bounds[0][1] - bounds[0][0]
        if len(bounds) < 2 or size in seen or size % step.terms:
            continue
        seen.add(size)
        out.append(Candidate(step, size, False, len(bounds)))
    return out


def scaled_split_candidates(k: int, step: MMAStep, promote: int, epilogue: Epilogue,
                            max_slices: int = _MAX_SLICES,
                            aligns: Sequence[int] = SCALED_SPLIT_ALIGNS) -> list[Candidate]:
    """Real split-K for an epilogue that scales at each promotion: for 2..max_slices slices
    and each alignment, K cut into slices of ceil(K / slices) rounded up to the alignment
    (whole K groups of `promote`), each slice scaling its own groups, the slice results
    added in FP32 in order. Each distinct cut is tried once."""
    seen, out = set(), []
    for align in aligns:
        for n in range(2, max_slices + 1):
            bounds = split_bounds(k, n, align)
            size = bounds[0][1] - bounds[0][0]
            if len(bounds) < 2 or size in seen or size % promote:
                continue
            seen.add(size)
            out.append(Candidate(step, promote, False, len(bounds), epilogue, split=True,
                                 align=align, slice_k=size))
    return out


def promote_candidates(k: int, terms: int = 32) -> list[tuple[int, bool]]:
    """Promotion intervals worth trying for a K: [(promote, once)], 0 (never) first.

    Every multiple of 32 below min(K, 1024) + 1, then 32 * 2**i up to K, then the
    smallest multiple of 32 (and of `terms`) >= K, which promotes once at the end and
    differs from 0 only where the chain ends in -0 (acc = +0 + -0 = +0).
    """
    step = math.lcm(32, terms)
    out = [(0, False)]
    out += [(p, False) for p in range(step, min(k - 1, 1024) + 1, step)]
    p = 2048
    while p < k:
        if p % step == 0:
            out.append((p, False))
        p *= 2
    out.append((-(-k // step) * step, True))
    return out


def search_candidates(problem: Problem, base: MMAStep, promotes: list | None, *,
                      full: bool, split: bool = False,
                      sample_elements: int = MIN_ELEMENTS,
                      extra: Sequence[Candidate] = ()) -> list[dict]:
    """Scores candidates on a row subset, confirms the best on all rows; records, best first.

    Each record is `Candidate.describe()` plus `match`, `matched`, `total`, `rows`
    (rows scored) and `order` (the tie-break: earlier = simpler explanation).
    """
    m, n = problem.want.shape
    sub = problem
    if problem.epilogues is not None and n > 2 * _SUB_COLUMNS:
        sub, n_sub = problem.columns(_SUB_COLUMNS), _SUB_COLUMNS
    else:
        n_sub = n
    rows = min(m, max(1, -(-sample_elements // n_sub)))
    if rows * 2 > m or (not (full or split) and m * n_sub * problem.k <= _FULL_WORK):
        pass
    else:
        sub = sub.rows(np.linspace(0, m - 1, rows).round().astype(int))
    scores: dict[Candidate, int] = {}
    order: dict[Candidate, int] = {}

    def run(cands: Iterable[Candidate]) -> None:
        for cand in cands:
            if cand not in scores and problem.applicable(cand):
                order[cand] = len(order)
                scores[cand] = sub.matched(cand)

    eps = problem.epilogues or [None]

    def sweep(step: MMAStep) -> list[Candidate]:
        plist = promotes if promotes is not None else promote_candidates(problem.k, step.terms)
        return [Candidate(step, p, once, epilogue=ep) for p, once in plist for ep in eps]

    run(sweep(base))
    run(extra)
    if split:
        step = base if base.fused else HOPPER
        for ep in eps:
            if ep is not None and ep.when == "promotion":
                for p in dict.fromkeys(cd.promote for cd in scores if cd.epilogue is ep):
                    run(scaled_split_candidates(problem.k, step, p, ep))
            else:
                run(replace(cd, epilogue=ep) for cd in split_candidates(
                    problem.k, step, [cd.promote for cd in sweep(step)]))
    if full:
        fused = base if base.fused else HOPPER
        for t in TERMS:
            for f in FRAC_BITS:
                run(sweep(_variant(fused, f, t)))
        run(sweep(PRESETS["ideal"]))
        run([Candidate(PRESETS["exact"], 0)])
    total_sub = sub.want.size
    top = sorted(scores, key=lambda cd: (-scores[cd], order[cd]))
    confirm = [cd for cd in top if scores[cd] == scores[top[0]]] + top[:_CONFIRM]
    full_scores = {}
    for cd in dict.fromkeys(confirm):
        full_scores[cd] = scores[cd] if sub is problem else problem.matched(cd)
    records = []
    for cd in scores:
        confirmed = cd in full_scores
        matched = full_scores[cd] if confirmed else scores[cd]
        total = problem.want.size if confirmed else total_sub
        records.append(cd.describe() | {
            "match": matched / total, "matched": matched, "total": total,
            "rows": m if confirmed else sub.want.shape[0], "order": order[cd]})
    records.sort(key=lambda r: (r["rows"] != m, -r["match"], r["order"]))
    return records


def _variant(base: MMAStep, frac_bits: int, terms: int) -> MMAStep:
    """`base` with other fractional bits / terms (the same object when nothing changes)."""
    changes = {}
    if frac_bits != base.frac_bits:
        changes["frac_bits"] = frac_bits
    if terms != base.terms:
        changes["terms"] = terms
    return base.replace(**changes) if changes else base
