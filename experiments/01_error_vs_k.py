"""Study 1: relative error of an FP8 GEMM against K, without promotion and promoting every 128.

    python3 experiments/01_error_vs_k.py            # writes results/01_error_vs_k*.{csv,png}
    python3 experiments/01_error_vs_k.py --small    # a quick smoke run (no files unless --out)

E4M3 x E4M3 GEMMs with K = 128 .. 65536 (M = N = 128; 64 x 64 at K = 65536, the shape of
the H100 long-K captures) on four data distributions (`fp8sim.analysis.studies.DISTS`): normal
N(0,1), positive |N(0,1)|, uniform U(-1,1), and uniformly drawn finite codes, each
simulated bit-exactly with `fp8sim.gemm` (preset "hopper") and measured against the
float64 product of the FP8 inputs.

Why DeepSeek-V3's "maximum relative error of nearly 2%" at K = 4096 is one number among
many (the printed summary and experiments/README.md give the measured values):

* The Hopper MMA chain keeps about 13 fractional bits and truncates the aligned addends.
  The truncation is a bias, not noise: every dropped bit makes |partial sum| smaller.
  On same-sign data (positive) the bias adds up over K, so the error grows linearly in K
  and every output has about the same error: max ~ mean ~ normwise (the H100 itself gives
  7.6 % max on the 64 x 64 x 4096 |N(0,1)| capture).
* On zero-mean data (normal, uniform) the products cancel, the accumulator stays small
  (~sqrt(K)) and so do the truncation errors: normwise error is 10x-100x lower. But some
  outputs are near zero, and their *relative* error is huge, so "max relative error over
  outputs" is set by the smallest |exact| output: it grows with M * N (more samples, a
  smaller minimum) and is meaningless as a precision measure.
* Hence "2%" needs a statement of data and statistic. It is what data with a moderate
  positive mean gives: N(mu, 1) operands at K = 4096 (128 x 128) give a max relative
  error of 1.4 % at mu = 0.5, 2.6 % at mu = 0.75 (mean 1.8 %) and 3.5 % at mu = 1,
  between zero-mean data (~0.13 % normwise, max meaningless) and all-positive data (7 %,
  as the H100). LLM activations after ReLU/SwiGLU times
  weights are in that middle ground. Promoting every 128 elements cuts every case to
  < 0.1 % normwise.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import golden_check, results_path, stats, study_cli, write_csv  # noqa: E402

import fp8sim  # noqa: E402
from fp8sim.analysis.plots import error_lines, error_vs_k, save_figure  # noqa: E402
from fp8sim.analysis.stats import exact_product  # noqa: E402
from fp8sim.analysis.studies import DISTS, random_case  # noqa: E402

STUDY = "01_error_vs_k"
KS = tuple(2 ** i for i in range(7, 17))  # 128 .. 65536
PROMOTES = (0, 128)
SAMPLE_SIZES = (16, 64, 256, 1024)  # M = N at K = 4096, promote 0
MEANS = (0.0, 0.25, 0.5, 0.75, 1.0, 2.0)  # N(mu, 1) data at K = 4096, promote 0


def shape_for(k: int, small: bool) -> tuple[int, int]:
    """M, N for one K: 128 x 128, 64 x 64 at K = 65536 (as the H100 capture), 16 x 16 small."""
    if small:
        return 16, 16
    return (64, 64) if k >= 65536 else (128, 128)


def measure(m: int, n: int, k: int, dist: str, promote: int, seed: int = 0) -> dict:
    """One simulated GEMM and its error statistics, as a CSV row."""
    a, b = random_case(m, n, k, dist=dist, seed=seed)
    t0 = time.perf_counter()
    out = fp8sim.gemm(a, b, promote=promote)
    seconds = time.perf_counter() - t0
    s = stats(out, exact_product(fp8sim.decode(a, "e4m3"), fp8sim.decode(b, "e4m3")))
    return {"sweep": "k", "dist": dist, "m": m, "n": n, "k": k, "promote": promote,
            "max_rel_error": s["max_rel_error"], "mean_rel_error": s["mean_rel_error"],
            "median_rel_error": s["median_rel_error"], "fro_rel_error": s["fro_rel_error"],
            "seconds": seconds}


def measure_mean(mu: float, m: int, k: int, seed: int = 3) -> dict:
    """Error of a GEMM of N(mu, 1) data (both operands), no promotion, as a CSV row."""
    rng = np.random.default_rng(seed)
    a = fp8sim.encode((rng.standard_normal((m, k)) + mu).astype(np.float32), "e4m3",
                      saturate=True)
    b = fp8sim.encode((rng.standard_normal((k, m)) + mu).astype(np.float32), "e4m3",
                      saturate=True)
    out = fp8sim.gemm(a, b)
    s = stats(out, exact_product(fp8sim.decode(a, "e4m3"), fp8sim.decode(b, "e4m3")))
    return {"sweep": "mean", "dist": f"N({mu:g},1)", "m": m, "n": m, "k": k, "promote": 0,
            "max_rel_error": s["max_rel_error"], "mean_rel_error": s["mean_rel_error"],
            "median_rel_error": s["median_rel_error"], "fro_rel_error": s["fro_rel_error"],
            "seconds": 0.0}


def run(small: bool = False) -> tuple[list[dict], dict | None]:
    """All rows of the study (K sweep, then the M*N sample-size sweep) and the golden check."""
    ks = KS[:3] if small else KS
    rows = [measure(*shape_for(k, small), k, dist, p)
            for dist in DISTS for p in PROMOTES for k in ks]
    for size in (SAMPLE_SIZES[:2] if small else SAMPLE_SIZES):
        for dist in ("positive", "normal"):
            r = measure(size, size, 512 if small else 4096, dist, 0, seed=1)
            rows.append(r | {"sweep": "mn"})
    for mu in (MEANS[::3] if small else MEANS):
        rows.append(measure_mean(mu, 16 if small else 128, 512 if small else 4096))
    gold = golden_check("gemm_public0.npz", "e4m3_e4m3/positive/K4096", "triton_p0")
    if not small:
        golden_check("gemm_public0.npz", "e4m3_e4m3/positive/K4096", "triton_p128")
        golden_check("longk_public0.npz", "e4m3_e4m3/normal/K65536", "triton_p0")
    return rows, gold


def summary(rows: list[dict], gold: dict | None) -> str:
    """The findings as text: errors at K = 4096 per distribution, and the M*N effect."""
    lines = ["K = 4096 (M = N = 128): relative error, max / mean / normwise over outputs"]
    for r in rows:
        if r["sweep"] == "k" and r["k"] == 4096:
            lines.append(f"  {r['dist']:<9} promote {r['promote']:>3}: "
                         f"max {r['max_rel_error']:9.3e}"
                         f"  mean {r['mean_rel_error']:9.3e}  normwise {r['fro_rel_error']:9.3e}")
    lines.append("K = 4096, no promotion: max relative error vs number of outputs (M = N)")
    for r in rows:
        if r["sweep"] == "mn":
            lines.append(f"  {r['dist']:<9} {r['m']:>5} x {r['n']:<5}: "
                         f"max {r['max_rel_error']:9.3e}"
                         f"  mean {r['mean_rel_error']:9.3e}  normwise {r['fro_rel_error']:9.3e}")
    lines.append("K = 4096, no promotion, N(mu, 1) data (M = N = 128): error vs mean")
    for r in rows:
        if r["sweep"] == "mean":
            lines.append(f"  {r['dist']:<9}: max {r['max_rel_error']:9.3e}  "
                         f"mean {r['mean_rel_error']:9.3e}  normwise {r['fro_rel_error']:9.3e}")
    big = [r for r in rows if r["sweep"] == "k" and r["k"] == max(x["k"] for x in rows)]
    for r in big:
        lines.append(f"K = {r['k']} ({r['m']}x{r['n']}) {r['dist']:<9} promote {r['promote']:>3}: "
                     f"normwise {r['fro_rel_error']:.3e}, max {r['max_rel_error']:.3e}")
    if gold:
        lines.append(f"H100 capture {gold['case']}: reproduced bit for bit; max rel error "
                     f"{gold['h100_max_rel_error']:.4f} "
                     "(DeepSeek-V3 quotes 'nearly 2%' at K = 4096)")
    return "\n".join(lines)


def main(small: bool = False, out_dir: Path | None = None) -> list[dict]:
    """Runs the study, writes <out_dir>/01_error_vs_k.{csv,png}, prints the summary.

    With small=True (a smoke test) nothing is written unless `out_dir` is given.
    """
    t0 = time.perf_counter()
    rows, gold = run(small)
    print(summary(rows, gold))
    if not small or out_dir is not None:
        write_csv(rows, results_path(STUDY, ".csv", out_dir))
        ref = {"DeepSeek-V3: 'nearly 2%' (K=4096)": (4096, 0.02)}
        ref_fro = {}  # the normwise figure's stars: normwise errors only
        if gold:
            m, n, _ = gold["shape"]
            label = f"H100 capture, positive, {m}x{n}, no promotion"
            ref[label] = (4096, gold["h100_max_rel_error"])
            ref_fro[label] = (4096, gold["h100_fro_rel_error"])
        for r in rows:
            if r["sweep"] == "mean" and r["dist"] == "N(0.75,1)":
                label = "simulated N(0.75,1) data, 128x128, no promotion"
                ref[label] = (r["k"], r["max_rel_error"])
                ref_fro[label] = (r["k"], r["fro_rel_error"])
        fig = error_vs_k([r for r in rows if r["sweep"] == "k"], reference=ref,
                         title="E4M3 GEMM on the Hopper model: max relative error vs K\n"
                               "(M = N = 128; 64 x 64 at K = 65536)")
        save_figure(fig, results_path(STUDY, ".png", out_dir))
        fig = error_vs_k([r for r in rows if r["sweep"] == "k"], metric="fro_rel_error",
                         reference=ref_fro, title="E4M3 GEMM on the Hopper model: normwise "
                         "relative error vs K\n(M = N = 128; 64 x 64 at K = 65536)")
        save_figure(fig, results_path(STUDY + "_normwise", ".png", out_dir))
        mn = [r | {"outputs": r["m"] * r["n"], "data": f"{r['dist']}, {stat}", "err": r[col]}
              for r in rows if r["sweep"] == "mn"
              for stat, col in (("max", "max_rel_error"), ("normwise", "fro_rel_error"))]
        fig = error_lines(mn, x="outputs", metric="err", series="data",
                          xlabel="M x N (outputs the max is taken over)", figsize=(8.5, 5.0),
                          ylabel="relative error (max or normwise over outputs)",
                          title=f"K = {mn[0]['k']}, no promotion: the max relative error of "
                                "zero-mean data\ngrows with the number of outputs")
        save_figure(fig, results_path(STUDY + "_sample_size", ".png", out_dir))
    print(f"{STUDY}: {len(rows)} GEMMs in {time.perf_counter() - t0:.1f} s")
    return rows


if __name__ == "__main__":
    study_cli(main, __doc__)
