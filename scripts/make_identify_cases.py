"""Writes tests/data/identify_cases.npz: a few whole H100 captures for the identify tests.

One case per format pair (K = 256 or 1024, every output the capture has), plus the
per-tensor / row-wise scaled case of extra_public, copied unchanged from
../shared/golden with the same key layout (< 1 MB).

    python3 scripts/make_identify_cases.py [GOLDEN_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PICKS = {
    "gemm_public0": ["e4m3_e4m3/normal/K1024", "e4m3_e5m2/wide/K256"],
    "gemm_public1": ["e5m2_e4m3/codes/K256", "e5m2_e5m2/positive/K256"],
    "extra_public": ["e4m3_e4m3/normal/K256"],
}


def main(golden: Path) -> None:
    """Copies the picked cases into one compressed .npz."""
    out: dict[str, np.ndarray] = {}
    for name, prefixes in PICKS.items():
        with np.load(golden / f"{name}.npz") as z:
            for key in z.files:
                if any(key.startswith(p + "/") for p in prefixes):
                    if key in out:
                        raise SystemExit(f"duplicate key {key} in {name}")
                    out[key] = z[key]
    dest = ROOT / "tests" / "data" / "identify_cases.npz"
    np.savez_compressed(dest, **out)
    print(f"{dest}: {len(out)} arrays, {dest.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "golden")
