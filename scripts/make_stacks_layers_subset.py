"""Writes tests/data/stacks_layers.npz: the casts and layer outputs that fresh clones test.

From ../shared/golden (or the folder given as the first argument):
* ``layer/x``, ``layer/w``, ``layer/gy`` whole (a layer's casts need whole tensors: per
  tensor and per column amax), and some rows of each recipe's ``y``, ``gx``, ``gw``
  (``rows_y``, ``rows_gx``, ``rows_gw`` say which): 16 spread over the output, plus the
  rows that tell close models apart: where cuBLASLt's and Triton's blockwise outputs
  differ, where rowwise and rowwise_with_gw_hp's grad_x differ, and where a float64
  matmul rounded once to bf16 misses rowwise_with_gw_hp's bf16 grad_w;
* DeepGEMM's casts (deepgemm_public.npz, 64x256x512/normal): 16 rows of ``x`` with their
  1x128 codes and scales, the first 128 rows of ``y`` (one 128x128 block row) with their
  codes and scales, and the kernel's output on those 16 x 128;
* torchao's blockwise casts (thirdparty_public_a.npz, 128x128x512/normal): 16 rows of
  ``x`` (1x128) and the whole ``w`` (128x128 blocks) with codes and scales.

Cropping rows keeps every 1x128 tile and 128x128 block whole, so the cropped codes and
scales are exactly the GPU's. Run from the repo root:
python3 scripts/make_stacks_layers_subset.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import ml_dtypes
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "golden"
OUT = ROOT / "tests" / "data" / "stacks_layers.npz"
RECIPES = ["blockwise_cublas", "blockwise_triton", "tensorwise", "rowwise", "rowwise_with_gw_hp"]


def spread_rows(n: int, count: int = 16) -> np.ndarray:
    """`count` rows spread over n, one in each band, at varying offsets within the band."""
    band = n // count
    return np.arange(count) * band + (np.arange(count) * 7) % band


def main() -> None:
    """Writes the subset and prints its size."""
    t = np.load(GOLDEN / "thirdparty_public_a.npz")
    d = np.load(GOLDEN / "deepgemm_public.npz")
    out: dict[str, np.ndarray] = {}
    for k in ("x", "w", "gy"):
        out[f"layer_{k}"] = t[f"layer/{k}"]
    rows = {"y": spread_rows(t["layer/x"].shape[0]), "gx": spread_rows(t["layer/x"].shape[0]),
            "gw": spread_rows(t["layer/w"].shape[0])}
    for name in rows:
        hard = t[f"layer/blockwise_cublas/{name}"] != t[f"layer/blockwise_triton/{name}"]
        if name == "gx":
            hard |= t["layer/rowwise/gx"] != t["layer/rowwise_with_gw_hp/gx"]
        if name == "gw":
            bf = ml_dtypes.bfloat16
            naive = (t["layer/gy"].view(bf).astype(np.float64).T
                     @ t["layer/x"].view(bf).astype(np.float64)).astype(bf).view(np.uint16)
            hard |= naive != t["layer/rowwise_with_gw_hp/gw"]
        rows[name] = np.union1d(rows[name], np.nonzero(hard.any(axis=1))[0])
    for name, r in rows.items():
        out[f"rows_{name}"] = r
        for rec in RECIPES:
            out[f"layer_{rec}_{name}"] = t[f"layer/{rec}/{name}"][r]
    g = "64x256x512/normal/"
    out |= {"dg_x": d[g + "x"][:16], "dg_A": d[g + "A"][:16], "dg_scale_a": d[g + "scale_a"][:16],
            "dg_y": d[g + "y"][:128], "dg_B": d[g + "B"][:, :128],
            "dg_scale_b": d[g + "scale_b"][:, :1], "dg_out": d[g + "out"][:16, :128]}
    q, c = "quant/128x128x512/normal/", "gemm/128x128x512/normal/"
    out |= {"ao_x": t[q + "x"][:16], "ao_A": t[c + "A"][:16], "ao_scale_a": t[c + "scale_a"][:16],
            "ao_w": t[q + "w"], "ao_B": t[c + "B"], "ao_scale_b": t[c + "scale_b"]}
    np.savez_compressed(OUT, **out)
    print(f"{OUT}: {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
