"""Plot and markdown verdict of the training what-if study (06_training_whatif.py); not a study.

The gap of a run is its validation loss relative to the bf16 run of the same seed (same
initial weights and batches): (loss - loss_bf16) / loss_bf16. The noise floor is the bf16
seed-to-seed spread: each bf16 seed's loss relative to the mean of the bf16 seeds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

DEEPSEEK_BAND = 0.0025
"""DeepSeek-V3's reported FP8-vs-BF16 loss gap bound: 0.25%."""
DIVERGED = 0.05
"""A final gap above 5% (or a non-finite loss) counts as diverged."""


def _curves(rows: list[dict]) -> dict[str, dict[int, dict[int, float]]]:
    """config -> seed -> tokens -> val_loss."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        config = r["run"].rsplit("|", 1)[0]
        out[config][int(r["seed"])][int(r["tokens"])] = float(r["val_loss"])
    return out


def gaps(rows: list[dict]):
    """(bf16 band by tokens: (lo, hi), per config: tokens -> list of paired gaps)."""
    curves = _curves(rows)
    ref = curves.get("bf16|bf16|-", {})
    band = {}
    for t in sorted({t for s in ref.values() for t in s}):
        vals = [ref[s][t] for s in ref if t in ref[s]]
        if len(vals) >= 2:
            mean = sum(vals) / len(vals)
            dev = [(v - mean) / mean for v in vals]
            band[t] = (min(dev), max(dev))
    per = {}
    for config, seeds in curves.items():
        if config == "bf16|bf16|-":
            continue
        g = defaultdict(list)
        for s, pts in seeds.items():
            for t, v in pts.items():
                if s in ref and t in ref[s]:
                    g[t].append((v - ref[s][t]) / ref[s][t] if math.isfinite(v) else math.inf)
        per[config] = dict(sorted(g.items()))
    return band, per


def perturbation_spread(rows: list[dict], accumulator: str = "frac23") -> float | None:
    """The largest relative spread, over seeds, of the final losses of the runs that differ
    only in where float32 partial sums are added (one `accumulator`, every promotion
    interval): how far the training's chaos alone moves the loss; None with < 2 such runs."""
    curves = _curves(rows)
    last_t = max(int(r["tokens"]) for r in rows)
    by_seed = defaultdict(list)
    for config, seeds in curves.items():
        if config.split("|")[:2] == ["whatif", accumulator]:
            for s, pts in seeds.items():
                if last_t in pts and math.isfinite(pts[last_t]):
                    by_seed[s].append(pts[last_t])
    spreads = [(max(v) - min(v)) / _mean(v) for v in by_seed.values() if len(v) >= 2]
    return max(spreads) if spreads else None


def report(rows: list[dict], timing: list[dict], png: Path, md: Path, *, tiny: bool) -> None:
    """Draws the PNG and writes the markdown verdict."""
    if not rows:
        return
    band, per = gaps(rows)
    device = rows[0]["device"]
    params = int(rows[0]["params"])
    _plot(band, per, png, device, params, tiny)
    md.write_text(_verdict(rows, band, per, timing, device, params, tiny, png.name))


def _plot(band, per, png: Path, device: str, params: int, tiny: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    named = {c: g for c, g in per.items() if not c.startswith("whatif")}
    whatif = {c: g for c, g in per.items() if c.startswith("whatif")}
    panels = [("named recipes", named)] + ([("what-if accumulators (tensorwise casts)",
                                              whatif)] if whatif else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 6.2), squeeze=False)
    for ax, (title, group) in zip(axes[0], panels, strict=True):
        if band:
            ts = sorted(band)
            ax.fill_between([t / 1e6 for t in ts], [100 * band[t][0] for t in ts],
                            [100 * band[t][1] for t in ts], color="0.8",
                            label="bf16 seed-to-seed spread")
        for sign in (-1, 1):
            ax.axhline(100 * sign * DEEPSEEK_BAND, color="k", ls=":", lw=1,
                       label="DeepSeek-V3's 0.25%" if sign > 0 else None)
        for i, (config, g) in enumerate(sorted(group.items(), key=lambda kv: _order(kv[0]))):
            ts = [t for t in g if all(math.isfinite(v) for v in g[t])]
            mean = [100 * sum(g[t]) / len(g[t]) for t in ts]
            ax.plot([t / 1e6 for t in ts], mean, marker=".", label=_label(config),
                    **_style(config, i))
        ax.set_xlabel("training tokens (millions)")
        ax.set_ylabel("validation loss gap to bf16, same seed (%, mean of seeds)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        # below the axes: inside, the legend hid the first points of the what-if curves
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                  frameon=False)
    fig.suptitle(f"Simulated FP8 training vs bf16: {params / 1e6:.2f}M-parameter GPT on "
                 f"CPython stdlib bytes ({'tiny CPU run' if tiny else device})")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


_BITS_COLOUR = {"frac10": "C0", "frac13": "C1", "frac16": "C2", "frac23": "C3"}
_PROMOTE_LINE = {"0": "-", "128": "--", "512": ":"}


def _order(config: str) -> tuple:
    """What-ifs by bits, then promotion (never first); named recipes by name."""
    recipe, acc, promote = config.split("|")
    p = promote.split("/")[0]
    return (recipe, int(acc[4:]) if acc.startswith("frac") else 0,
            int(p) if p.isdigit() else 0)


def _style(config: str, i: int) -> dict:
    """What-ifs: one colour per accumulator width, one line style per promotion interval
    (12 lines stay apart); named recipes: the colour cycle."""
    recipe, acc, promote = config.split("|")
    if recipe != "whatif" or acc not in _BITS_COLOUR:
        return {"color": f"C{i % 10}"}
    return {"color": _BITS_COLOUR[acc], "ls": _PROMOTE_LINE.get(promote.split("/")[0], "-.")}


def _label(config: str) -> str:
    recipe, acc, promote = config.split("|")
    if recipe == "whatif":
        p = promote.split("/")[0]
        return f"{acc[4:]} bits, promote {'never' if p == '0' else p}"
    return recipe


def _verdict(rows, band, per, timing, device, params, tiny, png_name) -> str:
    last_t = max(int(r["tokens"]) for r in rows)
    noise = max((max(abs(lo), abs(hi)) for lo, hi in [band.get(last_t, (0.0, 0.0))]),
                default=0.0)
    bf16_final = [float(r["val_loss"]) for r in rows
                  if r["recipe"] == "bf16" and int(r["tokens"]) == last_t]
    per_step = _step_times(timing)
    lines = [f"# Training what-if: FP8 recipes and accumulators vs bf16 ({device})", "",
             f"{'Tiny CPU smoke run' if tiny else 'Full study'}: {params:,}-parameter GPT "
             f"(byte tokens of the CPython stdlib source), {last_t:,} training tokens per "
             f"run, every nn.Linear a bit-exact simulated FP8 layer; bf16 reference: plain "
             f"nn.Linear under bf16 autocast (fp32 master weights), "
             f"{len(bf16_final)} seeds, final validation loss "
             f"{_mean(bf16_final):.4f}; its seed-to-seed spread (noise floor) is "
             f"+-{100 * noise:.3f}% at the end.", "",
             "Gap = (val loss - bf16 val loss of the same seed) / bf16 val loss, at the last "
             "step; mean over seeds (min..max). Plot: " + png_name + ".", "",
             "| setting | seeds | final gap | min..max | within 0.25% | within noise | "
             f"s/step, {'CPU' if tiny else 'shared GPU'} | x bf16 |",
             "|---|---|---|---|---|---|---|---|"]
    ref_step = per_step.get("bf16|bf16|-")
    verdicts = {"within": [], "outside": [], "diverged": [], "unfinished": []}
    for config, g in sorted(per.items(), key=lambda kv: _final(kv[1])):
        final = g.get(last_t)
        if not final:
            verdicts["unfinished"].append(f"{_label(config)} (cut at {max(g):,} tokens)")
            continue
        mean = sum(final) / len(final)
        kind = "diverged" if not math.isfinite(mean) or mean > DIVERGED else \
            "within" if abs(mean) <= DEEPSEEK_BAND else "outside"
        verdicts[kind].append(f"{_label(config)} ({100 * mean:+.3f}%)")
        st = per_step.get(config)
        lines.append(
            f"| {_label(config)} | {len(final)} | {100 * mean:+.3f}% | "
            f"{100 * min(final):+.3f}..{100 * max(final):+.3f}% | "
            f"{'yes' if abs(mean) <= DEEPSEEK_BAND else 'no'} | "
            f"{'yes' if abs(mean) <= noise else 'no'} | "
            f"{_num(st)} | {_num(st / ref_step if st and ref_step else None)} |")
    shared = "on the CPU" if tiny else "with several runs sharing the card"
    lines += ["", f"bf16 step: {_num(ref_step)} s. s/step is wall time per step {shared} "
              "(a throughput figure; `--step-bench` times each alone).",
              "",
              "**Verdict.** Within DeepSeek-V3's 0.25% of bf16: "
              + (", ".join(verdicts["within"]) or "none") + ". Outside 0.25% but not "
              "diverged: " + (", ".join(verdicts["outside"]) or "none") + ". Diverged (gap > "
              f"{100 * DIVERGED:.0f}% or non-finite): "
              + (", ".join(verdicts["diverged"]) or "none") + "."]
    if noise > DEEPSEEK_BAND:
        lines += ["", f"At this run length the bf16 seeds alone differ by up to "
                  f"+-{100 * noise:.2f}%, more than the 0.25% band: a gap inside the noise "
                  "neither passes nor fails it; longer runs or more seeds resolve it."]
    chaos = perturbation_spread(rows)
    if chaos is not None:
        lines += ["", "The 23-bit runs differ only in float32-level rounding (where partial "
                  f"sums are promoted: never / 128 / 512), yet the final losses of one seed "
                  f"lie up to {100 * chaos:.2f}% apart: at this length the training's chaos "
                  "moves the loss more than the bf16 seed spread shows, and gaps smaller "
                  "than that cannot be told apart from it."]
    if verdicts["unfinished"]:
        lines += ["", "Unfinished (the device budget ran out; not judged): "
                  + ", ".join(verdicts["unfinished"]) + "."]
    ran = {r["run"] for r in rows}
    no_rows = sorted({t["run"] for t in timing if t["run"] not in ran})
    if no_rows:
        lines += ["", "No rows (the budget ran out before they started, or they failed: "
                  "see the run's stderr): "
                  + ", ".join(no_rows) + "."]
    if tiny:
        lines += ["", "(A tiny smoke run: a few steps, far too short for these gaps to mean "
                  "anything about FP8 training.)"]
    return "\n".join(lines) + "\n"


def _final(g: dict) -> float:
    if not g:
        return math.inf
    v = g[max(g)]
    m = sum(v) / len(v)
    return m if math.isfinite(m) else math.inf


def _step_times(timing: list[dict]) -> dict[str, float]:
    """config -> mean seconds per step of its finished runs (latest entry per run)."""
    latest = {}
    for t in timing:
        if t["finished"] == "True":
            latest[t["run"]] = float(t["seconds_per_step"])
    per = defaultdict(list)
    for run, s in latest.items():
        if math.isfinite(s):
            per[run.rsplit("|", 1)[0]].append(s)
    return {c: sum(v) / len(v) for c, v in per.items()}


def _mean(v) -> float:
    return sum(v) / len(v) if v else float("nan")


def _num(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3g}"
