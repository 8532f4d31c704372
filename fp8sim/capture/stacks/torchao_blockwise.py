"""torchao's blockwise FP8 GEMMs, cuBLASLt and Triton: the blockwise, -long and -ds groups.

torchao 0.18's blockwise casts (`triton_fp8_blockwise_*`) make the operands and both
backends run the GEMM: ``cublas_*`` is ``torch.nn.functional.scaled_mm`` with BlockWise1x128
x BlockWise128x128 (forward) or BlockWise1x128 x BlockWise1x128-on-B^T (Wgrad: 128x1 tiles
of B) scales, called through torchao's own ``_scaled_mm`` (cuBLASLt); ``triton_*`` is
``triton_fp8_gemm_1x128_128x128`` / ``_128x1``. Large shapes are run whole and saved
cropped (`fp8sim.capture.saver.crop_index`).

torchao's Triton kernels autotune over configs that give identical bits (checked by the
``blockwise`` group's `config_check`); `tao_setup` pins them to one config so that a
capture does not compile dozens of variants per shape. Imported only where torch, triton
and torchao exist.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from fp8sim.capture.saver import Saver, crop_index
from fp8sim.capture.stacks.common import bits, draw, empty_cache, f32, gen, on_device, sync

__all__ = ["tao_setup", "fwd_operands", "wgrad_operands", "run_gemms", "gemm_case",
           "config_check", "BLOCKWISE_CASES", "LONG_CASES", "DS_CASES", "fam_blockwise",
           "fam_long", "fam_ds"]


def tao_setup() -> dict:
    """torchao's blockwise kernels, with each Triton autotuner pinned to one config."""
    import torchao.prototype.blockwise_fp8_training.kernels as K
    import torchao.prototype.blockwise_fp8_training.linear as L
    import triton
    gemm_cfg = triton.Config({"BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 128}, num_warps=8,
                             num_stages=2)
    K.triton_fp8_gemm_1x128_128x128_kernel.configs = [gemm_cfg]
    K.triton_fp8_gemm_1x128_128x1_kernel.configs = [gemm_cfg]
    qg = triton.Config({"NUM_GROUPS": 64}, num_warps=4, num_stages=2)
    q = triton.Config({}, num_warps=4, num_stages=2)
    for name in ("triton_fp8_blockwise_act_quant_lhs_kernel",
                 "triton_fp8_blockwise_act_quant_rhs_kernel",
                 "triton_fp8_blockwise_act_quant_transposed_lhs_kernel"):
        getattr(K, name).configs = [qg]
    for name in ("triton_fp8_blockwise_weight_quant_rhs_kernel",
                 "triton_fp8_blockwise_weight_quant_transposed_rhs_kernel"):
        getattr(K, name).configs = [q]
    return {"K": K, "L": L, "gemm_cfg": gemm_cfg,
            "pinned": {"gemm": str(gemm_cfg), "quant_groups": str(qg), "quant": str(q)}}


def fwd_operands(tao: dict, x: torch.Tensor, w: torch.Tensor) -> tuple:
    """The forward GEMM's operands as Float8BlockwiseLinear casts them: A (M, K) row-major
    with scale_a (M, K/128); B = w^T (K, N) column-major with scale_b (K/128, N/128)."""
    a, sa = tao["K"].triton_fp8_blockwise_act_quant_lhs(x, 128)
    b, sb = tao["K"].triton_fp8_blockwise_weight_quant_transposed_rhs(w, block_size=128)
    return a, sa, b, sb


def wgrad_operands(tao: dict, gy: torch.Tensor, xx: torch.Tensor) -> tuple:
    """The grad_weight GEMM's operands: A (M, K) from gy (K, M) by the transposed 1x128
    cast, B (K, N) from xx (K, N) by the 128x1 cast, scale_b (K/128, N) row-major."""
    a, sa = tao["K"].triton_fp8_blockwise_act_quant_transposed_lhs(gy, 128)
    b, sb = tao["K"].triton_fp8_blockwise_act_quant_rhs(xx, 128)
    return a, sa, b, sb


def run_gemms(tao: dict, kind: str, a, sa, b, sb) -> tuple[dict, dict]:
    """cublas_{f32,bf16} (torchao's _scaled_mm: F.scaled_mm, cuBLASLt) and triton_{f32,bf16}
    (torchao's Triton GEMMs) for a forward ('fwd') or Wgrad ('wgrad') case."""
    K, L = tao["K"], tao["L"]
    outs, errs = {}, {}
    for od, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        try:
            if kind == "fwd":
                outs[f"cublas_{tag}"] = L._scaled_mm(a, b, sa, K.BLOCKWISE_1X128_SCALING_TYPE,
                                                     sb, K.BLOCKWISE_128X128_SCALING_TYPE, od)
            else:
                outs[f"cublas_{tag}"] = L._scaled_mm(a, b, sa, K.BLOCKWISE_1X128_SCALING_TYPE,
                                                     sb.transpose(-1, -2),
                                                     K.BLOCKWISE_1X128_SCALING_TYPE, od)
        except Exception as e:  # noqa: BLE001 - what the stack refuses is recorded
            errs[f"cublas_{tag}"] = f"{type(e).__name__}: {str(e)[:300]}"
        try:
            fn = (K.triton_fp8_gemm_1x128_128x128 if kind == "fwd"
                  else K.triton_fp8_gemm_1x128_128x1)
            outs[f"triton_{tag}"] = fn(a, b, sa, sb, out_dtype=od)
        except Exception as e:  # noqa: BLE001
            errs[f"triton_{tag}"] = f"{type(e).__name__}: {str(e)[:300]}"
    sync()
    return outs, errs


def gemm_case(tao: dict, saver: Saver, kind: str, m: int, n: int, k: int, dist: str,
              seed: int, *, crop: bool = False, save_hp: bool = False, nrows: int = 16,
              step: int = 2) -> None:
    """One blockwise GEMM case under ``gemm/<M>x<N>x<K>/<dist>`` (Wgrad: ``wgrad`` or
    ``wgrad_<dist>``), whole or cropped; ``quant/...`` holds its bf16 inputs if asked."""
    tail = dist if kind == "fwd" else "wgrad" + ("" if dist == "normal" else f"_{dist}")
    key = f"gemm/{m}x{n}x{k}/{tail}"
    g = gen(seed)
    if kind == "fwd":
        x, w = draw(dist, (m, k), g), draw(dist, (n, k), g)
        a, sa, b, sb = fwd_operands(tao, x, w)
        hp = {"x": x, "w": w}
    else:
        gy, xx = draw(dist, (k, m), g), draw(dist, (k, n), g)
        a, sa, b, sb = wgrad_operands(tao, gy, xx)
        hp = {"gy": gy, "x": xx}
    outs, errs = run_gemms(tao, kind, a, sa, b, sb)
    meta = {"kind": kind, "seed": seed, "dist": dist, "shape": [m, n, k], "errors": errs,
            "triton_config": tao["pinned"]["gemm"]}
    d: dict[str, np.ndarray] = {}
    if crop:
        rows, cols, blk = crop_index(m, n, seed, nrows, step)
        rt, ct = on_device(rows), on_device(cols)
        d["A"] = bits(a.view(torch.uint8)[rt])
        d["B"] = bits(b.view(torch.uint8)[:, ct])
        d["scale_a"] = f32(sa[rt])
        d["scale_b"] = f32(sb[:, blk:blk + 1] if kind == "fwd" else sb[:, ct])
        d.update({name: bits(o[rt][:, ct]) for name, o in outs.items()})
        d["orig_shape"] = np.array([m, n], np.int64)
        d["rows"], d["cols"] = rows, cols
        meta["crop"] = f"rows of A; every {step}th column of 128-column block {blk}"
    else:
        d["A"], d["B"] = bits(a), bits(b)
        d["scale_a"], d["scale_b"] = f32(sa), f32(sb)
        d.update({name: bits(o) for name, o in outs.items()})
        if save_hp:
            saver.add(f"quant/{key[5:]}", {name: bits(t) for name, t in hp.items()})
    d["meta"] = np.array(json.dumps(meta))
    saver.add(key, d)
    saver.log(f"{key}{' (crop)' if crop else ''}: {sorted(outs)}"
              + (f"; not run: {errs}" if errs else ""))


def config_check(tao: dict, saver: Saver) -> None:
    """Records whether torchao's Triton GEMMs and casts give the same bits under every
    autotune config (the reason one config is pinned)."""
    import triton
    K = tao["K"]
    res = {}
    cfgs = [triton.Config({"BLOCK_SIZE_M": bs, "BLOCK_SIZE_N": bs}, num_warps=nw, num_stages=2)
            for bs in (64, 128, 256) for nw in (4, 8)]
    m, n, k = 256, 384, 1024
    for kind in ("fwd", "wgrad"):
        g = gen(99)
        if kind == "fwd":
            a, sa, b, sb = fwd_operands(tao, draw("outlier", (m, k), g),
                                        draw("outlier", (n, k), g))
            kern, fn = K.triton_fp8_gemm_1x128_128x128_kernel, K.triton_fp8_gemm_1x128_128x128
        else:
            a, sa, b, sb = wgrad_operands(tao, draw("outlier", (k, m), g),
                                          draw("outlier", (k, n), g))
            kern, fn = K.triton_fp8_gemm_1x128_128x1_kernel, K.triton_fp8_gemm_1x128_128x1
        for od in (torch.float32, torch.bfloat16):
            ref = None
            for c in cfgs:
                kern.configs = [c]
                try:
                    o = bits(fn(a, b, sa, sb, out_dtype=od))
                except Exception as e:  # noqa: BLE001
                    res[f"{kind}/{od}/{c}"] = f"error {type(e).__name__}: {str(e)[:120]}"
                    continue
                if ref is None:
                    ref, res[f"{kind}/{od}/{c}"] = o, "reference"
                else:
                    res[f"{kind}/{od}/{c}"] = ("identical" if np.array_equal(o, ref)
                                               else f"DIFFERS in {int((o != ref).sum())}")
            kern.configs = [tao["gemm_cfg"]]
    x = draw("outlier", (512, 1024), gen(98))
    qk = K.triton_fp8_blockwise_act_quant_lhs_kernel
    pinned, ref = qk.configs, None
    for ng, nw, ns in ((64, 4, 2), (2, 2, 2), (128, 8, 6), (16, 4, 4)):
        qk.configs = [triton.Config({"NUM_GROUPS": ng}, num_warps=nw, num_stages=ns)]
        y, s = K.triton_fp8_blockwise_act_quant_lhs(x, 128)
        cur = np.concatenate([bits(y).ravel(), f32(s).ravel().view(np.uint8)])
        label = f"cast_lhs/groups{ng}_w{nw}_s{ns}"
        if ref is None:
            ref, res[label] = cur, "reference"
        else:
            res[label] = "identical" if np.array_equal(cur, ref) else "DIFFERS"
    qk.configs = pinned
    saver.top["config_check"] = np.array(json.dumps(res))
    saver.log(f"config check: {sum(v == 'identical' for v in res.values())} identical, "
              f"{sum(v.startswith('DIFFERS') for v in res.values())} differing")


def _cases(saver: Saver, tao: dict, cases: list, **kw) -> None:
    """Runs `gemm_case` on each (kind, M, N, K, dist, seed[, save_hp]) tuple."""
    for case in cases:
        kind, m, n, k, dist, seed = case[:6]
        extra = {"save_hp": case[6]} if len(case) > 6 else {}
        try:
            gemm_case(tao, saver, kind, m, n, k, dist, seed, **kw, **extra)
        except Exception:  # noqa: BLE001 - one failing case must not lose the others
            saver.fail(f"{kind} {m}x{n}x{k} {dist}")
        empty_cache()


BLOCKWISE_CASES = [  # (kind, M, N, K, dist, seed, save the bf16 inputs)
    ("fwd", 128, 256, 768, "normal", 101, True), ("fwd", 128, 256, 768, "outlier", 102, False),
    ("fwd", 128, 256, 768, "wide", 103, False), ("wgrad", 128, 256, 768, "normal", 104, True),
    ("fwd", 128, 384, 1024, "outlier", 112, False),
    ("wgrad", 128, 384, 1024, "outlier", 114, False),
    ("fwd", 200, 256, 1024, "normal", 121, False), ("wgrad", 200, 256, 1024, "normal", 122, False),
    ("fwd", 64, 256, 4096, "normal", 131, False), ("fwd", 384, 128, 1536, "wide", 141, False),
    ("fwd", 128, 128, 512, "normal", 151, True), ("wgrad", 128, 128, 512, "outlier", 152, True),
]
"""Whole cases of the 'blockwise' family (shapes and seeds other than the public file's)."""

LONG_CASES = ([("fwd", 128, 128, k, "normal", 200 + i)
               for i, k in enumerate((4096, 8192, 12288, 16384, 18432, 32768, 65536))]
              + [("wgrad", 128, 128, 16384, "normal", 220),
                 ("wgrad", 128, 128, 32768, "normal", 221),
                 ("fwd", 512, 512, 16384, "normal", 230), ("fwd", 512, 512, 32768, "normal", 231),
                 ("wgrad", 512, 512, 16384, "normal", 232)])
"""'blockwise-long': the K sweep at M = N = 128 (split-K search) and 512 x 512 at long K."""


def _ds_cases() -> list:
    cases, seed = [], 300
    for n, k, ms in ((7168, 18432, (64, 256, 1024, 4096)),   # dense MLP down projection
                     (18432, 7168, (64, 256, 1024, 4096)),   # dense MLP up / gate projection
                     (7168, 16384, (128, 4096)),             # attention output projection
                     (7168, 2048, (256, 4096)),              # MoE expert down projection
                     (1536, 7168, (128, 2048)),              # q_a down projection
                     (2048, 7168, (4096,))):                 # MoE expert up projection
        for m in ms:
            cases.append(("fwd", m, n, k, "normal", seed))
            seed += 1
    # Wgrad of those layers: grad_w (OUT, IN) with K = tokens
    return cases + [("wgrad", 7168, 2048, 4096, "normal", 350),
                    ("wgrad", 2048, 7168, 4096, "normal", 351),
                    ("wgrad", 7168, 18432, 1024, "normal", 352)]


DS_CASES = _ds_cases()
"""'blockwise-ds': DeepSeek-V3's layer shapes (hidden 7168), M = 64 .. 4096 tokens."""


def fam_blockwise(saver: Saver, ctx: dict) -> None:
    """Whole blockwise cases, after the Triton config check."""
    try:
        config_check(ctx["tao"], saver)
    except Exception:  # noqa: BLE001
        saver.fail("config_check")
    _cases(saver, ctx["tao"], BLOCKWISE_CASES)


def fam_long(saver: Saver, ctx: dict) -> None:
    """Long-K cases, 8 rows and 32 columns kept."""
    _cases(saver, ctx["tao"], LONG_CASES, crop=True, nrows=8, step=4)


def fam_ds(saver: Saver, ctx: dict) -> None:
    """DeepSeek-V3 shapes, 16 rows and 64 columns kept."""
    _cases(saver, ctx["tao"], DS_CASES, crop=True)
