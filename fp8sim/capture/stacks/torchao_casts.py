"""torchao's and DeepGEMM's FP8 casts on bf16 inputs: the ``casts`` group.

Every torchao blockwise cast (1x128, 128x1, 128x128, transposed), torchao's Float8
tensorwise / rowwise / colwise casts (E4M3 and E5M2, with and without power-of-two scales)
and, given DeepGEMM's source, DeepGEMM's test casts, each on inputs with outliers, a wide
range, edge blocks, NaN and Inf. Imported only where torch and torchao exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import torch

from fp8sim.capture.saver import Saver
from fp8sim.capture.stacks.common import bits, draw, f32, gen
from fp8sim.capture.stacks.deepgemm import deepgemm_test_casts

__all__ = ["fam_casts"]


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
