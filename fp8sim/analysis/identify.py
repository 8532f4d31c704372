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

import time
from collections.abc import Iterable

import numpy as np

from fp8sim.analysis._outputs import output_bits
from fp8sim.analysis.candidates import (
    FRAC_BITS,
    MIN_ELEMENTS,
    TERMS,
    Candidate,
    Problem,
    promote_candidates,
    search_candidates,
    split_candidates,
)
from fp8sim.analysis.stats import percent
from fp8sim.engine.budget import check_memory, gemm_bytes
from fp8sim.engine.epilogue import as_candidates, variants
from fp8sim.engine.gemm import resolve_scaling
from fp8sim.engine.mma import MMAStep
from fp8sim.engine.mma import preset as _preset
from fp8sim.formats.convert import as_codes

__all__ = ["identify", "Candidate", "promote_candidates", "split_candidates", "SEARCHES",
           "FRAC_BITS", "TERMS"]

SEARCHES = ("promote", "split", "full")


def identify(
    a: np.ndarray,
    b: np.ndarray,
    d: np.ndarray,
    *,
    a_format: str | None = None,
    b_format: str | None = None,
    c: np.ndarray | None = None,
    out_dtype: str | None = None,
    scale_a: np.ndarray | float | None = None,
    scale_b: np.ndarray | float | None = None,
    scaling: str | None = None,
    search: str = "promote",
    promotes: Iterable[int] | None = None,
    preset: str | MMAStep = "hopper",
    sample_elements: int = MIN_ELEMENTS,
) -> dict:
    """Finds the promotion interval (and, if asked, the MMA step) that reproduces `d`.

    Args:
        a: (M, K) FP8 codes (uint8, or ml_dtypes float8) given to the unknown kernel.
        b: (K, N) likewise.
        d: the kernel's (M, N) output: float32, bfloat16 (ml_dtypes), float16, raw
            uint16 bits (then `out_dtype` says which) or a torch tensor.
        a_format, b_format: "e4m3" or "e5m2" (ml_dtypes names accepted); None takes a
            float8 array's own format, else "e4m3".
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


def _problem(a, b, d, a_format, b_format, c, out_dtype, scale_a, scale_b, scaling) -> Problem:
    """Validates the arguments into a `Problem`."""
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
    k = a.shape[1]
    # contiguous copies of the operands, then each candidate's GEMM and its output bits
    check_memory(gemm_bytes(m, n, k, copies=a.size + b.size) + 8 * m * n,
                 f"identify: M={m} N={n} K={k}",
                 hint="identify a crop: a few rows of a and d, columns of b and d")
    kw = {"a_format": af, "b_format": bf, "c": c, "scale_a": scale_a, "scale_b": scale_b,
          "out_dtype": out}
    epilogues, group = None, None
    if scale_a is not None or scale_b is not None or scaling is not None:
        epilogues = as_candidates(scaling)
        group = _groups(scale_a, scale_b, scaling)
        if epilogues is None:  # the granularity from the shapes, every order and fusion
            base = resolve_scaling(None, scale_a, scale_b, m, k, n, _a_promote(k, group))
            epilogues = variants(base)
        if not any(ep.k_grouped for ep in epilogues):
            group = None
    return Problem(np.ascontiguousarray(a), np.ascontiguousarray(b),
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
        items = list(promotes)
    except TypeError:
        items = None
    if items is None or any(isinstance(p, bool) or not isinstance(p, (int, np.integer))
                            for p in items):
        raise TypeError(f"promotes: expected an iterable of ints, got {promotes!r}")
    values = [int(p) for p in items]
    if not values or any(p < 0 or p % 32 for p in values):
        raise ValueError(f"promotes: expected 0 or positive multiples of 32, got {values}")
    return [(p, p >= k) for p in dict.fromkeys(values)]


def _summary(problem: Problem, records: list[dict], search: str) -> dict:
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
                f"{best['matched']} of {best['total']} ({percent(best['match']):.2f}%); "
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

