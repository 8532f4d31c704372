"""The `fp8sim` command line (click).

app.py assembles the group; one module per command: gemm.py (with gemm_inputs.py, its
operands, and summary.py, its text), sweep.py, inspect.py (encode, decode), presets.py,
splits.py (batch invariance: the M ranges of one split of K),
oracle.py (identify), capture.py (capture, verify). options.py holds the shared options,
errors.py the one error policy (one stderr line, exit 2), data.py the user's array files.
The measurement itself lives in fp8sim.analysis (measure, stats, scales, studies).
"""

from fp8sim.cli.app import main

__all__ = ["main"]
