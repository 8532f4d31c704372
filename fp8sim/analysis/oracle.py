"""A reference oracle for FP8 kernel tests: does a kernel's output match the H100's bits?

`compare` runs `fp8sim.gemm` on the kernel's inputs with the recipe the kernel is
meant to implement and reports, bit for bit, where the two outputs differ: how many
elements, the first few (index, both values, both bit patterns, ULP distance), and,
when they differ, which other promotion interval or preset would have matched.
`assert_matches` is the pytest form: it raises AssertionError with that report.

    from fp8sim import assert_matches
    assert_matches(my_kernel(a, b), a, b, a_format="e4m3", b_format="e4m3", promote=128)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fp8sim._torch_arrays import is_torch
from fp8sim.analysis._outputs import bits_to_float, float_dtype, output_bits, ulp_distance_bits
from fp8sim.analysis.candidates import Candidate, Problem, promote_candidates, search_candidates
from fp8sim.analysis.stats import percent
from fp8sim.engine.epilogue import as_candidates
from fp8sim.engine.gemm import gemm
from fp8sim.engine.kernel import Kernel
from fp8sim.engine.kernel import kernel as find_kernel
from fp8sim.engine.mma import HOPPER, PRESETS
from fp8sim.engine.mma import preset as _preset
from fp8sim.formats.convert import as_codes

__all__ = ["compare", "assert_matches", "MatchReport", "Mismatch"]

_HEX_DIGITS = {"float32": 8, "bfloat16": 4, "float16": 4}


@dataclass(frozen=True)
class Mismatch:
    """One output element where the kernel and fp8sim differ."""

    index: tuple[int, ...]
    actual: float
    expected: float
    actual_bits: int
    expected_bits: int
    ulp: int | None
    """Distance in units of the output format's last place; None when either is NaN."""


@dataclass
class MatchReport:
    """Bit-level agreement of a kernel's output with `fp8sim.gemm` for one recipe."""

    recipe: str
    """The recipe compared against, e.g. "hopper, promote=128, e4m3 x e4m3 -> float32"."""
    shape: tuple[int, ...]
    out_dtype: str
    total: int
    mismatches: int
    first: list[Mismatch] = field(default_factory=list)
    """The first mismatching elements in row-major order (at most `max_listed`)."""
    max_ulp: int = 0
    """Largest ULP distance over the mismatches where neither value is NaN."""
    mean_ulp: float = 0.0
    """Mean ULP distance over those mismatches."""
    nan_mismatches: int = 0
    """Mismatches where either value is NaN (no ULP distance)."""
    alternatives: list[dict] = field(default_factory=list)
    """Other recipes tried when the output differs, best first: `label`, `promote`,
    `preset`, `match` (fraction of outputs reproduced), `rows` scored."""
    reference: str = "fp8sim.gemm"
    """What computed the expected output: "fp8sim.gemm" or "fp8sim.KERNELS['<name>']"."""

    @property
    def share(self) -> float:
        """Fraction of output elements that differ."""
        return self.mismatches / self.total if self.total else 0.0

    @property
    def ok(self) -> bool:
        """True when every output bit matches."""
        return self.mismatches == 0

    @property
    def would_match(self) -> list[str]:
        """Labels of the other recipes that reproduce the output bit for bit."""
        return [r["label"] for r in self.alternatives
                if r["matched"] == r["total"] and r["rows"] == self.shape[0]]

    def __str__(self) -> str:
        if self.ok:
            return (f"all {self.total} outputs match {self.reference} ({self.recipe}) bit for "
                    "bit")
        lines = [f"{self.mismatches} of {self.total} outputs ({100 * self.share:.3g}%) differ "
                 f"from {self.reference} ({self.recipe})"]
        finite = self.mismatches - self.nan_mismatches
        if finite:
            lines.append(f"  ULP distance ({self.out_dtype}) over {finite} mismatches: "
                         f"max {self.max_ulp}, mean {self.mean_ulp:.3g}")
        if self.nan_mismatches:
            lines.append(f"  {self.nan_mismatches} mismatches involve NaN")
        digits = _HEX_DIGITS[self.out_dtype]
        lines.append(f"  first {len(self.first)} (row-major):")
        lines.append(f"    {'index':<14}{'actual':<34}{'expected':<34}ulp")
        for mm in self.first:
            act = f"{_fmt(mm.actual, self.out_dtype):>15} (0x{mm.actual_bits:0{digits}x})"
            exp = f"{_fmt(mm.expected, self.out_dtype):>15} (0x{mm.expected_bits:0{digits}x})"
            ulp = "-" if mm.ulp is None else str(mm.ulp)
            lines.append(f"    {str(mm.index):<14}{act:<34}{exp:<34}{ulp}")
        if self.alternatives:
            if self.would_match:
                lines.append(f"  would match: {', '.join(self.would_match)}")
            else:
                near = ", ".join(f"{r['label']} {percent(r['match'])}%"
                                 for r in self.alternatives[:3] if r["rows"] == self.shape[0])
                lines.append(f"  none of the {len(self.alternatives)} other recipes tried "
                             f"matches; nearest (share of outputs matched): {near}")
        return "\n".join(lines)


def compare(actual, a, b, *, kernel: str | Kernel | None = None, max_listed: int = 10,
            alternatives: bool = True, equal_nan: bool = False, **gemm_kwargs) -> MatchReport:
    """Compares a kernel's output with `fp8sim.gemm(a, b, **gemm_kwargs)`, bit for bit.

    Args:
        actual: the kernel's (M, N) output: a float32, bfloat16 (ml_dtypes) or float16
            array, raw uint16 bits (then `out_dtype=` says which), or a torch tensor
            (torch is imported only then).
        a, b: the FP8 inputs, as for `fp8sim.gemm`.
        kernel: a name in `fp8sim.KERNELS` or a `Kernel`: the expected output is
            ``KERNELS[kernel](a, b, **gemm_kwargs)`` (its promotion, epilogue, split of K
            and output type; the keyword arguments give its scales and override the rest)
            instead of `fp8sim.gemm`. Alternatives are tried where the kernel is one gemm.
        max_listed: how many mismatching elements the report lists.
        alternatives: when the output differs, also try other promotion intervals
            (0, multiples of 32, powers of two, once at the end) with the recipe's
            preset and "hopper", the slice lengths of split-K
            (`fp8sim.analysis.identify.split_candidates`), and the "ideal" and "exact"
            presets, and report which would have matched.
        equal_nan: count any NaN as matching any NaN (by default NaN bits must agree:
            the H100 writes 0x7FFFFFFF).
        **gemm_kwargs: the recipe: a_format, b_format, promote, c, scale_a, scale_b,
            scaling, out_dtype (inferred from `actual` when omitted), preset.

    Returns:
        A `MatchReport`; `str(report)` is a readable summary.

    Raises:
        ValueError, TypeError: an argument is malformed; the message names it.
    """
    if isinstance(max_listed, bool) or not isinstance(max_listed, (int, np.integer)) \
            or max_listed < 0:
        raise ValueError(f"max_listed: expected a non-negative int, got {max_listed!r}")
    for arg, flag in (("alternatives", alternatives), ("equal_nan", equal_nan)):
        if not isinstance(flag, bool | np.bool_):  # "no" would read as True
            raise TypeError(f"{arg}: expected True or False, got {flag!r}")
    kern = None if kernel is None else find_kernel(kernel)
    raw = not is_torch(actual) and np.asarray(actual).dtype.kind in "iu"
    given = gemm_kwargs.get("out_dtype")
    if given is None and kern is not None and raw:  # raw bits: the kernel's own output type
        given = kern.out_dtype
    got, out = output_bits(actual, given, arg="actual")
    kw = dict(gemm_kwargs)
    a, kw["a_format"] = as_codes(a, kw.get("a_format"), arg="a", fmt_arg="a_format")
    b, kw["b_format"] = as_codes(b, kw.get("b_format"), arg="b", fmt_arg="b_format")
    kw["out_dtype"] = out
    recipe = None
    if kern is None:
        want = gemm(a, b, **kw).view(got.dtype)
    else:
        want = np.asarray(kern(a, b, **kw)).view(got.dtype)
        kw = _kernel_settings(kern, a, b, kw)
        recipe = f"{kern.name}: " + (f"its split of K -> {out}" if kw is None else
                                     _recipe_text(kw))
    if got.shape != want.shape:
        raise ValueError(f"actual: expected shape {want.shape} from a and b, got {got.shape}")
    got_f, want_f = bits_to_float(got, out), bits_to_float(want, out)
    nan = np.isnan(got_f.astype(np.float32)) | np.isnan(want_f.astype(np.float32))
    differ = got != want
    if equal_nan:
        differ &= ~(np.isnan(got_f.astype(np.float32)) & np.isnan(want_f.astype(np.float32)))
    where = np.flatnonzero(differ)
    ulps = ulp_distance_bits(got.reshape(-1)[where], want.reshape(-1)[where], out)
    finite = ~nan.reshape(-1)[where]
    first = []
    for pos, flat in enumerate(where[:max_listed]):
        idx = tuple(int(i) for i in np.unravel_index(flat, got.shape))
        first.append(Mismatch(idx, float(got_f[idx]), float(want_f[idx]), int(got[idx]),
                              int(want[idx]), int(ulps[pos]) if finite[pos] else None))
    report = MatchReport(
        recipe=recipe or _recipe_text(kw),
        shape=tuple(got.shape), out_dtype=out, total=int(got.size),
        mismatches=int(where.size), first=first,
        max_ulp=int(ulps[finite].max()) if finite.any() else 0,
        mean_ulp=float(ulps[finite].mean()) if finite.any() else 0.0,
        nan_mismatches=int(np.count_nonzero(~finite)),
        reference="fp8sim.gemm" if kern is None else f"fp8sim.KERNELS[{kern.name!r}]")
    if where.size and alternatives and got.ndim == 2 and kw is not None:
        report.alternatives = _alternatives(a, b, got, kw)
    return report


def _kernel_settings(kern: Kernel, a, b, kw: dict) -> dict | None:
    """The gemm arguments the kernel ran with (for alternatives), None where its split of K
    is no single gemm."""
    try:
        return kern.gemm_kwargs(a, b, **kw)
    except ValueError:
        return None


def assert_matches(actual, a, b, **kwargs) -> MatchReport:
    """Asserts that a kernel's output is `fp8sim.gemm`'s bit for bit (for pytest).

    Takes the arguments of `compare`. Raises AssertionError whose message is the
    `MatchReport`; returns the report when everything matches.
    """
    __tracebackhide__ = True
    report = compare(actual, a, b, **kwargs)
    if not report.ok:
        raise AssertionError(str(report))
    return report


def _alternatives(a, b, got, kw) -> list[dict]:
    """Other recipes scored against the output, best first (the given one left out)."""
    step = _preset(kw.get("preset", "hopper"))
    promote = int(kw.get("promote", 0))
    fixed = {k: v for k, v in kw.items() if k not in ("promote", "preset")}
    fixed.setdefault("c", None)
    group = None
    sa = fixed.get("scale_a")
    eps = as_candidates(fixed.get("scaling"))
    if sa is not None and np.ndim(sa) == 2 and (
            (eps is None and np.shape(sa)[1] > 1) or
            (eps is not None and any(ep.k_grouped for ep in eps))):
        group = int(np.shape(sa)[1])  # scales per K group: only consistent intervals
    problem = Problem(np.ascontiguousarray(a), np.ascontiguousarray(b), got, fixed, group)
    extra = [Candidate(PRESETS["ideal"], 0), Candidate(PRESETS["ideal"], promote),
             Candidate(PRESETS["exact"], 0)]
    if step != HOPPER:
        extra = [Candidate(HOPPER, p, once) for p, once in promote_candidates(a.shape[1])] + extra
    records = search_candidates(problem, step, None, full=False, split=True, extra=extra)
    given = Candidate(step, promote, promote >= a.shape[1] > 0 and promote > 0).label
    return [{k: v for k, v in r.items() if k != "order"} for r in records
            if r["label"] != given]


def _fmt(value: float, out_dtype: str) -> str:
    """The shortest text that round-trips in the output format ("-6.871094")."""
    return str(np.array([value], np.float32).astype(float_dtype(out_dtype))[0])


def _recipe_text(kw: dict) -> str:
    """ "hopper, promote=128, e4m3 x e5m2 -> bfloat16, tensor scales, with C" """
    step = _preset(kw.get("preset", "hopper"))
    scaling = kw.get("scaling")
    parts = [step.name, f"promote={kw.get('promote', 0)}",
             f"{kw['a_format'].name} x {kw['b_format'].name} -> {kw['out_dtype']}"]
    if kw.get("scale_a") is not None:
        if isinstance(scaling, (list, tuple)):
            scaling = " | ".join(getattr(ep, "name", ep) for ep in scaling)
        parts.append(f"{getattr(scaling, 'name', scaling) or 'inferred'} scales")
    if kw.get("c") is not None:
        parts.append("with C")
    return ", ".join(parts)
