"""Compiles every cached numba kernel once, at install, so the first test run or study does
not pay for it (the cache lives in the package's __pycache__ folders, shared by processes).

Run by `make install`; running it again is cheap (everything loads from the cache).
"""
import ml_dtypes
import numpy as np

import fp8sim
from fp8sim.engine.bf16 import gemm_bf16

x = np.linspace(-3.0, 3.0, 64 * 64, dtype=np.float32).reshape(64, 64)
for rounding in ("rne", "rtz", "up", "down", "sr"):  # one encode kernel per rounding mode,
    for source in (x, x.astype(np.float64)):  # each for 32- and 64-bit inputs
        fp8sim.encode(source, "e4m3", rounding=rounding)
codes = fp8sim.encode(x)
fp8sim.gemm(codes, codes, promote=32)  # the FP8 engine: one signature for every GEMM
gemm_bf16(x.astype(ml_dtypes.bfloat16), x.astype(ml_dtypes.bfloat16))
