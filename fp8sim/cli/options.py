"""The click options and option checks the `fp8sim` commands share (gemm, sweep, inspect)."""

from __future__ import annotations

import click

from fp8sim.analysis.studies import SCALES, request_bytes
from fp8sim.engine import budget
from fp8sim.engine.gemm import FAST_MAX_FRAC_BITS
from fp8sim.engine.mma import PRESETS

__all__ = ["FORMATS", "OUT_DTYPES", "INSPECT_FORMATS", "REFERENCE_PRESETS", "DIST_HELP",
           "SIZE", "FRAC_BITS", "case_options", "step", "step_name", "find_kernel",
           "check_request"]

FORMATS = ("e4m3", "e5m2")
OUT_DTYPES = ("float32", "bfloat16", "float16")
INSPECT_FORMATS = ("e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz")
REFERENCE_PRESETS = ("ideal", "exact")  # mathematical baselines, not models of a chip
MAX_FRAC_BITS = FAST_MAX_FRAC_BITS  # the widest the fast kernels model

SIZE = click.IntRange(min=1)

DIST_HELP = ("Data: normal N(0,1), positive |N(0,1)| or uniform U(-1,1) drawn in float32 and "
             "encoded round-to-nearest, saturating (at unit scale by default, like the H100 "
             "captures' 'normal'/'positive' data; see --scale), or codes: every finite FP8 "
             "code equally likely.")


def case_options(f):
    """The options that select a random GEMM case (gemm)."""
    f = click.option("--scale", type=click.Choice(SCALES), default="unit", show_default=True,
                     help="Float data: encode it as drawn (unit), or after a per-tensor "
                          "scale that maps each matrix's amax onto the format's largest "
                          "finite value (tensor).")(f)
    f = click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Random seed (A is drawn before B).")(f)
    f = click.option("--b-format", type=click.Choice(FORMATS, case_sensitive=False),
                     default=None, help="Format of B (K, N). [default: e4m3]")(f)
    f = click.option("--a-format", type=click.Choice(FORMATS, case_sensitive=False),
                     default=None, help="Format of A (M, K). [default: e4m3]")(f)
    return f


FRAC_BITS = click.option(
    "--frac-bits", type=click.IntRange(min=0, max=MAX_FRAC_BITS), default=None, metavar="N",
    help="What-if accumulator: the preset's MMA step with N fractional bits instead, "
         f"0..{MAX_FRAC_BITS} (fp8sim.engine.mma.HOPPER.replace(frac_bits=N); fused presets "
         "hopper, ada, blackwell; the H100 has 13).")


def step(preset: str, frac_bits: int | None):
    """The MMA step to simulate: a preset name, or that preset with other fractional bits."""
    if frac_bits is None:
        return preset
    if preset in REFERENCE_PRESETS:
        raise click.UsageError(f"--frac-bits: preset {preset} is a software reference; "
                               "use hopper, ada or blackwell")
    return PRESETS[preset].replace(frac_bits=frac_bits)


def step_name(s) -> str:
    """Name of a preset or MMAStep, for output rows."""
    return s if isinstance(s, str) else s.name


def find_kernel(name: str):
    """fp8sim.KERNELS[name], looked up when the command runs (kernels added later included)."""
    import fp8sim

    kernels = fp8sim.KERNELS
    if name not in kernels:
        raise click.BadParameter(f"unknown kernel {name!r}; expected one of "
                                 f"{', '.join(kernels)}", param_hint="'--kernel'")
    return kernels[name]


def _count(n: int) -> str:
    """An element count in words: 1000 -> '1,000', 10**12 -> '1.0e+12'."""
    return f"{n:,}" if n < 10**9 else f"{n:.1e}"


def check_request(m: int, n: int, k: int, recipe: str | None,
                  hint: str = "choose smaller --m, --n or --k") -> None:
    """Refuses a random case that cannot fit in memory, before drawing anything."""
    need = request_bytes(m, n, k)
    if recipe is not None:  # float32 data, quantized copies, two runs and their references
        need += 16 * (m * k + k * n) + 40 * m * n
    codes = m * k + k * n
    budget.check_memory(need, f"M={m} N={n} K={k} (A and B {budget.format_bytes(codes)} of "
                        f"FP8 codes, {_count(m * n)} outputs)", hint=hint)
