"""Writes tests/data/h200_blockwise.npz and tests/data/h200_stacks.npz: a compact part of
the H200 real-stack captures (`fp8sim capture --group blockwise ...`), cropped so that
every kept output still has all of its inputs.

A GEMM output (i, j) depends on row i of A (and scale_a), column j of B (and its scale_b
column or 128-column block) and the whole K; the full shape is kept in ``orig_shape`` and
the kept rows and columns of the full GEMM in ``rows`` and ``cols``. A blockwise cast of a
128-aligned sub-block is that sub-block of the cast, so the casts keep such a block of
their input (``rows``/``cols`` of the input) and only the blockwise casts.

Run from the repo root: python3 scripts/make_h200_subset.py [CAPTURE_DIR]
(CAPTURE_DIR holds h200_blockwise.npz, h200_blockwise_long.npz, h200_blockwise_ds.npz,
h200_blockwise_sweep.npz, h200_casts.npz and h200_deepgemm.npz; default ../captures.
h200_blockwise_sweep.npz is a wider split-K sweep made with the same code,
fp8sim.capture.stacks.torchao_blockwise._cases(..., crop=True, nrows=4, step=8).)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("cublas_f32", "cublas_bf16", "triton_f32", "triton_bf16", "out")
BLOCKWISE_OPS = ("blockwise_1x128", "blockwise_128x1", "blockwise_1x128_t",
                 "blockwise_128x128", "blockwise_128x128_t", "deepgemm_1x128",
                 "deepgemm_128x128")


def case(z, prefix: str) -> dict:
    """The arrays under `prefix/`, by name."""
    return {k[len(prefix) + 1:]: z[k] for k in z.files if k.startswith(prefix + "/")
            and "/" not in k[len(prefix) + 1:]}


def crop_gemm(d: dict, r: np.ndarray, c: np.ndarray) -> dict:
    """Rows r and columns c (indices into the arrays as stored) of one GEMM case."""
    meta = json.loads(str(d["meta"]))
    wgrad = meta.get("kind") == "wgrad"
    m, n = (int(v) for v in d.get("orig_shape", (d["A"].shape[0], d["B"].shape[1])))
    rows = d.get("rows", np.arange(d["A"].shape[0]))[r]
    cols = d.get("cols", np.arange(d["B"].shape[1]))[c]
    out = {"A": d["A"][r], "B": d["B"][:, c], "scale_a": d["scale_a"][r]}
    if wgrad:
        out["scale_b"] = d["scale_b"][:, c]
    else:
        blocks = np.unique(cols // 128)
        assert blocks.size == 1, "keep columns of one 128-column block"
        sb = d["scale_b"]
        out["scale_b"] = sb if sb.shape[1] == 1 else sb[:, blocks]
    for name in OUTPUTS:
        if name in d:
            out[name] = d[name][r][:, c]
    out["orig_shape"] = np.array([m, n], np.int64)
    out["rows"], out["cols"] = rows.astype(np.int64), cols.astype(np.int64)
    meta["subset"] = "cropped again for tests/data by scripts/make_h200_subset.py"
    out["meta"] = np.array(json.dumps(meta))
    return out


def put(arrays: dict, prefix: str, d: dict) -> None:
    arrays.update({f"{prefix}/{k}": v for k, v in d.items()})


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "captures"
    bw = np.load(src / "h200_blockwise.npz")
    lg = np.load(src / "h200_blockwise_long.npz")
    ds = np.load(src / "h200_blockwise_ds.npz")
    sw = np.load(src / "h200_blockwise_sweep.npz")
    arrays: dict[str, np.ndarray] = {"env": bw["env"]}
    # forward with its bf16 inputs: 32 rows of x / A, the whole (one-block) weight
    r32 = np.arange(0, 128, 4)
    d = case(bw, "gemm/128x128x512/normal")
    put(arrays, "gemm/128x128x512/normal", crop_gemm(d, r32, np.arange(128)))
    q = case(bw, "quant/128x128x512/normal")
    put(arrays, "quant/128x128x512/normal", {"x": q["x"][r32], "w": q["w"],
                                             "rows": r32.astype(np.int64)})
    # Wgrad (128x1 scales of B), outliers
    d = case(bw, "gemm/128x128x512/wgrad_outlier")
    put(arrays, "gemm/128x128x512/wgrad_outlier", crop_gemm(d, r32, np.arange(128)))
    # cuBLASLt's split-K: K = 8192 forward (slices 3072, 3072, 2048), K = 16384 Wgrad
    # (5 x 2816 + 2304); 2 rows x 8 columns of the stored crops
    for key in ("gemm/128x128x8192/normal", "gemm/128x128x16384/wgrad"):
        put(arrays, key, crop_gemm(case(lg, key), np.array([0, 7]), np.arange(0, 32, 4)))
    # the slice length's rounding: K = 10240 (3 slices of 3584, not 3456) and a four-tile
    # shape, 256 x 256 at K = 32768 (3 slices of 11264: a multiple of 512, not 256)
    put(arrays, "gemm/128x128x10240/normal",
        crop_gemm(case(sw, "gemm/128x128x10240/normal"), np.array([0, 3]), np.arange(0, 16, 2)))
    put(arrays, "gemm/256x256x32768/normal",
        crop_gemm(case(sw, "gemm/256x256x32768/normal"), np.array([0]), np.arange(0, 16, 2)))
    # DeepSeek-V3 shapes (no split seen): the MLP up projection (18432 x 7168) and the
    # 7168 x 2048 block, at M = 4096
    for key in ("gemm/4096x18432x7168/normal", "gemm/4096x7168x2048/normal"):
        put(arrays, key, crop_gemm(case(ds, key), np.array([0, 15]), np.arange(0, 64, 8)))
    out = ROOT / "tests" / "data" / "h200_blockwise.npz"
    np.savez_compressed(out, **arrays)
    print(f"{out}: {out.stat().st_size / 1024:.0f} KiB, {len(arrays)} arrays")

    ca = np.load(src / "h200_casts.npz")
    dg = np.load(src / "h200_deepgemm.npz")
    arrays = {"env": ca["env"], "env_deepgemm": dg["env"]}
    c = case(ca, "cast/edge_256x384")
    rr, cc = np.arange(128, 256), np.arange(128, 384)
    sub = {"x": c["x"][128:256, 128:384], "rows": rr, "cols": cc,
           "meta": np.array(json.dumps({"subset": "x[128:256, 128:384] and the blockwise "
                                                  "casts of that block"}))}
    for op in BLOCKWISE_OPS:
        codes, scale = c[f"{op}_codes"], c[f"{op}_scale"]
        if op.endswith("_t"):  # outputs of x^T
            sub[f"{op}_codes"] = codes[128:384, 128:256]
            sub[f"{op}_scale"] = (scale[128:384, 1:2] if op == "blockwise_1x128_t"
                                  else scale[1:3, 1:2])
        else:
            sub[f"{op}_codes"] = codes[128:256, 128:384]
            if op in ("blockwise_1x128", "deepgemm_1x128"):
                sub[f"{op}_scale"] = scale[128:256, 1:3]
            elif op == "blockwise_128x1":
                sub[f"{op}_scale"] = scale[1:2, 128:384]
            else:
                sub[f"{op}_scale"] = scale[1:2, 1:3]
    put(arrays, "cast/edge_256x384", sub)
    for key, r, cols in (("128x7168x18432/normal", np.array([0, 9]), np.arange(0, 64, 8)),
                         ("128x256x1536/normal", np.array([0, 63, 64, 127]),
                          np.arange(0, 128, 8))):
        d = case(dg, key)
        put(arrays, key, crop_gemm(d, r, cols))
    out = ROOT / "tests" / "data" / "h200_stacks.npz"
    np.savez_compressed(out, **arrays)
    print(f"{out}: {out.stat().st_size / 1024:.0f} KiB, {len(arrays)} arrays")


if __name__ == "__main__":
    main()
