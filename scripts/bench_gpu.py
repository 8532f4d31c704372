"""GPU engine speed: GMAC/s of the bit-exact simulation against torch.matmul in the same run.

    python scripts/bench_gpu.py [--sizes 4096,8192] [--promotes 0,128] [--json out.json]

Times the engine's kernel on device-resident codes (CUDA events, median of --reps runs
after a warm-up), torch.matmul in float32 (no TF32) and bfloat16 on the decoded values
of the same matrices, and prints GMAC/s and the time ratios (simulation / torch). Also
the end-to-end `fp8sim.gemm(..., engine="gpu")` (host arrays in and out) at the first size.
Exits 0 with a message when there is no GPU.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time

import numpy as np


def _median_ms(fn, reps: int) -> float:
    """Median time of fn() in milliseconds, CUDA events, after one warm-up call."""
    import cupy as cp

    fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(reps):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return statistics.median(times)


def torch_median_ms(fn, reps: int) -> float:
    """Median time of fn() in milliseconds, torch CUDA events, after one warm-up call
    (also what scripts/bench_gpu_linear.py times with)."""
    import torch

    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def _torch_ms(x, y, reps: int) -> float:
    """Median time of torch.matmul(x, y) in milliseconds (CUDA events)."""
    import torch

    return torch_median_ms(functools.partial(torch.matmul, x, y), reps)


def measure(sizes: list[int], promotes: list[int], reps: int = 3, extra: bool = False,
            log=print) -> tuple[str, list[dict]]:
    """(device name, rows): the GPU engine's kernel and torch.matmul timed at each size."""
    import cupy as cp
    import torch

    import fp8sim
    from fp8sim.analysis.studies import random_case
    from fp8sim.engine import _gpu
    from fp8sim.engine._gemm_kernels import FUSED, IDEAL
    from fp8sim.engine.gemm import _tables
    from fp8sim.formats.info import format_info

    torch.backends.cuda.matmul.allow_tf32 = False
    dev = cp.cuda.runtime.getDeviceProperties(0)
    name = dev["name"].decode() if isinstance(dev["name"], bytes) else dev["name"]
    log(f"device: {name}, {dev['multiProcessorCount']} SMs; torch {torch.__version__}, "
        f"cupy {cp.__version__}")
    tav, tag = _tables(format_info("e4m3"))
    tables = cp.asarray(np.concatenate([tav, tag, tav, tag]).astype(np.float32))
    one = cp.ones((1, 1), cp.float32)
    rows: list[dict] = []

    def record(**row):
        rows.append(row)
        log("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in row.items()))

    for s in sizes:
        t0 = time.perf_counter()
        a, b = random_case(s, s, s, dist="normal", seed=1)
        da, db = cp.asarray(a), cp.asarray(b)
        out = cp.empty((s, s), cp.float32)
        macs = float(s) ** 3
        xa = torch.as_tensor(fp8sim.decode(a, "e4m3"), device="cuda")
        xb = torch.as_tensor(fp8sim.decode(b, "e4m3"), device="cuda")
        log(f"size {s}: inputs ready in {time.perf_counter() - t0:.1f} s")
        t32 = _torch_ms(xa, xb, reps)
        t16 = _torch_ms(xa.to(torch.bfloat16), xb.to(torch.bfloat16), reps)
        record(what="torch.matmul float32", size=s, ms=t32, gmacs=macs / t32 / 1e6)
        record(what="torch.matmul bfloat16", size=s, ms=t16, gmacs=macs / t16 / 1e6)
        del xa, xb
        variants = [("hopper", FUSED, p) for p in promotes]
        if extra and s == sizes[0]:
            variants += [("ideal", IDEAL, 0)]
        for preset, mode, promote in variants:
            run = functools.partial(_gpu.gemm_device, da, db, tables, one, False, mode, 32,
                                    13, promote or s, promote > 0, _gpu.WHEN_NONE, 0, False,
                                    one, one, _gpu.NO_COLUMN, out)
            t = _median_ms(run, reps)
            record(what=f"fp8sim gpu {preset}", size=s, promote=promote, ms=t,
                   gmacs=macs / t / 1e6, x_fp32=t / t32, x_bf16=t / t16)
        if s == sizes[0]:
            t0 = time.perf_counter()
            fp8sim.gemm(a, b, promote=128, engine="gpu")
            t = (time.perf_counter() - t0) * 1e3
            record(what="fp8sim.gemm(engine='gpu') end to end", size=s, promote=128, ms=t,
                   gmacs=macs / t / 1e6)
        del da, db, out
        cp.get_default_memory_pool().free_all_blocks()
    if extra:
        s = 1024
        a, b = random_case(s, s, s, dist="normal", seed=2)
        da, db = cp.asarray(a), cp.asarray(b)
        out = cp.empty((s, s), cp.float32)
        t = _median_ms(functools.partial(
            _gpu.gemm_device, da, db, tables, one, False, FUSED, 32, 13, 128, True,
            _gpu.WHEN_NONE, 0, False, one, one, _gpu.NO_COLUMN, out, kernel="generic"), reps)
        record(what="fp8sim gpu generic kernel", size=s, promote=128, ms=t,
               gmacs=float(s) ** 3 / t / 1e6)
    return name, rows


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; prints a table and optionally writes JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4096,8192")
    ap.add_argument("--promotes", default="0,128")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--extra", action="store_true",
                    help="also the ideal preset and the generic (one thread per output) kernel")
    args = ap.parse_args(argv)

    from fp8sim.engine import _gpu

    why = _gpu.available()
    if why is not None:
        print(f"bench_gpu: skipped, {why}")
        return 0
    name, rows = measure([int(s) for s in args.sizes.split(",")],
                         [int(p) for p in args.promotes.split(",")], args.reps, args.extra,
                         log=lambda line: print(line, flush=True))
    print(f"\nsummary (median of {args.reps} runs; x = simulation time / torch time):")
    for r in rows:
        if r["what"].startswith("fp8sim gpu hopper"):
            print(f"  {r['size']}^3 promote {r['promote']:>3}: {r['gmacs']:8.1f} GMAC/s  "
                  f"{r['x_fp32']:6.2f}x torch fp32  {r['x_bf16']:7.1f}x torch bf16")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
