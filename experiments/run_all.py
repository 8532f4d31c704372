"""Runs every numbered study in experiments/ and regenerates experiments/results/.

    python3 experiments/run_all.py           # all studies, full size (~30 s on 2 cores, ~45 s cold)
    python3 experiments/run_all.py --small   # smoke run of each, writes nothing
    python3 experiments/run_all.py --out DIR # results into DIR instead

Each study is run in this process, one after the other, and prints its own summary and
golden checks; the total wall time is printed at the end.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


GPU_STUDIES = ("06_training_whatif.py",)
"""Studies whose full size needs a GPU (and torch): run them on their own, e.g.
`python experiments/06_training_whatif.py` on a GPU machine, `--tiny` on a CPU."""


def studies() -> list[Path]:
    """The numbered CPU study scripts, in order (01_*.py, 02_*.py, ...; not GPU_STUDIES)."""
    return sorted(p for p in HERE.glob("[0-9][0-9]_*.py") if p.name not in GPU_STUDIES)


def run_study(path: Path, small: bool = False, out: Path | None = None) -> float:
    """Imports one study script and calls its main(small, out); returns its wall time."""
    sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t0 = time.perf_counter()
    mod.main(small, out)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Runs all studies; prints each one's time and the total."""
    sys.path.insert(0, str(HERE))
    from _cli import OneLineParser, out_dir

    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="tiny sizes, a smoke test")
    p.add_argument("--out", type=out_dir, default=None,
                   help="results folder (default experiments/results)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    times = {}
    for path in studies():
        print(f"=== {path.name} ===", flush=True)
        times[path.name] = run_study(path, args.small, args.out)
        print(flush=True)
    total = time.perf_counter() - t0
    print("  ".join(f"{name}: {t:.1f} s" for name, t in times.items()))
    print(f"all studies: {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
