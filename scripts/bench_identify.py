"""Times fp8sim.identify on H100 captures: one output per K, both searches.

    python3 scripts/bench_identify.py [GOLDEN_DIR]

Prints, per output, K, the search, candidates tried, the best candidate, its match
and the median wall time of three runs (after one warm-up call that loads the engine).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numba

from fp8sim.analysis.identify import identify
from fp8sim.capture.golden import load_cases, output_spec

ROOT = Path(__file__).resolve().parents[1]
PICKS = [("gemm_public0", "e4m3_e4m3/normal/K256", "cublas_slow_f32"),
         ("gemm_public0", "e4m3_e4m3/normal/K1024", "triton_p256"),
         ("gemm_public0", "e4m3_e4m3/normal/K4096", "cublas_slow_bf16"),
         ("longk_public0", "e4m3_e4m3/normal/K16384", "triton_p128"),
         ("longk_public0", "e4m3_e4m3/normal/K16384", "cublas_fast_f32"),
         ("longk_public0", "e4m3_e4m3/normal/K65536", "cublas_slow_f32")]


def main(golden: Path) -> None:
    """Runs and prints the timings."""
    print(f"numba threads: {numba.get_num_threads()}")
    print(f"{'output':<46}{'search':>8}{'tried':>7}  {'best':<34}{'match':>8}{'seconds':>9}")
    cache: dict = {}
    for fname, key, name in PICKS:
        if fname not in cache:
            cache[fname] = {c.key: c for c in load_cases(golden / f"{fname}.npz")}
        case = cache[fname][key]
        kw = {k: v for k, v in output_spec(case, name).items() if k not in ("promote", "preset")}
        for search in ("promote", "split", "full"):
            if search == "full" and case.k > 16384:
                continue
            identify(case.a[:1], case.b, case.arrays[name][:1], promotes=[0], **kw)  # warm-up
            times, r = [], None
            for _ in range(3):
                t0 = time.perf_counter()
                r = identify(case.a, case.b, case.arrays[name], search=search, **kw)
                times.append(time.perf_counter() - t0)
            print(f"{key + '/' + name:<46}{search:>8}{r['tried']:>7}  {r['label']:<34}"
                  f"{r['match']:>8.4f}{statistics.median(times):>9.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "golden")
