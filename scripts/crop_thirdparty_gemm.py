"""Crops the GEMM cases of ../shared/golden/thirdparty_public_a.npz into tests/data.

Each case keeps its scales whole, the rows and columns of A and B that a sample of the
outputs needs (tile and 128-column block edges, and random ones), and those outputs, so
that tests rebuild the full-shape GEMM with zeros elsewhere and call the kernels as the GPU
was called. Usage: python scripts/crop_thirdparty_gemm.py [SRC] [DST]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("cublas_f32", "cublas_bf16", "triton_f32", "triton_bf16")


def crop(src: Path, dst: Path) -> None:
    """Writes the cropped copy of src's gemm/ cases to dst."""
    z = np.load(src)
    out = {"env": z["env"]}
    rng = np.random.default_rng(0)
    for case in sorted({k.rsplit("/", 1)[0] for k in z.files if k.startswith("gemm/")}):
        a, b = z[case + "/A"], z[case + "/B"]
        (m, k), n = a.shape, b.shape[1]
        rows = {r for r in (0, 1, 62, 63, 64, 65, m - 2, m - 1) if r < m}
        rows |= set(rng.choice(m, 8, replace=False).tolist())
        cols = {c for c in (0, 1, 63, 64, 126, 127, 128, 129, n - 2, n - 1) if c < n}
        cols |= set(rng.choice(n, 10, replace=False).tolist())
        r, c = np.array(sorted(rows)), np.array(sorted(cols))
        out |= {case + "/rows": r.astype(np.int32), case + "/cols": c.astype(np.int32),
                case + "/orig_shape": np.array([m, n, k], np.int32),
                case + "/A": a[r], case + "/B": b[:, c],
                case + "/scale_a": z[case + "/scale_a"], case + "/scale_b": z[case + "/scale_b"]}
        for name in OUTPUTS:
            out[f"{case}/{name}"] = z[f"{case}/{name}"][np.ix_(r, c)]
    np.savez_compressed(dst, **out)


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "golden" / \
        "thirdparty_public_a.npz"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests" / "data" / \
        "thirdparty_gemm.npz"
    crop(src, dst)
