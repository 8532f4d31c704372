"""Crops a few long-K blockwise captures (cuBLASLt split-K) into tests/data/blockwise_splitk.npz.

The captures (`fp8sim capture` of cuBLASLt BlockWise1x128 and torchao's Triton kernels on an
H200, already cropped to some rows and columns) are cut down to a handful of outputs per
case, keeping the indices of those rows and columns in the full GEMM, so that tests rebuild
the full shape (zeros elsewhere) and call the kernels as the GPU was called, split-K
lookup included. Usage: python scripts/crop_blockwise_splitk.py CAPTURE_DIR [DST]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("cublas_f32", "cublas_bf16", "triton_f32", "triton_bf16")
CASES = {  # case: (file, kept crop rows, kept crop columns)
    "gemm/128x128x5120/normal": ("h200_blockwise_sweep", [0, 3], [0, 5, 11, 15]),
    "gemm/128x128x7168/normal": ("h200_blockwise_sweep", [0, 3], [0, 5, 11, 15]),
    "gemm/128x128x8192/normal": ("h200_blockwise_long", [0, 4, 7], [0, 9, 21, 31]),
    "gemm/128x128x14336/normal": ("h200_blockwise_sweep", [1, 2], [2, 13]),
    "gemm/128x128x8192/wgrad": ("h200_blockwise_sweep", [0, 2, 3], [1, 6, 12]),
    "gemm/128x128x24576/wgrad": ("h200_blockwise_sweep", [1, 3], [4, 9]),
    "gemm/256x256x16384/normal": ("h200_blockwise_sweep", [0, 2], [3, 14]),
}


def crop(src: Path, dst: Path) -> None:
    """Writes the chosen outputs of the captures in `src` to dst."""
    out = {}
    for case, (fname, rows, cols) in CASES.items():
        with np.load(src / f"{fname}.npz") as z:
            r, c = np.array(rows), np.array(cols)
            m, n = (int(v) for v in z[case + "/orig_shape"])
            k = z[case + "/A"].shape[1]
            out |= {case + "/rows": z[case + "/rows"][r].astype(np.int32),
                    case + "/cols": z[case + "/cols"][c].astype(np.int32),
                    case + "/orig_shape": np.array([m, n, k], np.int32),
                    case + "/A": z[case + "/A"][r], case + "/B": z[case + "/B"][:, c],
                    case + "/scale_a": _full_scale_a(z, case, m), case + "/scale_b":
                    _full_scale_b(z, case, n), case + "/meta": z[case + "/meta"]}
            for name in OUTPUTS:
                out[f"{case}/{name}"] = z[f"{case}/{name}"][np.ix_(r, c)]
            out["env"] = z["env"]
    np.savez_compressed(dst, **out)


def _full_scale_a(z, case: str, m: int) -> np.ndarray:
    """scale_a at full M: the captured rows' scales in place, ones elsewhere."""
    part = z[case + "/scale_a"]
    full = np.ones((m, part.shape[1]), np.float32)
    full[z[case + "/rows"]] = part
    return full


def _full_scale_b(z, case: str, n: int) -> np.ndarray:
    """scale_b at full N: 128-column blocks (or columns for 128x1) in place, ones elsewhere."""
    part, cols = z[case + "/scale_b"], z[case + "/cols"]
    if case.endswith("wgrad"):
        full = np.ones((part.shape[0], n), np.float32)
        full[:, cols] = part
    else:
        full = np.ones((part.shape[0], -(-n // 128)), np.float32)
        blocks = np.unique(cols // 128)
        full[:, blocks] = part
    return full


if __name__ == "__main__":
    crop(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else
         ROOT / "tests" / "data" / "blockwise_splitk.npz")
