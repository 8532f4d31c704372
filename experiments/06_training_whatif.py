"""Study 06: does a small transformer train as well with simulated FP8 GEMMs as in bf16?

    python experiments/06_training_whatif.py [--tiny] [--out DIR] [--jobs N] [--budget-s S]

A GPT-style decoder (pre-norm, ~10.9M parameters at full size, 80 steps of 8,192 tokens;
`_whatif_model.py`) learns bytes of the CPython standard library's source with every
nn.Linear swapped for `fp8sim.Float8SimLinear` (forward, grad_input and grad_weight FP8
as the recipe runs them, bit for bit), against the bf16 reference (plain nn.Linear under
bf16 autocast, fp32 master weights, as every run). Runs: bf16, deepseek-v3,
torchao-tensorwise, torchao-rowwise, and what-if accumulators (torchao's tensorwise casts
with every GEMM on an accumulator of 10, 13, 16 or 23 fractional bits promoting never /
every 128 / every 512), several seeds.

Writes DIR/training_whatif.csv (default: experiments/results/06_training_whatif.csv), one
row per logged step, appended and flushed as it comes (a cut-off run loses nothing; a
rerun skips finished runs and redoes unfinished ones), a PNG (relative validation-loss
gap to bf16 of the same seed vs tokens, with the bf16 seed-to-seed band) and a markdown
verdict. The full study needs a CUDA GPU (the GPU engine, `engine="gpu"`); `--tiny` runs
a tiny model for a few steps on the CPU. Progress goes to stderr.
"""

from __future__ import annotations

import csv
import fcntl
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIELDS = ("run", "recipe", "accumulator", "promote", "seed", "step", "tokens", "train_loss",
          "val_loss", "device", "params")
OWN_TEST = "tests/test_training_whatif.py"
"""test_experiments.py leaves this study to its own test (it needs torch)."""


def paths(out_dir: Path | None, stem: str) -> dict[str, Path]:
    """CSV, PNG, verdict and timing paths of a study run."""
    d = Path(out_dir) if out_dir is not None else HERE / "results"
    d.mkdir(parents=True, exist_ok=True)
    return {ext: d / f"{stem}.{ext}" for ext in ("csv", "png", "md")} | {
        "timing": d / f"{stem}_timing.csv"}


def read_rows(path: Path) -> list[dict]:
    """The CSV's rows (empty when it does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append(path: Path, row: dict, fields=FIELDS) -> None:
    """Appends one row under an exclusive lock (several worker processes share the file)."""
    with open(path, "a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            if f.tell() == 0:
                csv.writer(f).writerow(fields)
            csv.writer(f).writerow([_fmt(row[k]) for k in fields])
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def finished_runs(path: Path, steps: int) -> set[str]:
    """Runs whose last step is in the CSV; rows of unfinished runs are dropped (redone)."""
    rows = read_rows(path)
    done = {r["run"] for r in rows if int(r["step"]) == steps}
    keep = [r for r in rows if r["run"] in done]
    if len(keep) != len(rows):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            w.writerows(keep)
    return done


STARTUP_S = 30.0
"""Seconds a run spends before its first step (process, model, data, kernel compilation)."""


def expected_seconds(timing: list[dict], config: str, steps: int, fresh: int = 0) -> float:
    """A run's expected wall time from the timing CSV's rows: its setting's slowest seconds
    per step, else the slowest of any setting; 0 when nothing is known. Rows from `fresh` on
    (this invocation's, run under today's sharing of the device) are asked first, the older
    ones after. Evaluations add about 10%."""
    def slowest(rows):
        per = {}
        for r in rows:
            v = float(r["seconds_per_step"])
            if v == v:  # not nan
                key = r["run"].rsplit("|", 1)[0]
                per[key] = max(per.get(key, 0.0), v)
        return per

    new, old = slowest(timing[fresh:]), slowest(timing[:fresh])
    step_s = (new.get(config) or old.get(config) or max(new.values(), default=0.0)
              or max(old.values(), default=0.0))
    return STARTUP_S + 1.1 * steps * step_s if step_s else 0.0


def _timing_path(csv_path: Path) -> Path:
    """The timing CSV beside a study's CSV (one row per run: finished, seconds per step)."""
    return Path(str(csv_path).removesuffix(".csv") + "_timing.csv")


def _work(args) -> tuple[str, bool, float]:
    """One run in a worker process: (run name, finished, seconds per step). A run that
    cannot finish before the deadline is not started (a cut run is redone from scratch)."""
    run, tiny, csv_path, deadline, slot, steps, before = args
    need_s = expected_seconds(read_rows(_timing_path(csv_path)), run.config, steps, before)
    left = deadline - time.time()
    if need_s > left:
        print(f"06_training_whatif: {run.name} not started: needs about {need_s:.3g} s, "
              f"{max(left, 0):.3g} s left", file=sys.stderr)
        return run.name, False, float("nan")
    import _whatif_model as wm
    import torch

    torch.set_num_threads(1 if not tiny else torch.get_num_threads())
    cfg = wm.TINY if tiny else wm.FULL
    device = "cpu" if tiny or not torch.cuda.is_available() else "cuda"
    data = _data(cfg)
    bar = _bar(run.name, cfg.steps, slot)
    try:
        done, per_step = wm.train(run, cfg, data, device, lambda r: append(csv_path, r),
                                  deadline, progress=lambda s: bar.update(1))
    except Exception:  # one broken run must not stop the others: report it, go on
        import traceback

        print(f"06_training_whatif: run {run.name} failed:\n{traceback.format_exc()}",
              file=sys.stderr)
        done, per_step = False, float("nan")
    finally:
        bar.close()
    append(_timing_path(csv_path),
           {"run": run.name, "finished": done, "seconds_per_step": per_step},
           fields=("run", "finished", "seconds_per_step"))
    return run.name, done, per_step


_DATA: dict = {}


def _data(cfg):
    """The corpus split, read once per process."""
    import _whatif_model as wm

    if cfg not in _DATA:
        train, val, _files = wm.corpus(cfg.corpus_bytes)
        _DATA[cfg] = (train, val)
    return _DATA[cfg]


def _bar(name: str, total: int, slot: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=name, position=slot, file=sys.stderr, leave=False,
                mininterval=2.0, disable=None)


def run_study(tiny: bool, out_dir: Path | None, stem: str, jobs: int = 1,
              budget_s: float = 1e9, seeds: int = 2, bf16_seeds: int = 3,
              only: str | None = None) -> list[dict]:
    """Trains every run not yet in the CSV, then draws the plot and writes the verdict."""
    sys.path.insert(0, str(HERE))
    import _whatif_model as wm

    p = paths(out_dir, stem)
    cfg = wm.TINY if tiny else wm.FULL
    deadline = time.time() + budget_s
    done = finished_runs(p["csv"], cfg.steps)
    runs = [r for r in wm.grid(tiny, seeds, bf16_seeds)
            if r.name not in done and (only is None or only in r.name)]
    print(f"06_training_whatif: {len(done)} runs already done, {len(runs)} to run "
          f"({'tiny, cpu' if tiny else 'full'}; jobs {jobs})", file=sys.stderr)
    before = len(read_rows(p["timing"]))  # timing rows from earlier invocations
    tasks = [(r, tiny, p["csv"], deadline, i % max(jobs, 1), cfg.steps, before)
             for i, r in enumerate(runs)]
    results = []
    if jobs <= 1:
        for t in tasks:
            results.append(_said(_work(t), len(results) + 1, len(tasks)))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            for res in pool.imap_unordered(_work, tasks):
                results.append(_said(res, len(results) + 1, len(tasks)))
    cut = [name for name, ok, _ in results if not ok]
    if cut:
        print(f"06_training_whatif: budget spent; {len(cut)} runs unfinished (rerun to resume)",
              file=sys.stderr)
    from _whatif_report import report

    rows = read_rows(p["csv"])
    report(rows, read_rows(p["timing"]), p["png"], p["md"], tiny=tiny)
    return rows


def _said(result: tuple[str, bool, float], i: int, n: int) -> tuple[str, bool, float]:
    """One stderr line per run as it ends (the step bars vanish where stderr is a log)."""
    name, ok, per_step = result
    state = f"done, {per_step:.3g} s/step" if ok else "stopped (budget or error)"
    print(f"06_training_whatif: [{i}/{n}] {name}: {state}", file=sys.stderr, flush=True)
    return result


def step_bench(tiny: bool, steps: int) -> dict[str, float]:
    """Seconds per training step (mean after the first) of one run of each kind, alone on
    the device; printed, one line each."""
    import dataclasses

    import torch

    sys.path.insert(0, str(HERE))
    import _whatif_model as wm

    cfg = dataclasses.replace(wm.TINY if tiny else wm.FULL, steps=steps + 1, log_every=10**9)
    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    data = _data(cfg)
    picks = [r for r in wm.grid(tiny, 1, 2) if r.seed == 0 and (
        r.recipe != "whatif" or r.promote in ("0/0/0",) and r.accumulator in (
            "frac13", "frac23", "frac10"))]
    out = {}
    for run in picks:
        _, per_step = wm.train(run, cfg, data, device, lambda r: None, float("inf"))
        out[run.config] = per_step
        ref = out.get("bf16|bf16|-")
        print(f"step time {run.config}: {per_step * 1e3:.1f} ms"
              + (f" ({per_step / ref:.2f}x bf16)" if ref else ""), flush=True)
    return out


def main(small: bool = False, out_dir: Path | None = None) -> list[dict]:
    """run_all / test entry: small = the tiny CPU run; full size needs a CUDA GPU, and
    without one this re-draws the plot and verdict from the committed CSV."""
    import torch

    if small or torch.cuda.is_available():
        return run_study(small, out_dir, "06_training_whatif")
    sys.path.insert(0, str(HERE))
    from _whatif_report import report

    p = paths(out_dir, "06_training_whatif")
    rows = read_rows(p["csv"])
    if rows:
        print("06_training_whatif: no GPU; re-drawing the plot and verdict from the CSV")
        report(rows, read_rows(p["timing"]), p["png"], p["md"], tiny=False)
    return rows


def cli(argv: list[str] | None = None) -> int:
    """Parses the command line; exit 2 with one line on stderr for bad arguments."""
    sys.path.insert(0, str(HERE))
    from _cli import OneLineParser, out_dir

    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny model, a few steps, on the CPU")
    ap.add_argument("--out", type=out_dir, default=None,
                    help="folder for training_whatif.{csv,png,md} (default experiments/results,"
                         " files 06_training_whatif.*)")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    ap.add_argument("--budget-s", type=float, default=1e9,
                    help="stop starting steps after this many seconds (resume later)")
    ap.add_argument("--seeds", type=int, default=None,
                    help="seeds of each FP8 setting (default 2; --tiny: a fixed grid)")
    ap.add_argument("--bf16-seeds", type=int, default=None,
                    help="seeds of the bf16 reference (default 3; --tiny: a fixed grid)")
    ap.add_argument("--only", default=None, help="only runs whose name contains this")
    ap.add_argument("--step-bench", type=int, default=0, metavar="N",
                    help="only time N training steps of each recipe, one run at a time")
    ap.add_argument("--report-only", action="store_true",
                    help="only re-draw the plot and verdict from the CSV")
    args = ap.parse_args(argv)
    if args.tiny and (args.seeds is not None or args.bf16_seeds is not None):
        ap.error("--seeds/--bf16-seeds: --tiny runs a fixed grid (2 bf16 seeds, one seed of "
                 "deepseek-v3 and of a 10-bit what-if); leave them out")
    args.seeds = 2 if args.seeds is None else args.seeds
    args.bf16_seeds = 3 if args.bf16_seeds is None else args.bf16_seeds
    if args.jobs < 1 or args.seeds < 1 or args.bf16_seeds < 2:
        ap.error("--jobs and --seeds must be >= 1, --bf16-seeds >= 2 (the noise band)")
    if not args.budget_s > 0:
        ap.error(f"--budget-s: expected seconds > 0, got {args.budget_s}")
    if args.step_bench < 0:
        ap.error(f"--step-bench: expected a number of steps >= 1, got {args.step_bench}")
    stem = "training_whatif" if args.out is not None else "06_training_whatif"
    if args.report_only:
        sys.path.insert(0, str(HERE))
        from _whatif_report import report

        p = paths(args.out, stem)
        if not p["csv"].exists():
            ap.error(f"--report-only: no results to report in {str(p['csv'])!r}")
        report(read_rows(p["csv"]), read_rows(p["timing"]), p["png"], p["md"], tiny=args.tiny)
        return 0
    try:
        import torch
    except ImportError:
        print("06_training_whatif: needs torch (pip install 'fp8sim[torch]')", file=sys.stderr)
        return 2
    if args.only is not None:
        sys.path.insert(0, str(HERE))
        import _whatif_model as wm

        names = [r.name for r in wm.grid(args.tiny, args.seeds, args.bf16_seeds)]
        if not any(args.only in n for n in names):
            ap.error(f"--only: no run's name contains {args.only!r} (names look like "
                     f"{names[-1]!r})")
    if not args.tiny and not torch.cuda.is_available():
        print("06_training_whatif: the full study needs a CUDA GPU (try --tiny)",
              file=sys.stderr)
        return 2
    if args.step_bench:
        step_bench(args.tiny, args.step_bench)
        return 0
    run_study(args.tiny, args.out, stem, args.jobs, args.budget_s, args.seeds,
              args.bf16_seeds, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
