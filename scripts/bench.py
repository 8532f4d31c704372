"""fp8sim speed figures, measured in one run against numpy float32 matmul on the same machine.

Prints a table and appends the figures to a CSV (one row per figure, with the git
commit) so versions can be compared. Not a test: nothing here asserts.

    python3 scripts/bench.py [--csv bench/results.csv] [--quick] [--big]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fp8sim  # noqa: E402

STARTUP = ("import time; t = time.perf_counter(); import numpy as np, fp8sim; "
           "a = np.zeros((64, 64), np.uint8); fp8sim.gemm(a, a, promote=32); "
           "fp8sim.gemm(a, a); print(time.perf_counter() - t)")
PEAK = """
import os, sys, threading, time
import numpy as np, fp8sim
m, n, k, p = map(int, sys.argv[1:])
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
z = np.zeros((64, 64), np.uint8)
fp8sim.gemm(z, z, promote=32)  # compiled (or loaded from the cache) before measuring
base = rss()
a = np.full((m, k), 0x38, np.uint8); b = np.full((k, n), 0x3A, np.uint8); a[::3] = 0x41
peak, done = [rss()], [False]
def sample():
    while not done[0]:
        peak[0] = max(peak[0], rss()); time.sleep(0.002)
t = threading.Thread(target=sample); t.start()
t0 = time.perf_counter(); fp8sim.gemm(a, b, promote=p); dt = time.perf_counter() - t0
done[0] = True; t.join(); peak[0] = max(peak[0], rss())
print(base, peak[0], dt)
"""


def best_of(fn, repeat: int) -> float:
    """Shortest wall time of `repeat` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def blas_info() -> str:
    """Which BLAS kernel numpy runs (threadpoolctl when available)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    infos = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
             f"threads={i.get('num_threads')}" for i in threadpool_info()
             if i.get("user_api") == "blas"]
    return "; ".join(infos) or "none"


def bench_gemm(m: int, n: int, k: int, promote: int, repeat: int) -> dict:
    """GMAC/s of the bit-exact GEMM and its time relative to numpy float32 matmul."""
    rng = np.random.default_rng(0)
    a = fp8sim.encode(rng.standard_normal((m, k), dtype=np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((k, n), dtype=np.float32), "e4m3")
    fp8sim.gemm(a[:8, :64], b[:64, :8], promote=promote)  # compile outside the timing
    t_sim = best_of(lambda: fp8sim.gemm(a, b, promote=promote), repeat)
    x, y = fp8sim.decode(a, "e4m3"), fp8sim.decode(b, "e4m3")
    t_np = best_of(lambda: x @ y, repeat + 1)
    return {"gmacs": m * n * k / t_sim / 1e9, "seconds": t_sim, "numpy_seconds": t_np,
            "ratio": t_sim / t_np}


def bench_encode(count: int, repeat: int) -> float:
    """Values per second of encode (float32 -> e4m3, nearest even)."""
    x = np.random.default_rng(1).standard_normal(count, dtype=np.float32) * np.float32(100)
    fp8sim.encode(x[:1000], "e4m3")
    return count / best_of(lambda: fp8sim.encode(x, "e4m3"), repeat)


def startup_seconds(cache_dir: str) -> float:
    """Wall time of a fresh process's import plus first two GEMMs, with this numba cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", STARTUP], env=env, check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def peak_memory(m: int, n: int, k: int, promote: int) -> dict:
    """Peak RSS of a fresh process running one GEMM, against the size of its arrays."""
    out = subprocess.run([sys.executable, "-c", PEAK, str(m), str(n), str(k), str(promote)],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    base, peak, seconds = map(float, out.stdout.split())
    arrays = m * k + k * n + 4 * m * n
    return {"peak_rss_mb": peak / 2**20, "growth_mb": (peak - base) / 2**20,
            "arrays_mb": arrays / 2**20, "growth_over_arrays": (peak - base) / arrays,
            "seconds": seconds}


def bench_dask(points: int, workers: int = 2) -> dict | None:
    """Grid points per second of a sweep here and on a local Dask cluster (None: no Dask)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return None
    from fp8sim.analysis.distributed import connect
    from fp8sim.analysis.sweep import sweep, sweep_grid

    ks = [1024 * (1 + i % 4) for i in range(points // 2)]
    grid = sweep_grid(ks, m=128, n=128, promotes=(0, 128), dists=("normal",))
    sweep(grid[:1])  # compiled outside the timing
    t_local = best_of(lambda: sweep(grid), 1)
    t0 = time.perf_counter()
    with connect(f"local:{workers}") as client:
        t_start = time.perf_counter() - t0
        sweep(grid[:workers], client=client)  # workers import fp8sim and load the kernels
        t_dask = best_of(lambda: sweep(grid, client=client), 1)
    return {"points": len(grid), "local_pps": len(grid) / t_local,
            "dask_pps": len(grid) / t_dask, "cluster_start_s": t_start}


def gpu_rows(record, quick: bool) -> None:
    """The GPU engine against torch.matmul (scripts/bench_gpu.py); skipped without a GPU."""
    from fp8sim.engine import _gpu

    why = _gpu.available()
    if why is not None:
        print(f"gpu rows skipped: {why}")
        return
    import bench_gpu

    sizes = [2048] if quick else [4096, 8192]
    name, rows = bench_gpu.measure(sizes, [0, 128], reps=3, log=lambda line: None)
    print(f"gpu: {name}")
    for r in rows:
        if r["what"].startswith("fp8sim gpu hopper"):
            tag = f"gpu_gemm_e4m3_{r['size']}^3_p{r['promote']}"
            record(f"{tag}_gmacs", r["gmacs"], "GMAC/s")
            record(f"{tag}_vs_torch_f32", r["x_fp32"], "x torch f32 time")
            record(f"{tag}_vs_torch_bf16", r["x_bf16"], "x torch bf16 time")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=ROOT / "bench" / "results.csv")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one repeat")
    parser.add_argument("--big", action="store_true", help="also 4096^3 and 4096x4096x65536")
    args = parser.parse_args()

    import numba
    rows: list[tuple[str, float, str]] = []

    def record(name: str, value: float, unit: str) -> None:
        rows.append((name, value, unit))
        print(f"{name:<44} {value:>12.3f} {unit}", flush=True)

    print(f"fp8sim {fp8sim.__version__} ({git_commit()}), numba {numba.__version__}, "
          f"{numba.get_num_threads()} threads, numpy {np.__version__}")
    print(f"numpy BLAS: {blas_info()}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}\n")

    with tempfile.TemporaryDirectory() as cache:
        record("startup_first_call_cold_cache_s", startup_seconds(cache), "s")
        record("startup_first_call_cached_s", startup_seconds(cache), "s")

    repeat = 1 if args.quick else 2
    shapes = [(512, 512, 4096)] if args.quick else [(1024, 1024, 4096), (2048, 2048, 4096)]
    for m, n, k in shapes:
        for promote in (0, 128):
            r = bench_gemm(m, n, k, promote, repeat)
            tag = f"gemm_e4m3_{m}x{n}x{k}_p{promote}"
            record(f"{tag}_gmacs", r["gmacs"], "GMAC/s")
            record(f"{tag}_vs_numpy_f32", r["ratio"], "x numpy time")
    count = 10**7 if args.quick else 10**8
    record(f"encode_e4m3_{count:.0e}_values_per_s", bench_encode(count, repeat + 1) / 1e6,
           "M values/s")
    mem_shape = (1024, 1024, 4096) if args.quick else (4096, 4096, 4096)
    mem = peak_memory(*mem_shape, 128)
    tag = "x".join(map(str, mem_shape))
    record(f"gemm_{tag}_p128_seconds", mem["seconds"], "s")
    record(f"gemm_{tag}_peak_rss", mem["peak_rss_mb"], "MB")
    record(f"gemm_{tag}_rss_growth_over_arrays", mem["growth_over_arrays"], "x (inputs+output)")
    if args.big:
        mem = peak_memory(4096, 4096, 65536, 128)
        record("gemm_4096x4096x65536_p128_seconds", mem["seconds"], "s")
        record("gemm_4096x4096x65536_p128_peak_rss", mem["peak_rss_mb"], "MB")

    d = bench_dask(8 if args.quick else 16)
    if d is None:
        print("dask rows skipped: dask[distributed] not installed")
    else:
        tag = f"sweep_{d['points']}pts_128x128"
        record(f"{tag}_local_points_per_s", d["local_pps"], "points/s")
        record(f"{tag}_dask_local2_points_per_s", d["dask_pps"], "points/s")
        record(f"{tag}_dask_vs_local", d["dask_pps"] / d["local_pps"], "x local rate")
        record("dask_local2_cluster_start_s", d["cluster_start_s"], "s")
    gpu_rows(record, args.quick)

    args.csv.parent.mkdir(parents=True, exist_ok=True)
    new = not args.csv.exists()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with args.csv.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["utc", "commit", "threads", "metric", "value", "unit"])
        for name, value, unit in rows:
            w.writerow([stamp, git_commit(), numba.get_num_threads(), name, f"{value:.6g}", unit])
    print(f"\nwrote {len(rows)} figures to {args.csv}")
    print(json.dumps({name: round(value, 4) for name, value, _ in rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
