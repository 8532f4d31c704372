"""GPU speed of a whole simulated FP8 Linear layer against its three GEMMs alone.

    python scripts/bench_gpu_linear.py [--size 4096] [--recipes deepseek-v3,torchao-tensorwise]

For an M = IN = OUT = size layer, times (CUDA events, median of --reps after a warm-up)
`Float8SimLinear(..., engine="gpu")` forward + backward on CUDA tensors (casts, GEMMs,
epilogues, bf16 conversions, all on the device), the recipe's three GEMMs alone on
pre-cast device codes (`fp8sim.gemm(..., engine="gpu")`), and torch's bf16 nn.Linear
forward + backward. Exits 0 with a message when there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import sys

from bench_gpu import torch_median_ms as _median_ms  # run as a script: scripts/ is on the path


def measure(size: int, recipes: list[str], reps: int, log=print) -> list[dict]:
    """Rows: per recipe, the layer's and the three GEMMs' times, and torch bf16's."""
    import cupy as cp
    import numpy as np
    import torch

    from fp8sim.engine.gemm import gemm
    from fp8sim.engine.kernel import kernel as _kernel
    from fp8sim.recipes.catalog import LINEAR_RECIPES
    from fp8sim.recipes.gpu_casts import quantize
    from fp8sim.torch import Float8SimLinear

    torch.manual_seed(0)
    x = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    gy = torch.randn(size, size, device="cuda", dtype=torch.bfloat16) * 1e-3
    rows = []
    ref = torch.nn.Linear(size, size, bias=False, device="cuda", dtype=torch.bfloat16)

    def bf16_step():
        xx = x.detach().requires_grad_(True)
        ref(xx).backward(gy)

    t_bf16 = _median_ms(bf16_step, reps)
    macs = 3.0 * size**3
    rows.append({"what": "torch bf16 nn.Linear fwd+bwd", "size": size, "ms": t_bf16,
                 "gmacs": macs / t_bf16 / 1e6})
    log(rows[-1])
    for name in recipes:
        r = LINEAR_RECIPES[name]
        layer = Float8SimLinear(size, size, bias=False, recipe=r, engine="gpu").cuda()

        def layer_step(layer=layer):
            xx = x.detach().requires_grad_(True)
            layer(xx).backward(gy)

        t_layer = _median_ms(layer_step, reps)
        xs = x.float().contiguous()
        ws = layer.weight.detach().to(torch.bfloat16).float().contiguous()
        gs = gy.float().contiguous()
        operands = [(r.forward, xs, ws.T.contiguous()), (r.grad_input, gs, ws),
                    (r.grad_weight, gs.T.contiguous(), xs)]
        calls = []
        for g, a, b in operands:
            ca, sa = quantize(cp.from_dlpack(a), g.a.fmt, block=g.a.resolve(a.shape),
                              pow2_scale=g.a.pow2_scale, convention=g.a.convention, xp=cp)
            cb, sb = quantize(cp.from_dlpack(b), g.b.fmt, block=g.b.resolve(b.shape),
                              pow2_scale=g.b.pow2_scale, convention=g.b.convention, xp=cp)
            kern = _kernel(g.kernel)
            if g.scales == "after":  # unit scales in the kernel, the cast's after it
                sa = sb = np.float32(1)
            elif kern.scaling == "tensor":
                sa, sb = sa.reshape(()), sb.reshape(())
            elif kern.scaling == "row":
                sa = cp.ascontiguousarray(cp.broadcast_to(sa, (a.shape[0], 1)))
                sb = cp.ascontiguousarray(cp.broadcast_to(sb, (1, b.shape[1])))
            kw = kern.gemm_kwargs(ca, cb, scale_a=sa, scale_b=sb, a_format=g.a.fmt,
                                  b_format=g.b.fmt, out_dtype=g.out_dtype)
            calls.append((ca, cb, kw))

        def gemms(calls=calls):
            for ca, cb, kw in calls:
                gemm(ca, cb, engine="gpu", **kw)

        t_gemms = _median_ms(gemms, reps)
        rows.append({"what": f"Float8SimLinear {name} fwd+bwd", "size": size, "ms": t_layer,
                     "gmacs": macs / t_layer / 1e6, "three_gemms_ms": t_gemms,
                     "x_three_gemms": t_layer / t_gemms, "x_torch_bf16": t_layer / t_bf16})
        log(rows[-1])
        del layer, calls
        cp.get_default_memory_pool().free_all_blocks()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--recipes", default="deepseek-v3,torchao-tensorwise,torchao-rowwise")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from fp8sim.engine import _gpu

    why = _gpu.available()
    if why is not None:
        print(f"bench_gpu_linear: skipped, {why}")
        return 0
    import torch

    rows = measure(args.size, args.recipes.split(","), args.reps,
                   log=lambda r: print(json.dumps(r), flush=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
