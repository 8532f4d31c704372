"""What one Tensor Core MMA step computes, described as data, with named presets.

An `MMAStep` says how D = C + sum(a_k * b_k) over one step of K is formed: how many
products share one fused sum, how many fractional bits survive the alignment to the
largest exponent, and how the aligned terms and the result are rounded. The GEMM
driver (`fp8sim.gemm`) chains such steps along K and adds the promotion and scaling
epilogues; the presets below name the steps users compare.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fp8sim._lookup import lookup
from fp8sim.formats.rounding import RoundMode

__all__ = ["MMAStep", "PRESETS", "preset", "HOPPER", "IDEAL", "EXACT"]


_ROUNDING_WORDS = {RoundMode.TowardZero: "truncated", RoundMode.TiesToEven: "rounded to nearest "
                   "even", RoundMode.TowardPositive: "rounded up", RoundMode.TowardNegative:
                   "rounded down", RoundMode.Stochastic: "rounded stochastically"}


MAX_TERMS = 4096
"""The most products one fused sum may take (the engine keeps a step's terms in memory)."""


@dataclass(frozen=True, kw_only=True)
class MMAStep:
    """One MMA step: a fused sum of `terms` exact products and the accumulator input C."""

    name: str
    """Preset name ("hopper")."""
    terms: int = 32
    """Products per fused sum: the k of one MMA instruction (32 for wgmma FP8)."""
    frac_bits: int | None = 13
    """Fractional bits kept relative to the largest exponent (emax) of the terms and C,
    both when the terms are aligned and in the result; None: no alignment loss."""
    align_rounding: RoundMode = RoundMode.TowardZero
    """How each term is rounded to a multiple of 2**(emax - frac_bits)."""
    result_rounding: RoundMode = RoundMode.TowardZero
    """How the normalized sum is rounded to frac_bits fractional bits (then to float32)."""
    zero_products_in_emax: bool = False
    """True where zero products raise emax as MMA-Sim models them; False on the H100."""
    sequential: bool = False
    """True: plain float32 arithmetic, acc = fl(acc + a*b) one product at a time."""
    exact: bool = False
    """True: the whole dot product exactly (float64), rounded once to float32."""
    verified: bool = False
    """True only where captured hardware outputs back the model bit for bit."""
    description: str = ""

    def __post_init__(self) -> None:
        """Rejects steps no hardware could have, naming the field."""
        if isinstance(self.terms, bool) or not isinstance(self.terms, int) or \
                not 1 <= self.terms <= MAX_TERMS:
            raise ValueError(f"terms: expected an int in 1..{MAX_TERMS} (products in one fused "
                             f"sum; wgmma FP8 has 32), got {self.terms!r}")
        if self.frac_bits is not None and (isinstance(self.frac_bits, bool) or not isinstance(
                self.frac_bits, int) or not 0 <= self.frac_bits <= 52):
            raise ValueError(f"frac_bits: expected None or an int in 0..52, got {self.frac_bits!r}")
        for field in ("align_rounding", "result_rounding"):
            value = getattr(self, field)
            if not isinstance(value, RoundMode):
                try:
                    object.__setattr__(self, field, RoundMode(value))
                except ValueError:
                    modes = ", ".join(m.name for m in RoundMode)
                    raise ValueError(f"{field}: expected a RoundMode ({modes}), got {value!r}"
                                     ) from None
        for field in ("zero_products_in_emax", "sequential", "exact", "verified"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"{field}: expected True or False, got {getattr(self, field)!r}")
        if not isinstance(self.name, str) or not isinstance(self.description, str):
            raise TypeError(f"name, description: expected strings, got {self.name!r}, "
                            f"{self.description!r}")

    def replace(self, **changes) -> MMAStep:
        """A copy with some fields changed (e.g. frac_bits=20 for a what-if study).

        A change of the arithmetic makes the copy unverified and, unless `description`
        is passed, describes it from its fields (`summary`) as a what-if variant: the
        original's claims (its bit count, "Verified") never carry over.
        """
        arithmetic = {k: v for k, v in changes.items()
                      if k not in ("name", "description", "verified")}
        if "name" not in changes:
            changes["name"] = self.name + "".join(f"[{k}={v}]" for k, v in arithmetic.items())
        if arithmetic and "verified" not in changes:
            changes["verified"] = False
        new = dataclasses.replace(self, **changes)
        if arithmetic and "description" not in changes:
            what = ", ".join(f"{k}={v}" for k, v in arithmetic.items())
            new = dataclasses.replace(new, description=f"{new.summary()} What-if variant of "
                                                       f"{self.name!r} ({what}); not verified.")
        return new

    def summary(self) -> str:
        """The arithmetic of this step in one sentence, derived from its fields."""
        if self.exact:
            return "C and the exact products summed in float64, rounded once to float32."
        if self.sequential:
            return ("Exact products added one at a time in float32 (round to nearest even), "
                    "in K order.")
        if self.frac_bits is None:
            align = "aligned without loss"
        else:
            align = (f"aligned to the largest exponent with {self.frac_bits} fractional bits "
                     f"({_ROUNDING_WORDS[self.align_rounding]})")
        result = _ROUNDING_WORDS[self.result_rounding]
        if self.frac_bits is not None:
            result += f" to {self.frac_bits} fractional bits"
        zeros = " Zero products count in the largest exponent." if \
            self.zero_products_in_emax else ""
        return (f"{self.terms} product{'s' if self.terms != 1 else ''} and C in one fused "
                f"sum, {align}, result {result}.{zeros}")

    @property
    def fused(self) -> bool:
        """True for the fused-sum model (truncated alignment to emax)."""
        return not (self.sequential or self.exact)


HOPPER = MMAStep(
    name="hopper", terms=32, frac_bits=13, verified=True,
    description="H100/H800 wgmma FP8: 32 products and C in one fused sum, aligned to the "
                "largest exponent with 13 fractional bits (truncated), result truncated to "
                "e8m13. Verified bit for bit against H100 captures.",
)
IDEAL = MMAStep(
    name="ideal", terms=1, frac_bits=23, align_rounding=RoundMode.TiesToEven,
    result_rounding=RoundMode.TiesToEven, sequential=True, verified=False,
    description="What FP32 would give: exact products, float32 round-to-nearest-even "
                "accumulation one product at a time, in K order.",
)
EXACT = MMAStep(
    name="exact", terms=1, frac_bits=None, result_rounding=RoundMode.TiesToEven, exact=True,
    description="The baseline for error studies: C and the exact products summed in float64 "
                "in K order (error below K * 2**-53 of the sum of magnitudes), rounded once "
                "to float32; promotion does not apply.",
)
ADA = MMAStep(
    name="ada", terms=16, frac_bits=13,
    description="Ada (sm_89) FP8 mma as MMA-Sim publishes it: the k=32 instruction sums two "
                "16-product halves in turn, each fused with 13 fractional bits. UNVERIFIED.",
)
BLACKWELL = MMAStep(
    name="blackwell", terms=32, frac_bits=25,
    description="Blackwell (sm_100) FP8 as MMA-Sim publishes it: 25 fractional bits, result "
                "truncated to float32. UNVERIFIED.",
)

PRESETS: dict[str, MMAStep] = {p.name: p for p in (HOPPER, IDEAL, EXACT, ADA, BLACKWELL)}
"""Every named MMA step model."""


def preset(name: str | MMAStep, *, arg: str = "preset") -> MMAStep:
    """Looks a preset up by name (any case); an MMAStep passes through."""
    return lookup(name, PRESETS, MMAStep, arg=arg, what="preset", fold_case=True)
