"""Study 4: E4M3 vs E5M2 inputs, and what-if accumulators with 13 (H100), 16, 20, 23 bits.

    python3 experiments/04_formats_accumulators.py         # results/04_formats_accumulators*
    python3 experiments/04_formats_accumulators.py --small   # smoke run

Part A (formats): a 128 x 4096 x 256 FP8 matmul of N(0,1) activations and N(0,1/K)
weights through the deepseek-v3 recipe (1x128 / 128x128 scales, promotion every 128)
with each operand in E4M3 or E5M2, split into quantization and accumulation error.
E5M2 has one mantissa bit fewer: E5M2 for one operand raises the normwise error from
3.7 % to 5.7 %, for both to 7.3 % (2x), all of it quantization; the accumulation error
(~1e-4) barely depends on the format (the MMA aligns products to the same 13-bit window
whatever their format). Hence E4M3 for forward tensors; E5M2's range is
for gradients, which DeepSeek-V3 also keeps in E4M3 thanks to fine-grained scales.

Part B (accumulators): `fp8sim.gemm(..., preset=fp8sim.engine.mma.HOPPER.replace(frac_bits=N))`
for N = 13 (the H100, verified), 16, 20, 23, K = 1024 .. 65536 without promotion and with
promotion every 128 (M = N = 64). Each extra fractional bit cuts the error by 2x-3x
(more than the 2x of a pure truncation step, as wider windows also stop truncating the
products themselves): on |N(0,1)| data at K = 4096 without promotion 13 bits give 7.0e-2,
16 bits 6.5e-3, 20 bits 8.6e-5, 23 bits 1.6e-6. The H100's 13 bits promoted every 128
(6.2e-4) sit between a 16- and a 20-bit accumulator without promotion, and, unlike any
of them, stay flat as K grows (K = 65536: 6.2e-4 vs 20 bits unpromoted 6.5e-3). With 20
or 23 bits and promotion, the FP32 accumulator's own rounding (~1e-7, growing with K) is
what is left. For reference the named presets "blackwell" (25 bits as MMA-Sim publishes
it, unverified) and "ideal" (one FP32 FMA per product) are run without promotion.
E5M2 x E4M3 outputs lose slightly less in accumulation (6.7e-2 vs 7.0e-2 on the H100
captures): the coarser E5M2 products have fewer bits to truncate.
Golden checks: the H100's E5M2 x E4M3 Triton output (64 x 64 x 4096, positive, no
promotion) and the E4M3 one are reproduced bit for bit by the 13-bit preset.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import golden_check, results_path, stats, study_cli, write_csv  # noqa: E402

import fp8sim  # noqa: E402
from fp8sim.analysis.matmul import fp8_matmul  # noqa: E402
from fp8sim.analysis.plots import error_vs_k, save_figure, scaling_comparison  # noqa: E402
from fp8sim.analysis.stats import exact_product  # noqa: E402
from fp8sim.analysis.studies import random_case  # noqa: E402
from fp8sim.engine.mma import HOPPER, PRESETS  # noqa: E402

STUDY = "04_formats_accumulators"
FORMATS = (("e4m3", "e4m3"), ("e5m2", "e4m3"), ("e4m3", "e5m2"), ("e5m2", "e5m2"))
FRAC_BITS = (13, 16, 20, 23)
KS = tuple(2 ** i for i in range(10, 17))
EXTRA = (("Blackwell model (25 bits, unverified)", "blackwell"),
         ("ideal: one FP32 FMA per product", "ideal"))  # named presets, never promoted


def run_formats(small: bool) -> list[dict]:
    """Part A: error split of the deepseek-v3 recipe with E4M3 / E5M2 operands."""
    m, k, n = (16, 256, 128) if small else (128, 4096, 256)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    rows = []
    for xf, wf in FORMATS:
        r = fp8_matmul(x, w, "deepseek-v3", x_format=xf, w_format=wf)
        row = {"part": "formats", "formats": f"x {xf}, w {wf}", "m": m, "k": k, "n": n}
        for part in ("total", "quantization", "accumulation"):
            for stat in ("fro_rel", "median_rel"):
                row[f"{part}_{stat}"] = getattr(r, part)[f"{stat}_error"]
        rows.append(row)
    return rows


def run_accumulators(small: bool) -> list[dict]:
    """Part B: error vs K of gemm with 13..23 fractional accumulator bits."""
    ks, mn = ((256, 1024), 16) if small else (KS, 64)
    rows = []
    for dist in ("positive", "normal"):
        for k in ks:
            a, b = random_case(mn, mn, k, dist=dist, seed=4)
            exact = exact_product(fp8sim.decode(a, "e4m3"), fp8sim.decode(b, "e4m3"))
            runs = [(f"{bits} bits" + (" (H100)" if bits == 13 else ""), bits,
                     HOPPER.replace(frac_bits=bits), p) for bits in FRAC_BITS for p in (0, 128)]
            runs += [(label, PRESETS[name].frac_bits, name, 0) for label, name in EXTRA]
            for label, bits, preset, p in runs:
                out = fp8sim.gemm(a, b, promote=p, preset=preset)
                s = stats(out, exact)
                rows.append({"part": "accumulator", "dist": dist, "accumulator": label,
                             "frac_bits": bits, "promote": p, "m": mn, "n": mn, "k": k,
                             "max_rel_error": s["max_rel_error"],
                             "mean_rel_error": s["mean_rel_error"],
                             "fro_rel_error": s["fro_rel_error"]})
    return rows


def summary(fmt_rows: list[dict], acc_rows: list[dict]) -> str:
    """Format split table and the accumulator-width table at the largest K <= 4096."""
    lines = [f"A. deepseek-v3 recipe, {fmt_rows[0]['m']}x{fmt_rows[0]['k']}x{fmt_rows[0]['n']}, "
             "normwise relative error: total / quantization / accumulation"]
    for r in fmt_rows:
        lines.append(f"  {r['formats']:<16} {r['total_fro_rel']:9.3e} / "
                     f"{r['quantization_fro_rel']:9.3e} / {r['accumulation_fro_rel']:9.3e}")
    k_show = max(r["k"] for r in acc_rows if r["k"] <= 4096)
    k_max = max(r["k"] for r in acc_rows)
    for k in (k_show, k_max):
        lines.append(f"B. K = {k}, M = N = {acc_rows[0]['m']}: normwise error by accumulator "
                     "fractional bits (never promoted / promoted every 128)")
        for dist in ("positive", "normal"):
            cells = []
            for bits in FRAC_BITS:
                e = {r["promote"]: r["fro_rel_error"] for r in acc_rows if r["k"] == k
                     and r["dist"] == dist and r["accumulator"].startswith(f"{bits} bits")}
                cells.append(f"{bits}: {e[0]:.2e} / {e[128]:.2e}")
            lines.append(f"  {dist:<9}" + "   ".join(cells))
            for label, _ in EXTRA:
                e = next(r["fro_rel_error"] for r in acc_rows if r["k"] == k
                         and r["dist"] == dist and r["accumulator"] == label)
                lines.append(f"  {dist:<9}{label}: {e:.2e}")
    return "\n".join(lines)


def main(small: bool = False, out_dir: Path | None = None) -> list[dict]:
    """Runs both parts, writes the CSV and the two PNGs, prints the summary."""
    t0 = time.perf_counter()
    fmt_rows = run_formats(small)
    acc_rows = run_accumulators(small)
    golden_check("gemm_public1.npz", "e5m2_e4m3/positive/K4096", "triton_p0")
    if not small:
        golden_check("gemm_public0.npz", "e4m3_e4m3/positive/K4096", "triton_p0",
                     preset=HOPPER.replace(frac_bits=13))
    print(summary(fmt_rows, acc_rows))
    if not small or out_dir is not None:
        keys = list(dict.fromkeys(k for r in fmt_rows + acc_rows for k in r))
        write_csv([{k: r.get(k, "") for k in keys} for r in fmt_rows + acc_rows],
                  results_path(STUDY, ".csv", out_dir))
        fig = error_vs_k([r for r in acc_rows if r["dist"] == "positive"],
                         metric="fro_rel_error", series=("promote", "accumulator"),
                         title="What-if accumulators: normwise error vs K\n|N(0,1)| data, "
                               f"M = N = {acc_rows[0]['m']}; solid: never promoted, "
                               "dashed: promoted every 128")
        save_figure(fig, results_path(STUDY, ".png", out_dir))
        m, k, n = fmt_rows[0]["m"], fmt_rows[0]["k"], fmt_rows[0]["n"]
        fig = scaling_comparison(fmt_rows, label="formats", metric="fro_rel",
                                 title=f"E4M3 vs E5M2 operands, deepseek-v3 recipe "
                                       f"({m}x{k}x{n}, N(0,1) data)")
        save_figure(fig, results_path(STUDY + "_formats", ".png", out_dir))
    print(f"{STUDY}: {len(fmt_rows)} matmuls + {len(acc_rows)} GEMMs in "
          f"{time.perf_counter() - t0:.1f} s")
    return fmt_rows + acc_rows


if __name__ == "__main__":
    study_cli(main, __doc__)
