"""Executes the notebooks in notebooks/ (nbclient, kernel "python3") and reports their run times.

    python3 scripts/run_notebooks.py              # execute, check for errors, write nothing
    python3 scripts/run_notebooks.py --inplace    # also save the outputs into the .ipynb files
    python3 scripts/run_notebooks.py notebooks/01_accumulation_error.ipynb

Each notebook runs with notebooks/ as its working directory. Exit status 1 if a cell
raises.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def execute(path: Path, *, timeout: int = 120, kernel: str = "python3") -> tuple[object, float]:
    """Runs every cell of one notebook; returns (executed notebook, seconds).

    Raises:
        CellExecutionError: a cell raised.
    """
    nb = nbformat.read(path, as_version=4)
    # --log-level=ERROR: the kernel's "running over TCP without encryption" warning is
    # about jupyter's local transport, not the notebook; it would only clutter stderr.
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, record_timing=False,
                            extra_arguments=["--log-level=ERROR"],
                            coalesce_streams=True,  # one stdout block per cell, not timing-split
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Executes the given notebooks (default: all in notebooks/); --inplace saves outputs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    p.add_argument("--inplace", action="store_true", help="save the executed notebooks")
    p.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    args = p.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    status = 0
    for path in paths:
        try:
            nb, seconds = execute(path.resolve(), timeout=args.timeout)
        except CellExecutionError as e:
            print(f"{path}: FAILED\n{e}", file=sys.stderr)
            status = 1
            continue
        if args.inplace:
            nbformat.write(nb, path)
        print(f"{path.name}: ok in {seconds:.1f} s{' (saved)' if args.inplace else ''}")
    return status


if __name__ == "__main__":
    sys.exit(main())
