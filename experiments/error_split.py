"""Splits the error of FP8 training recipes into quantization and accumulation error.

x (M, K) is standard normal with outliers (a fraction `--outliers` of the entries
multiplied by `--outlier-scale`), w (K, N) is standard normal / sqrt(K). Each recipe
quantizes both, runs the bit-exact Hopper GEMM, and is measured against the float64
product of the unquantized inputs (total), while the exact product of the quantized
inputs separates the casts (quantization) from the MMA chain (accumulation).

    python3 experiments/error_split.py                 # 256x4096x256, prints a table
    python3 experiments/error_split.py --json out.json --plot error_split.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fp8sim.analysis.matmul import fp8_matmul
from fp8sim.analysis.plots import save_figure
from fp8sim.recipes.pipeline import RECIPES

DEFAULT_RECIPES = ("deepseek-v3", "deepseek-v3-ue8m0", "per-tensor", "fast-accum", "mx", "mx-te")


def make_inputs(m: int, k: int, n: int, *, seed: int = 0, outliers: float = 1e-3,
                outlier_scale: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Normal activations with sparse large outliers, and normal weights (float32)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k))
    x[rng.random((m, k)) < outliers] *= outlier_scale
    w = rng.standard_normal((k, n)) / np.sqrt(k)
    return x.astype(np.float32), w.astype(np.float32)


def run(m: int, k: int, n: int, recipes=DEFAULT_RECIPES, **data) -> list[dict]:
    """One row per recipe: the normwise and median relative errors of each part."""
    x, w = make_inputs(m, k, n, **data)
    rows = []
    for name in recipes:
        r = fp8_matmul(x, w, name)
        row = {"recipe": name, "m": m, "k": k, "n": n, "promote": r.recipe.promote,
               "seconds": r.seconds}
        for part in ("total", "quantization", "accumulation"):
            stats = getattr(r, part)
            row[f"{part}_fro_rel"] = stats["fro_rel_error"]
            row[f"{part}_median_rel"] = stats["median_rel_error"]
        rows.append(row)
    return rows


def plot(rows: list[dict], title: str = "") -> Figure:
    """Grouped bars: total, quantization and accumulation error (normwise) per recipe."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.add_subplot()
    parts = ("total", "quantization", "accumulation")
    xs = np.arange(len(rows))
    width = 0.8 / len(parts)
    for i, part in enumerate(parts):
        ax.bar(xs + (i - 1) * width, [r[f"{part}_fro_rel"] for r in rows], width, label=part)
    ax.set_xticks(xs, [f"{r['recipe']}\n(promote {r['promote']})" for r in rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("relative error ||D - exact||_F / ||exact||_F")
    ax.set_xlabel("recipe")
    ax.set_title(title or "FP8 GEMM error split by recipe")
    fig.legend(loc="outside right upper")
    return fig


def main(argv: list[str] | None = None) -> int:
    """Command line: prints the table (and writes JSON with --json)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _cli import OneLineParser, fraction, out_file, positive_int

    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=positive_int, default=256)
    p.add_argument("--k", type=positive_int, default=4096)
    p.add_argument("--n", type=positive_int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--outliers", type=fraction, default=1e-3,
                   help="share of entries made outliers, in [0, 1)")
    p.add_argument("--outlier-scale", type=float, default=100.0)
    p.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES), choices=list(RECIPES))
    p.add_argument("--json", type=out_file, help="also write the rows to this file")
    p.add_argument("--plot", type=out_file,
                   help="also save a bar chart (PNG/SVG/PDF) to this file")
    a = p.parse_args(argv)
    rows = run(a.m, a.k, a.n, a.recipes, seed=a.seed, outliers=a.outliers,
               outlier_scale=a.outlier_scale)
    print(f"{a.m}x{a.k}x{a.n}, normal with {a.outliers:g} outliers x{a.outlier_scale:g}, "
          f"seed {a.seed}; errors relative to |exact| (Frobenius norm / median elementwise)")
    head = f"{'recipe':<19}{'promote':>8}" + "".join(
        f"{p + ' fro':>17}{'median':>10}" for p in ("total", "quantization", "accumulation"))
    print(head)
    for r in rows:
        print(f"{r['recipe']:<19}{r['promote']:>8}" + "".join(
            f"{r[p + '_fro_rel']:>17.3e}{r[p + '_median_rel']:>10.2e}"
            for p in ("total", "quantization", "accumulation")))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if a.plot:
        title = (f"FP8 GEMM error split, {a.m}x{a.k}x{a.n}, normal with "
                 f"{a.outliers:g} outliers x{a.outlier_scale:g}")
        save_figure(plot(rows, title), a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
