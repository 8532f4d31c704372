"""GPU side of the real-FP8-stack capture families (issue 10): torchao, cuBLASLt, DeepGEMM.

Each family draws its bf16 inputs on the GPU (a seeded `torch.Generator`), casts them with
the stack's own code and runs the stack's own GEMMs, layers or casts, so what is saved is
exactly what a user of that stack gets:

- ``blockwise`` / ``blockwise-long`` / ``blockwise-ds``: torchao 0.18's blockwise casts
  (`triton_fp8_blockwise_*`) and GEMMs, both backends: ``cublas_*`` is
  ``torch.nn.functional.scaled_mm`` with BlockWise1x128 x BlockWise128x128 (forward) or
  BlockWise1x128 x BlockWise1x128-on-B^T (Wgrad: 128x1 tiles of B) scales, called through
  torchao's own ``_scaled_mm`` (cuBLASLt); ``triton_*`` is ``triton_fp8_gemm_1x128_128x128``
  / ``_128x1``. Large shapes are run whole and saved cropped (`crop_index`).
- ``casts``: every torchao blockwise cast, torchao Float8 tensorwise / rowwise / colwise
  casts (E4M3 and E5M2, with and without power-of-two scales) and DeepGEMM's test casts.
- ``layers``: one bf16 ``nn.Linear`` (no bias) under torchao's Float8BlockwiseLinear
  (cuBLASLt and Triton) and the Float8LinearConfig recipes.
- ``deepgemm``: DeepGEMM's ``gemm_fp8_fp8_bf16_nt`` (JIT; needs nvcc and DeepGEMM's source
  with CUTLASS headers, see `fp8sim.capture.run.STACK_GROUPS`).

torchao's Triton kernels autotune over configs that give identical bits (checked by the
``blockwise`` family's ``config_check``); they are pinned to one config here so that a
capture does not compile dozens of variants per shape. The key layout of the files is
described in `fp8sim.capture.golden` (`STACK_ARRAYS`).

Imported only where torch, triton and torchao exist and a CUDA GPU is there.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fp8sim.capture._saver import Saver, crop_index

__all__ = ["run_family", "env_info", "crop_index", "FAMILIES"]

Log = Callable[[str], None]
DEVICE = "cuda"
"""Where inputs are drawn and kernels run (tests set "cpu" to check the plumbing)."""


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _empty_cache() -> None:
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- helpers

def bits(t: torch.Tensor) -> np.ndarray:
    """Raw bits of a tensor: float32 -> uint32, bf16/f16 -> uint16, FP8 and uint8 -> uint8."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().view(np.uint32)
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().view(np.uint16)
    if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return t.view(torch.uint8).numpy()
    if t.dtype == torch.uint8:
        return t.numpy()
    raise TypeError(f"t: no bit layout for {t.dtype}")


def f32(t: torch.Tensor) -> np.ndarray:
    """A scale tensor as a contiguous float32 numpy array (logical orientation)."""
    return t.detach().float().contiguous().cpu().numpy()


def gen(seed: int) -> torch.Generator:
    """A generator on DEVICE seeded with `seed` (inputs are reproducible on the same GPU)."""
    g = torch.Generator(device=DEVICE)
    g.manual_seed(seed)
    return g


def draw(dist: str, shape: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """bf16 inputs: 'normal' N(0,1); 'outlier' N(0,1) with 0.5% of entries times 2^U(4,12);
    'wide' a random sign times 2^U(-12,4) per element."""
    if dist == "normal":
        x = torch.randn(shape, generator=g, device=DEVICE)
    elif dist == "outlier":
        x = torch.randn(shape, generator=g, device=DEVICE)
        hit = torch.rand(shape, generator=g, device=DEVICE) < 0.005
        mag = torch.exp2(4 + 8 * torch.rand(shape, generator=g, device=DEVICE))
        x = torch.where(hit, x * mag, x)
    elif dist == "wide":
        sign = torch.where(torch.rand(shape, generator=g, device=DEVICE) < 0.5, -1.0, 1.0)
        x = sign * torch.exp2(-12 + 16 * torch.rand(shape, generator=g, device=DEVICE))
    else:
        raise ValueError(f"dist: expected normal, outlier or wide, got {dist!r}")
    return x.to(torch.bfloat16).contiguous()


def env_info() -> dict:
    """Versions of torch, CUDA, triton, torchao, cuBLASLt, the GPU and its driver."""
    import triton
    e = {"torch": torch.__version__, "cuda": torch.version.cuda, "triton": triton.__version__,
         "gpu": torch.cuda.get_device_name(),
         "sm_count": torch.cuda.get_device_properties(0).multi_processor_count}
    try:
        import torchao
        e["torchao"] = torchao.__version__
    except ImportError as ex:
        e["torchao"] = f"not importable: {ex}"
    try:
        import ctypes
        lib = ctypes.CDLL("libcublasLt.so.13")
        e["cublaslt_version"] = int(lib.cublasLtGetVersion())
    except OSError:
        pass
    try:
        import subprocess
        e["driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return e


# ---------------------------------------------------------------- torchao blockwise

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
    _sync()
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
        rt, ct = torch.from_numpy(rows).to(DEVICE), torch.from_numpy(cols).to(DEVICE)
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
        _empty_cache()


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


# ---------------------------------------------------------------- casts

def _cast_inputs():
    """bf16 inputs of the casts: outliers, a wide range, edge blocks, NaN and Inf."""
    g = gen(400)
    yield "outlier_256x512", draw("outlier", (256, 512), g)
    yield "wide_256x512", draw("wide", (256, 512), g)
    x = draw("normal", (256, 384), g).float()
    x[0:128, 0:128] = 0.0                         # an all-zero 128x128 block
    x[128:130, 128:256] = 2.0 ** -130             # only bf16 subnormals in two rows' groups
    x[130, 256:384] = 3.0e38                      # near the bf16 maximum
    x[131:256, 256:384] *= 2.0 ** -20             # a tiny block
    x[200, :] = -0.0
    yield "edge_256x384", x.to(torch.bfloat16).contiguous()
    y = draw("normal", (128, 256), g).float()
    y[3, 5] = float("nan")
    y[70, 200] = float("inf")
    y[100, 10] = float("-inf")
    yield "naninf_128x256", y.to(torch.bfloat16).contiguous()


def fam_casts(saver: Saver, ctx: dict) -> None:
    """Every torchao blockwise cast, torchao Float8 casts and DeepGEMM's test casts."""
    from torchao.float8.config import ScalingGranularity
    from torchao.float8.float8_scaling_utils import hp_tensor_to_float8_dynamic
    from torchao.float8.float8_training_tensor import LinearMMConfig
    K = ctx["tao"]["K"]
    cfg = LinearMMConfig()
    dtypes = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
    grans = (("tensorwise", ScalingGranularity.TENSORWISE, None),
             ("rowwise", ScalingGranularity.AXISWISE, -1),
             ("colwise", ScalingGranularity.AXISWISE, 0))
    for name, x in _cast_inputs():
        d, errs = {"x": bits(x)}, {}

        def put(op: str, fn: Callable, d=d, errs=errs) -> None:
            try:
                codes, scale = fn()
                d[f"{op}_codes"], d[f"{op}_scale"] = bits(codes), f32(scale)
            except Exception as e:  # noqa: BLE001
                errs[op] = f"{type(e).__name__}: {str(e)[:200]}"

        put("blockwise_1x128", lambda x=x: K.triton_fp8_blockwise_act_quant_lhs(x, 128))
        put("blockwise_128x1", lambda x=x: K.triton_fp8_blockwise_act_quant_rhs(x, 128))
        put("blockwise_1x128_t",
            lambda x=x: K.triton_fp8_blockwise_act_quant_transposed_lhs(x, 128))
        put("blockwise_128x128", lambda x=x: K.triton_fp8_blockwise_weight_quant_rhs(x, 128))
        put("blockwise_128x128_t",
            lambda x=x: K.triton_fp8_blockwise_weight_quant_transposed_rhs(x, 128))
        for fmt, dt in dtypes.items():
            for pow2 in (False, True):
                for gname, gran, dim in grans:
                    def fn(x=x, dt=dt, gran=gran, dim=dim, pow2=pow2):
                        t = hp_tensor_to_float8_dynamic(x, dt, cfg, scaling_granularity=gran,
                                                        axiswise_dim=dim,
                                                        round_scales_to_power_of_2=pow2)
                        return t._data, t._scale
                    put(f"{gname}_{fmt}{'_pow2' if pow2 else ''}", fn)
        if ctx.get("deepgemm_src"):
            try:
                cast_x, cast_y = deepgemm_test_casts(ctx["deepgemm_src"])
                put("deepgemm_1x128", lambda x=x, f=cast_x: f(x))
                put("deepgemm_128x128", lambda x=x, f=cast_y: f(x))
            except Exception as e:  # noqa: BLE001
                errs["deepgemm"] = f"{type(e).__name__}: {str(e)[:200]}"
        d["meta"] = np.array(json.dumps({"errors": errs}))
        saver.add(f"cast/{name}", d)
        saver.log(f"cast/{name}: {sum(k.endswith('_codes') for k in d)} casts"
                  + (f"; not run: {errs}" if errs else ""))


# ---------------------------------------------------------------- layers

LAYER_SHAPES = [(256, 768, 384, "normal", 501), (128, 1024, 256, "normal", 502),
                (256, 256, 384, "outlier", 503)]
"""(tokens M, IN, OUT, dist, seed) of the 'layers' family."""


def fam_layers(saver: Saver, ctx: dict) -> None:
    """One nn.Linear under torchao's blockwise and Float8LinearConfig recipes."""
    from torch import nn
    from torchao.float8 import Float8LinearConfig, convert_to_float8_training
    L = ctx["tao"]["L"]

    def blockwise(use_triton: bool) -> Callable:
        def make(lin):
            mod = L.Float8BlockwiseLinear.from_float(lin)
            mod.use_triton = use_triton
            return mod
        return make

    def recipe(name: str) -> Callable:
        return lambda lin: convert_to_float8_training(
            lin, config=Float8LinearConfig.from_recipe_name(name))

    makers = {"blockwise_cublas": blockwise(False), "blockwise_triton": blockwise(True),
              "tensorwise": recipe("tensorwise"), "rowwise": recipe("rowwise"),
              "rowwise_with_gw_hp": recipe("rowwise_with_gw_hp")}
    for m, k, n, dist, seed in LAYER_SHAPES:
        g = gen(seed)
        x = draw(dist, (m, k), g)
        w = (draw(dist, (n, k), g).float() * 0.05).to(torch.bfloat16)
        gy = (draw(dist, (m, n), g).float() * 0.01).to(torch.bfloat16)
        pre = f"layer/{m}x{k}x{n}/{dist}"
        saver.add(pre, {"x": bits(x), "w": bits(w), "gy": bits(gy),
                        "meta": np.array(json.dumps({"seed": seed, "M": m, "IN": k, "OUT": n,
                                                     "w": "draw*0.05", "gy": "draw*0.01"}))})
        for rname, make in makers.items():
            try:
                lin = nn.Linear(k, n, bias=False, device=DEVICE, dtype=torch.bfloat16)
                with torch.no_grad():
                    lin.weight.copy_(w)
                mod = make(lin)
                xx = x.clone().requires_grad_(True)
                y = mod(xx)
                y.backward(gy)
                _sync()
                saver.add(f"{pre}/{rname}", {"y": bits(y), "gx": bits(xx.grad),
                                             "gw": bits(mod.weight.grad)})
                saver.log(f"{pre}/{rname}: y, gx, gw")
            except Exception:  # noqa: BLE001
                saver.fail(f"{pre}/{rname}")


# ---------------------------------------------------------------- DeepGEMM

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
            out = torch.empty((m, n), device=DEVICE, dtype=torch.bfloat16)
            try:
                deep_gemm.gemm_fp8_fp8_bf16_nt((xf, xs), (yf, ys), out)
            except Exception:  # noqa: BLE001 - the JIT build's error is the finding
                saver.top.setdefault("build_error", np.array(traceback.format_exc()))
                raise
            _sync()
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
                rt, ct = torch.from_numpy(rows).to(DEVICE), torch.from_numpy(cols).to(DEVICE)
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
        _empty_cache()


FAMILIES: dict[str, Callable[[Saver, dict], None]] = {
    "blockwise": fam_blockwise, "blockwise-long": fam_long, "blockwise-ds": fam_ds,
    "casts": fam_casts, "layers": fam_layers, "deepgemm": fam_deepgemm}
"""The capture families this module runs, by group name."""


def run_family(name: str, path: str | Path, *, log: Log = print, limit_mib: float = 15.5,
               deepgemm_src: str | None = None) -> Path:
    """Runs one family on the GPU and writes its .npz (at most `limit_mib` MiB) to `path`."""
    if name not in FAMILIES:
        raise ValueError(f"name: expected one of {', '.join(FAMILIES)}, got {name!r}")
    env = env_info()
    ctx: dict = {"deepgemm_src": deepgemm_src}
    if name != "deepgemm":
        ctx["tao"] = tao_setup()
        env["triton_pinned"] = ctx["tao"]["pinned"]
    elif deepgemm_src:
        env["deep_gemm_src"] = str(deepgemm_src)
    saver = Saver(Path(path), env, int(limit_mib * 2**20), log)
    try:
        FAMILIES[name](saver, ctx)
    except Exception:  # noqa: BLE001 - keep what was captured
        saver.fail(f"family {name}")
    return saver.write()
