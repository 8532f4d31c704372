"""DeepGEMM's ``gemm_fp8_fp8_bf16_nt`` with its own test casts: the ``deepgemm`` group.

DeepGEMM (commit fcd1dcd, the JIT era; needs nvcc and its source tree with CUTLASS headers,
see `fp8sim.capture.run`) at small shapes, saved whole, and DeepSeek-V3 shapes, saved
cropped; a build failure is saved as ``build_error``. Imported only where torch exists.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable

import numpy as np
import torch

from fp8sim.capture.saver import Saver, crop_index
from fp8sim.capture.stacks import common
from fp8sim.capture.stacks.common import bits, draw, empty_cache, f32, gen, on_device, sync

__all__ = ["DG_SHAPES", "deepgemm_test_casts", "fam_deepgemm"]


DG_SHAPES = [
    (128, 256, 1536), (192, 384, 2048),  # small, whole
    (64, 2112, 7168),     # DeepSeek-V3 fused q_a / kv_a down projection, decode-sized M
    (4096, 7168, 2048),   # attention output block (N x K = 7168 x 2048)
    (128, 7168, 18432),   # dense MLP down projection (BLOCK_N = 56: two scale_b columns)
    (1024, 18432, 7168),  # dense MLP up projection
    (256, 24576, 1536),   # q_b projection
    (2048, 7168, 16384),  # DeepGEMM's own test shape
]
"""(M, N, K) of the 'deepgemm' family; M * N > 192 * 384 are saved cropped."""


def deepgemm_test_casts(src: str) -> tuple[Callable, Callable]:
    """DeepGEMM's own test casts (tests/test_core.py: per_token_cast_to_fp8,
    per_block_cast_to_fp8), imported from its source tree."""
    for p in (src, os.path.join(src, "tests")):
        if p not in sys.path:
            sys.path.insert(0, p)
    import test_core
    return test_core.per_token_cast_to_fp8, test_core.per_block_cast_to_fp8


def fam_deepgemm(saver: Saver, ctx: dict) -> None:
    """DeepGEMM's gemm_fp8_fp8_bf16_nt at small and DeepSeek-V3 shapes (or why not)."""
    try:
        cast_x, cast_y = deepgemm_test_casts(ctx["deepgemm_src"])
        import deep_gemm
        from deep_gemm.jit_kernels.gemm import get_best_configs
    except Exception:  # noqa: BLE001
        saver.fail("import deep_gemm")
        saver.top["build_error"] = np.array(traceback.format_exc())
        return
    cases = []
    for i, (m, n, k) in enumerate(DG_SHAPES):
        cases.append((m, n, k, "normal", 600 + i))
        if m * n <= 192 * 384:
            cases.append((m, n, k, "outlier", 650 + i))
    for m, n, k, dist, seed in cases:
        key = f"{m}x{n}x{k}/{dist}"
        try:
            g = gen(seed)
            x, y = draw(dist, (m, k), g), draw(dist, (n, k), g)
            xf, xs = cast_x(x)
            yf, ys = cast_y(y)
            out = torch.empty((m, n), device=common.DEVICE, dtype=torch.bfloat16)
            try:
                deep_gemm.gemm_fp8_fp8_bf16_nt((xf, xs), (yf, ys), out)
            except Exception:  # noqa: BLE001 - the JIT build's error is the finding
                saver.top.setdefault("build_error", np.array(traceback.format_exc()))
                raise
            sync()
            cfg = get_best_configs(m, n, k, 1, deep_gemm.get_num_sms())
            meta = {"seed": seed, "dist": dist, "shape": [m, n, k],
                    "config": dict(zip(("block_m", "block_n", "num_stages",
                                        "num_tma_multicast", "smem"), cfg, strict=True))}
            b, sb = yf.t(), ys.t()
            if m * n <= 192 * 384:
                d = {"A": bits(xf), "B": bits(b), "scale_a": f32(xs), "scale_b": f32(sb),
                     "out": bits(out)}
                if dist == "normal":
                    d.update(x=bits(x), y=bits(y))
            else:
                rows, cols, blk = crop_index(m, n, seed)
                rt, ct = on_device(rows), on_device(cols)
                d = {"A": bits(xf.view(torch.uint8)[rt]), "B": bits(b.view(torch.uint8)[:, ct]),
                     "scale_a": f32(xs[rt]), "scale_b": f32(sb[:, blk:blk + 1]),
                     "out": bits(out[rt][:, ct]), "orig_shape": np.array([m, n], np.int64),
                     "rows": rows, "cols": cols}
                meta["crop"] = f"rows of A; every 2nd column of 128-column block {blk}"
            d["meta"] = np.array(json.dumps(meta))
            saver.add(key, d)
            saver.log(f"deepgemm {key}: {meta['config']}")
        except Exception:  # noqa: BLE001
            saver.fail(f"deepgemm {key}")
        empty_cache()
