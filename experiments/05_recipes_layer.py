"""Study 5: one Linear layer under each real FP8 training recipe: what y, grad_x, grad_w lose.

    python3 experiments/05_recipes_layer.py          # results/05_recipes_layer.{png,csv}
    python3 experiments/05_recipes_layer.py --small  # smoke run

One bias-free Linear layer, x (M x IN) -> y (M x OUT), with bfloat16 inputs shaped like a
transformer's: x is N(0, 1) with 8 outlier channels (x 30), w is N(0, 1/IN), and the
gradient gy is N(0, 1e-2) with 1 in 16 tokens x 20 (tokens with large loss). Every recipe
of `fp8sim.LINEAR_RECIPES` runs the layer's three GEMMs bit for bit as its stack does on
an H100/H200 (`fp8sim.linear`), and each output is compared with the float64 product of
the bfloat16 operands, normwise (||out - exact||_F / ||exact||_F), split into

* quantization: the float64 product of the dequantized FP8 operands against exact (what
  the casts lose: format, scaling granularity, power-of-two scales);
* accumulation: the recipe's output against that product (the MMA steps, promotion,
  epilogue and the bfloat16 output), also divided by ||exact||_F;

and the bfloat16 rounding of the exact product (||bf16(exact) - exact|| / ||exact||)
is drawn as the floor no recipe with a bfloat16 output can go below.

Findings (numbers in experiments/README.md): quantization dominates every FP8 output,
17-35x the accumulation part, which sits within 3 % of the bfloat16 output rounding
except where the forward GEMM never promotes (tensorwise, rowwise: fast accumulation,
1.78e-3 against a 1.65e-3 floor). 1x128 tiles (blockwise, deepseek-v3) confine outlier
channels and lose 2.9e-2 on y where per-row and per-tensor scales lose 3.8e-2;
tensorwise's E5M2 gradient costs 1.6x on grad_x and grad_w. Blockwise (cuBLASLt or
Triton) and deepseek-v3 agree to 3 digits. rowwise_with_gw_hp's bf16 grad_w has only
the rounding floor, and its grad_x (w cast per tensor) equals rowwise's to 6 digits.
Golden check: fp8sim.linear reproduces the H200's layer outputs under torchao's recipes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib
import ml_dtypes
import numpy as np
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import GOLDEN, results_path, study_cli, write_csv  # noqa: E402

import fp8sim  # noqa: E402
from fp8sim.analysis.stats import normwise_error  # noqa: E402
from fp8sim.recipes.layers import GEMMS, LINEAR_RECIPES  # noqa: E402

STUDY = "05_recipes_layer"
SUBSET = Path(__file__).resolve().parents[1] / "tests" / "data" / "stacks_layers.npz"
OUTPUT_NAMES = {"forward": "y", "grad_input": "grad_x", "grad_weight": "grad_w"}
CAPTURED = {"torchao-blockwise": "blockwise_cublas", "torchao-blockwise-triton":
            "blockwise_triton", "torchao-tensorwise": "tensorwise", "torchao-rowwise": "rowwise",
            "torchao-rowwise-gw-hp": "rowwise_with_gw_hp"}


def make_layer(m: int, k: int, n: int, seed: int = 0):
    """bfloat16 x (m, k), w (n, k), gy (m, n) shaped like a transformer layer's (see above)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k))
    x[:, rng.choice(k, 8, replace=False)] *= 30.0
    w = rng.standard_normal((n, k)) / np.sqrt(k)
    gy = rng.standard_normal((m, n)) * 1e-2
    gy[rng.random(m) < 1 / 16] *= 20.0
    bf = ml_dtypes.bfloat16  # through float32: ml_dtypes' float64 cast changed in 0.6
    return (x.astype(np.float32).astype(bf), w.astype(np.float32).astype(bf),
            gy.astype(np.float32).astype(bf))


def _operands(name: str, x, w, gy):
    """(A, B) of one GEMM as bfloat16 arrays, as `fp8sim.linear` forms them."""
    return {"forward": (x, np.ascontiguousarray(w.T)), "grad_input": (gy, w),
            "grad_weight": (np.ascontiguousarray(gy.T), x)}[name]


def _bf16_output(v: np.ndarray) -> np.ndarray:
    """The exact product as a bf16 output is written: rounded to float32, then to bfloat16."""
    return v.astype(np.float32).astype(ml_dtypes.bfloat16)


def _rel(approx: np.ndarray, ref: np.ndarray, exact: np.ndarray) -> float:
    """||approx - ref||_F / ||exact||_F (every part measured against the exact product's norm)."""
    return normwise_error(approx, ref, relative_to=exact)


def run(small: bool = False) -> list[dict]:
    """One row per (recipe, GEMM): the normwise error split."""
    m, k, n = (64, 256, 128) if small else (256, 1024, 512)
    x, w, gy = make_layer(m, k, n)
    rows = []
    for recipe, r in LINEAR_RECIPES.items():
        t0 = time.perf_counter()
        outs = fp8sim.linear(x, w, gy, recipe=recipe)
        seconds = time.perf_counter() - t0
        for name, out in zip(GEMMS, outs, strict=True):
            a, b = _operands(name, x, w, gy)
            exact = a.astype(np.float64) @ b.astype(np.float64)
            qa, qb = r.gemm(name).dequantized(a, b)
            quant_exact = qa @ qb
            gemm = r.gemm(name)
            rows.append({
                "recipe": recipe, "output": OUTPUT_NAMES[name], "m": m, "k": k, "n": n,
                "a_format": "bf16" if gemm.high_precision else gemm.a.fmt,
                "b_format": "bf16" if gemm.high_precision else gemm.b.fmt,
                "kernel": getattr(gemm.kernel, "name", gemm.kernel),
                "total_fro_rel": _rel(out, exact, exact),
                "quantization_fro_rel": _rel(quant_exact, exact, exact),
                "accumulation_fro_rel": _rel(out, quant_exact, exact),
                "bf16_floor_fro_rel": _rel(_bf16_output(exact), exact, exact),
                "seconds": seconds,
            })
    return rows


def golden_layer_check() -> int:
    """Replays the H200's layer outputs (full file, else the committed rows); returns the count."""
    full = GOLDEN / "thirdparty_public_a.npz"
    with np.load(full if full.exists() else SUBSET) as z:
        key = (lambda rec, out: f"layer/{rec}/{out}") if full.exists() else (
            lambda rec, out: f"layer_{rec}_{out}")
        inp = (lambda v: z[f"layer/{v}"]) if full.exists() else (lambda v: z[f"layer_{v}"])
        bf = ml_dtypes.bfloat16
        x, w, gy = (inp(v).view(bf) for v in ("x", "w", "gy"))
        count = 0
        for recipe, cap in CAPTURED.items():
            outs = fp8sim.linear(x, w, gy, recipe=recipe)
            for out, name in zip(outs, ("y", "gx", "gw"), strict=True):
                got = out.view(np.uint16)
                if not full.exists():
                    got = got[z[f"rows_{name}"]]
                want = z[key(cap, name)]
                assert np.array_equal(got, want), f"{recipe} {name}: differs from the H200"
                count += want.size
    where = "golden/thirdparty_public_a.npz" if full.exists() else "the committed rows"
    print(f"golden check OK: fp8sim.linear reproduces {count} layer outputs of torchao's "
          f"recipes on the H200 ({where}) bit for bit")
    return count


def summary(rows: list[dict]) -> str:
    """The error split per recipe and output, normwise."""
    r0 = rows[0]
    lines = [f"normwise relative error of one Linear layer, x {r0['m']}x{r0['k']} -> "
             f"{r0['n']} (bfloat16 floor: y {_floor(rows, 'y'):.2e}, grad_x "
             f"{_floor(rows, 'grad_x'):.2e}, grad_w {_floor(rows, 'grad_w'):.2e})",
             f"{'recipe':<26}{'output':<8}{'formats':<11}{'total':>10}{'quant':>10}{'accum':>10}"]
    for r in rows:
        lines.append(f"{r['recipe']:<26}{r['output']:<8}{r['a_format'] + 'x' + r['b_format']:<11}"
                     f"{r['total_fro_rel']:>10.2e}{r['quantization_fro_rel']:>10.2e}"
                     f"{r['accumulation_fro_rel']:>10.2e}")
    return "\n".join(lines)


def _floor(rows: list[dict], output: str) -> float:
    return next(r["bf16_floor_fro_rel"] for r in rows if r["output"] == output)


def plot(rows: list[dict]) -> Figure:
    """Three panels (y, grad_x, grad_w): bars of total / quantization / accumulation per recipe."""
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    fig = Figure(figsize=(13.5, 5.8), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    parts = ("total", "quantization", "accumulation")
    width = 0.8 / len(parts)
    xs = np.arange(len(recipes))
    lo, hi = 3e-4, 3e-1
    for ax, output in zip(axes, ("y", "grad_x", "grad_w"), strict=True):
        sel = {r["recipe"]: r for r in rows if r["output"] == output}
        for i, part in enumerate(parts):
            vals = [sel[rec][f"{part}_fro_rel"] for rec in recipes]
            xpos = xs + (i - 1) * width
            ax.bar(xpos, [max(v, lo) for v in vals], width, color=f"C{i}", label=part)
            for xp, v in zip(xpos, vals, strict=True):
                ax.text(xp, lo * 1.15 if v < lo else v * 1.08, "0" if v == 0 else f"{v:.1e}",
                        ha="center", va="bottom", fontsize=6.5, rotation=90)
        ax.axhline(_floor(rows, output), color="k", linestyle="--", linewidth=1,
                   label="bf16 rounding of exact")
        ax.set_xticks(xs, [rec.removeprefix("torchao-") for rec in recipes], rotation=30,
                      ha="right")
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        ax.set_title({"y": "y = x @ w.T (forward)", "grad_x": "grad_x = gy @ w",
                      "grad_w": "grad_w = gy.T @ x"}[output])
        ax.set_xlabel("recipe")
        ax.grid(True, which="major", axis="y", alpha=0.3)
    axes[0].set_ylabel("relative error (normwise, ||out - exact||_F / ||exact||_F)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="error part", fontsize=8, ncols=4,
               loc="outside lower center")
    r0 = rows[0]
    fig.suptitle(f"One Linear layer under each FP8 recipe: error against the float64 product "
                 f"(x {r0['m']}x{r0['k']} -> {r0['n']}, bfloat16 in and out)")
    return fig


def main(small: bool = False, out_dir: Path | None = None) -> list[dict]:
    """Runs the study, writes the CSV and PNG (not for small runs unless `out_dir`)."""
    t0 = time.perf_counter()
    rows = run(small)
    print(summary(rows))
    golden_layer_check()
    if not small or out_dir is not None:
        write_csv(rows, results_path(STUDY, ".csv", out_dir))
        with matplotlib.rc_context({"svg.hashsalt": STUDY}):
            plot(rows).savefig(results_path(STUDY, ".png", out_dir), dpi=120,
                               metadata={"Software": None})
    print(f"{STUDY}: {len(rows)} GEMM outputs in {time.perf_counter() - t0:.1f} s")
    return rows


if __name__ == "__main__":
    study_cli(main, __doc__)
