"""Black-box identification: which promotion interval (and MMA step) reproduces a kernel's output.

Given the FP8 inputs of a GEMM and the output `d` of an unknown kernel, `identify`
runs `fp8sim.gemm` under candidate recipes and counts the output elements each one
reproduces bit for bit. Candidates are the promotion interval (0 = never, every
multiple of 32 up to 1024, then powers of two, and "once at the end"); with
``search="split"`` also the slice lengths of split-K (K cut into 2..64 slices of
ceil(K / slices) rounded up to 128, each an unpromoted chain, the results added in FP32
in order, which is promotion every slice length but for the sign of a zero result:
cuBLASLt's fast accumulation at long K); with ``search="full"`` also every combination
of the accumulator's fractional bits and the terms per fused sum, and the "ideal" and
"exact" presets. To stay fast on large GEMMs every candidate is first scored on a few
evenly spaced rows, then the best are confirmed on the whole output.

With scales (`scale_a`, `scale_b`) and no `scaling`, the scaling epilogue is searched too:
every order and fusion (`fp8sim.engine.epilogue.variants`) of the granularity the scale
shapes give, so a group-scaled kernel's ``fma(p, fl(sa*sb), acc)`` is told from
``fma(fl(p*sa), sb, acc)`` and the rest. Epilogues that scale at each promotion split K for
real (`fp8sim.engine.splitk.gemm_split_k`: each slice scales its own K groups, the slices
add in FP32), so ``search="split"`` finds the slice count of a blockwise kernel; wide
scaled outputs are scored first on a few rows of their first 256 columns.

When no candidate reproduces every element, the result says so (``explained`` False,
the best match below 1.0 and every candidate tried); nothing is rounded up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from fp8sim.analysis._outputs import output_bits
from fp8sim.engine.epilogue import Epilogue, as_candidates, variants
from fp8sim.engine.gemm import gemm, resolve_scaling
from fp8sim.engine.mma import HOPPER, PRESETS, MMAStep
from fp8sim.engine.mma import preset as _preset
from fp8sim.engine.splitk import gemm_split_k, split_bounds
from fp8sim.formats.convert import as_codes

__all__ = ["identify", "Candidate", "promote_candidates", "split_candidates", "SEARCHES",
           "FRAC_BITS", "TERMS"]

SEARCHES = ("promote", "split", "full")
FRAC_BITS = tuple(range(10, 24))
"""Accumulator fractional bits tried by ``search="full"`` (Hopper has 13)."""
TERMS = (8, 16, 32, 64)
"""Products per fused sum tried by ``search="full"``."""
_MIN_ELEMENTS = 512  # outputs per candidate in the first, row-subset round
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
class _Problem:
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

    def rows(self, idx: np.ndarray) -> _Problem:
        """The same problem restricted to some output rows (C and per-row scales follow)."""
        m = self.a.shape[0]
        kw = dict(self.kwargs)
        for name in ("c", "scale_a"):
            v = kw.get(name)
            if v is not None and np.ndim(v) == 2 and np.shape(v)[0] == m:
                kw[name] = np.ascontiguousarray(np.asarray(v)[idx])
        return _Problem(np.ascontiguousarray(self.a[idx]), self.b, self.want[idx], kw, self.group,
                        self.epilogues)

    def columns(self, count: int) -> _Problem:
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
        return _Problem(self.a, np.ascontiguousarray(self.b[:, :count]),
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


def identify(
    a: np.ndarray,
    b: np.ndarray,
    d: np.ndarray,
    *,
    a_format: str = "e4m3",
    b_format: str = "e4m3",
    c: np.ndarray | None = None,
    out_dtype: str | None = None,
    scale_a: np.ndarray | float | None = None,
    scale_b: np.ndarray | float | None = None,
    scaling: str | None = None,
    search: str = "promote",
    promotes: Iterable[int] | None = None,
    preset: str | MMAStep = "hopper",
    sample_elements: int = _MIN_ELEMENTS,
) -> dict:
    """Finds the promotion interval (and, if asked, the MMA step) that reproduces `d`.

    Args:
        a: (M, K) FP8 codes (uint8, or ml_dtypes float8) given to the unknown kernel.
        b: (K, N) likewise.
        d: the kernel's (M, N) output: float32, bfloat16 (ml_dtypes), float16, raw
            uint16 bits (then `out_dtype` says which) or a torch tensor.
        a_format, b_format: "e4m3" or "e5m2" (ml_dtypes names accepted).
        c, scale_a, scale_b, scaling: as for `fp8sim.gemm`. C is fixed. With scales and
            no `scaling`, the epilogue is searched: every order and fusion of the granularity
            the shapes give; a named or given `Epilogue` is fixed; a sequence of them is
            tried. Scales per K group fix ceil(K / promote), so only intervals consistent
            with them are tried.
        out_dtype: "float32", "bfloat16" or "float16"; inferred from `d` when None.
        search: "promote" tries promotion intervals with `preset`; "split" adds
            the intervals of split-K (`split_candidates`), or for epilogues that scale at
            each promotion real split-K with 2..64 slices of whole K groups; "full" adds
            to those every combination of accumulator fractional bits (`FRAC_BITS`)
            and terms per fused sum (`TERMS`) with every interval, and the "ideal"
            and "exact" presets (about 2,000 candidates, scored on a row subset first).
        promotes: the intervals to try instead of `promote_candidates(K)`.
        preset: the MMA step model whose promotion interval is sought.
        sample_elements: outputs scored per candidate in a first round on evenly spaced
            rows, used when one candidate costs more than 2**22 multiply-adds.

    Returns:
        A dict with `promote` (0 = never) and `match` (fraction of outputs the best
        candidate reproduces bit for bit, on every row), `explained` (match == 1.0),
        `preset`, `frac_bits`, `terms`, `slices` (split-K slices, 0 if not split),
        `slice_k` (K per slice of a real blockwise split, 0 otherwise),
        `epilogue` (name of the best scaling epilogue, None without scales), `formula`,
        `label` of the best candidate, `equivalent`
        (labels of every candidate as good as the best: more than one means the
        output cannot tell them apart), `candidates` (every candidate tried, best
        first, with `match` and the number of `rows` it was scored on), `tried`,
        `note` (one sentence), `m`, `n`, `k`, `out_dtype`, `search`, `seconds`.

    Raises:
        ValueError, TypeError: an argument is malformed; the message names it.
    """
    t0 = time.perf_counter()
    problem = _problem(a, b, d, a_format, b_format, c, out_dtype, scale_a, scale_b, scaling)
    if search not in SEARCHES:
        raise ValueError(f"search: expected one of {', '.join(SEARCHES)}, got {search!r}")
    if isinstance(sample_elements, bool) or not isinstance(sample_elements, (int, np.integer)) \
            or sample_elements < 1:
        raise ValueError(f"sample_elements: expected a positive int, got {sample_elements!r}")
    base = _preset(preset)
    plist = _check_promotes(promotes, problem.k)
    records = search_candidates(problem, base, plist, full=search == "full",
                                split=search in ("split", "full"),
                                sample_elements=int(sample_elements))
    result = _summary(problem, records, search)
    result["seconds"] = time.perf_counter() - t0
    return result


def _problem(a, b, d, a_format, b_format, c, out_dtype, scale_a, scale_b, scaling) -> _Problem:
    """Validates the arguments into a `_Problem`."""
    a, af = as_codes(a, a_format, arg="a", fmt_arg="a_format")
    b, bf = as_codes(b, b_format, arg="b", fmt_arg="b_format")
    if a.ndim != 2:
        raise ValueError(f"a: expected a 2-D (M, K) array, got shape {a.shape}")
    if b.ndim != 2 or b.shape[0] != a.shape[1]:
        raise ValueError(f"b: expected shape ({a.shape[1]}, N) to match a, got {b.shape}")
    want, out = output_bits(d, out_dtype, arg="d")
    m, n = a.shape[0], b.shape[1]
    if want.shape != (m, n):
        raise ValueError(f"d: expected shape ({m}, {n}) from a and b, got {want.shape}")
    if m == 0 or n == 0:
        raise ValueError(f"d: nothing to identify in an empty ({m}, {n}) output")
    kw = {"a_format": af, "b_format": bf, "c": c, "scale_a": scale_a, "scale_b": scale_b,
          "out_dtype": out}
    k = a.shape[1]
    epilogues, group = None, None
    if scale_a is not None or scale_b is not None or scaling is not None:
        epilogues = as_candidates(scaling)
        group = _groups(scale_a, scale_b, scaling)
        if epilogues is None:  # the granularity from the shapes, every order and fusion
            base = resolve_scaling(None, scale_a, scale_b, m, k, n, _a_promote(k, group))
            epilogues = variants(base)
        if not any(ep.k_grouped for ep in epilogues):
            group = None
    return _Problem(np.ascontiguousarray(a), np.ascontiguousarray(b),
                    np.ascontiguousarray(want), kw, group, epilogues)


def _groups(scale_a, scale_b, scaling) -> int | None:
    """The number of K groups the scales have (scale_a's columns, else scale_b's rows)."""
    if scale_a is not None and np.ndim(scale_a) == 2 and (np.shape(scale_a)[1] > 1 or
                                                          scaling is not None):
        return int(np.shape(scale_a)[1])
    if scale_b is not None and np.ndim(scale_b) == 2 and np.shape(scale_b)[0] > 1:
        return int(np.shape(scale_b)[0])
    return None


def _a_promote(k: int, group: int | None) -> int:
    """A promotion interval giving `group` K groups (to read the granularity from shapes)."""
    if not group:
        return 0
    per_group = -(-k // group)
    p = -(-per_group // 32) * 32
    return p if -(-k // p) == group else 0


def _check_promotes(promotes, k: int) -> list[tuple[int, bool]] | None:
    if promotes is None:
        return None
    try:
        values = [int(p) for p in promotes]
    except (TypeError, ValueError):
        raise TypeError(f"promotes: expected an iterable of ints, got {promotes!r}") from None
    if not values or any(p < 0 or p % 32 for p in values):
        raise ValueError(f"promotes: expected 0 or positive multiples of 32, got {values}")
    return [(p, p >= k) for p in dict.fromkeys(values)]


def search_candidates(problem: _Problem, base: MMAStep, promotes: list | None, *,
                      full: bool, split: bool = False,
                      sample_elements: int = _MIN_ELEMENTS,
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


def _summary(problem: _Problem, records: list[dict], search: str) -> dict:
    """The result dict of `identify` from the scored candidates."""
    best = records[0]
    m, n = problem.want.shape
    equivalent = [r["label"] for r in records
                  if r["rows"] == m and r["matched"] == best["matched"]]
    explained = best["matched"] == best["total"]
    tried = _tried_text(records)
    if explained:
        note = f"{best['label']} reproduces all {best['total']} outputs bit for bit"
        if len(equivalent) > 1:
            others = ", ".join(equivalent[1:6]) + (
                f" and {len(equivalent) - 6} more" if len(equivalent) > 6 else "")
            note += f"; so do {others} (the output cannot tell them apart)"
    else:
        note = (f"no candidate reproduces the output: the best, {best['label']}, matches "
                f"{best['matched']} of {best['total']} ({100 * best['match']:.2f}%); "
                f"tried {tried}")
    return {
        "promote": best["promote"], "match": best["match"], "explained": explained,
        "preset": best["preset"], "frac_bits": best["frac_bits"], "terms": best["terms"],
        "slices": best["slices"], "slice_k": best["slice_k"], "epilogue": best["epilogue"],
        "formula": best["formula"],
        "label": best["label"], "equivalent": equivalent, "ambiguous": len(equivalent) > 1,
        "candidates": [{k: v for k, v in r.items() if k != "order"} for r in records],
        "tried": len(records), "tried_text": tried, "note": note,
        "m": int(m), "n": int(n), "k": problem.k, "out_dtype": problem.kwargs["out_dtype"],
        "search": search,
    }


def _tried_text(records: list[dict]) -> str:
    """ "37 candidates (hopper: promote 0, 32..1024 step 32, 2048, ...)" in one line."""
    by_preset: dict[str, list[int]] = {}
    for r in records:
        by_preset.setdefault(r["preset"], []).append(r["promote"])
    parts = [f"{name}: promote {_ranges(sorted(set(ps)))}" for name, ps in by_preset.items()]
    split = [r["slices"] for r in records if r["slices"]]
    if split:
        parts.append(f"split-K with {min(split)}..{max(split)} slices")
    if len(parts) > 4:
        parts = parts[:3] + [f"{len(parts) - 3} more step models"]
    return f"{len(records)} candidates ({'; '.join(parts)})"


def _ranges(values: list[int]) -> str:
    """Compresses sorted ints: [0, 32, 64, 96, 2048] -> "0, 32..96 step 32, 2048"."""
    out, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] - values[j] == 32:
            j += 1
        if j - i >= 2:
            out.append(f"{values[i]}..{values[j]} step 32")
        else:
            out.extend(str(v) for v in values[i:j + 1])
        i = j + 1
    return ", ".join(out)

