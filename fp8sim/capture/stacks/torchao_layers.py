"""One bf16 ``nn.Linear`` under torchao's FP8 training recipes: the ``layers`` group.

Forward and backward (y, grad_x, grad_w) of one Linear layer (no bias) under torchao's
Float8BlockwiseLinear (cuBLASLt and Triton) and the Float8LinearConfig recipes
tensorwise, rowwise and rowwise_with_gw_hp. Imported only where torch and torchao exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import torch

from fp8sim.capture.saver import Saver
from fp8sim.capture.stacks import common
from fp8sim.capture.stacks.common import bits, draw, gen, sync

__all__ = ["LAYER_SHAPES", "fam_layers"]


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
                lin = nn.Linear(k, n, bias=False, device=common.DEVICE, dtype=torch.bfloat16)
                with torch.no_grad():
                    lin.weight.copy_(w)
                mod = make(lin)
                xx = x.clone().requires_grad_(True)
                y = mod(xx)
                y.backward(gy)
                sync()
                saver.add(f"{pre}/{rname}", {"y": bits(y), "gx": bits(xx.grad),
                                             "gw": bits(mod.weight.grad)})
                saver.log(f"{pre}/{rname}: y, gx, gw")
            except Exception:  # noqa: BLE001
                saver.fail(f"{pre}/{rname}")
