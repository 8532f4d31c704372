"""`fp8sim presets`: the MMA step presets and named kernels, and which an H100 verified."""

from __future__ import annotations

import click

from fp8sim.cli.options import REFERENCE_PRESETS
from fp8sim.engine.mma import PRESETS

__all__ = ["presets"]


@click.command(short_help="Lists the MMA step presets and named kernels.")
def presets():
    """Lists the MMA step presets and the named kernels, and which are verified on an H100."""
    click.echo("MMA step presets (--preset):")
    for p in PRESETS.values():
        bits = "exact" if p.frac_bits is None else f"{p.frac_bits} frac bits"
        if p.verified:
            check = "verified on H100"
        elif p.name in REFERENCE_PRESETS:
            check = "software reference (no hardware)"
        else:
            check = "not verified"
        terms = f"{p.terms:>2} term{'s' if p.terms != 1 else ''},"
        click.echo(f"  {p.name:<10} {terms:<9} {bits:<13} {check}")
        click.echo(f"             {p.description}")
    try:
        from fp8sim.engine.kernel import KERNELS
    except ImportError:
        return
    click.echo("\nKernels (fp8sim.KERNELS; fp8sim gemm --kernel NAME runs one):")
    for k in KERNELS.values():
        promote = f"promote {k.promote}" if k.promote else "no promotion"
        check = f"verified on {k.device}" if k.verified else "not verified"
        click.echo(f"  {k.name:<18} {k.step.name}, {promote}, scaling {k.scaling_label}, "
                   f"{k.out_dtype} out, {check}")
        click.echo(f"                     {k.description}")
