"""Writes tests/data/golden/<file>.npz: every golden H100 case, cropped to a few rows/columns.

Cropping M and N keeps each output element's inputs whole (its row of A, its column of
B, the whole K), so the cropped outputs are still exactly the H100's. Run from the repo
root with ../shared/golden present: python3 scripts/make_golden_subset.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fp8sim.capture.golden import load_cases

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT.parent / "shared" / "golden"
FILES = ["gemm_public0", "gemm_public1", "special", "extra_public", "longk_public0",
         "longk_public1"]


def crop_size(case) -> int:
    """Rows/columns kept: fewer for the long-K cases, to stay small."""
    if case.key.split("/")[1] in ("special", "negzero", "cedge"):
        return 64  # special values and edge-case C: small enough to keep whole
    if case.k >= 65536:
        return 2
    if case.k >= 16384:
        return 4
    if case.k >= 4096:
        return 6
    return 8


def crop(name: str, arr: np.ndarray, r: int) -> np.ndarray:
    """The part of one array that the top-left r x r outputs depend on."""
    if name == "A" or name in ("scale_a", "row_scale_a"):
        return arr[:r]
    if name == "B":
        return arr[:, :r]
    if name == "row_scale_b":
        return arr[:, :r]
    if arr.ndim == 2 and name not in ("scale_b",):
        return arr[:r, :r]
    return arr


def main() -> int:
    if not GOLDEN.is_dir():
        print(f"no golden files at {GOLDEN}", file=sys.stderr)
        return 1
    dest_dir = ROOT / "tests" / "data" / "golden"
    dest_dir.mkdir(parents=True, exist_ok=True)
    for f in FILES:
        out = {}
        for case in load_cases(GOLDEN / f"{f}.npz"):
            r = crop_size(case)
            for name, arr in case.arrays.items():
                out[f"{case.key}/{name}"] = np.ascontiguousarray(crop(name, arr, r))
            out[f"{case.key}/orig_shape"] = np.array(case.shape[:2])  # split-K depends on it
        dest = dest_dir / f"{f}.npz"
        np.savez_compressed(dest, **out)
        print(f"{dest}: {len(out)} arrays, {dest.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
