"""The `fp8sim` command line: assembles the group from the command modules of fp8sim.cli.

Each command lives in its own module (gemm, sweep, inspect: encode/decode, presets,
splits, oracle: identify, capture: capture/verify); shared options are in `fp8sim.cli.options`
and the one error policy (one stderr line, exit status 2) in `fp8sim.cli.errors`.
"""

from __future__ import annotations

import click

from fp8sim import __version__
from fp8sim.cli.errors import OneLineGroup
from fp8sim.cli.gemm import gemm
from fp8sim.cli.inspect import decode_, encode_
from fp8sim.cli.presets import presets
from fp8sim.cli.splits import splits
from fp8sim.cli.sweep import sweep

__all__ = ["main"]


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fp8sim")
def main() -> None:
    """fp8sim: bit-exact CPU simulation of FP8 GEMMs on NVIDIA Hopper Tensor Cores."""


for _command in (gemm, sweep, encode_, decode_, presets, splits):
    main.add_command(_command)

try:
    from fp8sim.cli.oracle import identify_cmd
except ImportError:
    pass
else:
    main.add_command(identify_cmd, "identify")

try:
    from fp8sim.cli.capture import capture_cmd, verify_cmd
except ImportError:
    pass
else:
    main.add_command(capture_cmd, "capture")
    main.add_command(verify_cmd, "verify")
