"""`fp8sim sweep`: the error against K (or the promotion interval) over a grid; CSV + PNG.

Each grid point is one `fp8sim.analysis.sweep.sweep_point` (the studies' measurement),
run here or as tasks on a Dask scheduler (--scheduler).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import sys
import time
from pathlib import Path

import click

from fp8sim.analysis.studies import DISTS, SCALES, stage_weights
from fp8sim.analysis.sweep import sweep as run_sweep
from fp8sim.analysis.sweep import sweep_grid, sweep_point
from fp8sim.cli.data import check_writable
from fp8sim.cli.errors import one_line, usage_errors
from fp8sim.cli.options import DIST_HELP, FORMATS, FRAC_BITS, SIZE, check_request
from fp8sim.cli.options import step as step_of
from fp8sim.engine import budget
from fp8sim.engine.mma import PRESETS

__all__ = ["sweep", "plot_sweep"]

_DEFAULT_K_VALUES = "128,256,512,1024,2048,4096,8192,16384,32768,65536"
_METRICS = {"max_rel_error": "max relative error", "mean_rel_error": "mean relative error",
            "median_rel_error": "median relative error",
            "fro_rel_error": "normwise error ||D - exact||_F / ||exact||_F"}


def _int_list(ctx, param, value: str) -> list[int]:
    """Parses a comma-separated list of positive integers."""
    try:
        values = [int(v) for v in value.replace(" ", "").split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not values or any(v < 1 for v in values):
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return values


@click.command(short_help="Error against K or promotion interval over a grid; CSV + PNG.")
@click.option("--k-values", default=_DEFAULT_K_VALUES, show_default=True,
              callback=_int_list, help="Comma-separated K values.")
@click.option("--m", type=SIZE, default=16, show_default=True, help="Rows of the output.")
@click.option("--n", type=SIZE, default=16, show_default=True, help="Columns of the output.")
@click.option("--promote", "promotes", type=int, multiple=True, default=(0, 128),
              show_default=True, help="Promotion interval (repeatable; 0 = never).")
@click.option("--dist", "dists", type=click.Choice(DISTS), multiple=True,
              default=("normal", "positive"), show_default=True,
              help="Data distribution (repeatable). " + DIST_HELP)
@click.option("--a-format", "a_formats", type=click.Choice(FORMATS, case_sensitive=False),
              multiple=True, default=("e4m3",), show_default=True,
              help="Format of A (repeatable: every A x B pair is swept).")
@click.option("--b-format", "b_formats", type=click.Choice(FORMATS, case_sensitive=False),
              multiple=True, default=("e4m3",), show_default=True,
              help="Format of B (repeatable).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed of every grid point (A is drawn before B).")
@click.option("--scale", type=click.Choice(SCALES), default="unit", show_default=True,
              help="Float data: encoded as drawn (unit) or after a per-tensor amax scale "
                   "onto the format's range (tensor).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="hopper",
              show_default=True, help="MMA step model.")
@FRAC_BITS
@click.option("--x", "x_axis", type=click.Choice(("auto", "k", "promote")), default="auto",
              show_default=True,
              help="The plot's x axis: K, or the promotion interval (auto: promotion when "
                   "one K and several intervals are swept).")
@click.option("--metric", type=click.Choice(_METRICS), default="fro_rel_error",
              show_default=True,
              help="Error statistic on the plot's y axis (the CSV has all): the normwise "
                   "||D - exact||_F / ||exact||_F, or the max, mean or median of the "
                   "elementwise relative error (the max on zero-mean data is set by the "
                   "output closest to zero).")
@click.option("--out", type=click.Path(dir_okay=False), default="sweep", show_default=True,
              help="Output prefix: writes OUT.csv and OUT.png (missing folders are created).")
@click.option("--engine", type=click.Choice(("cpu", "gpu")), default="cpu", show_default=True,
              help="Where each simulated GEMM runs: numba on the CPU cores, or CUDA kernels "
                   "on an NVIDIA GPU (fp8sim[gpu]); the same bits.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run the grid points as tasks on a Dask scheduler (tcp://host:8786, a "
                   "scheduler .json file, or local:N for N local worker processes); same "
                   "CSV and plot. Needs fp8sim[dask].")
def sweep(k_values, m, n, promotes, dists, a_formats, b_formats, seed, scale, preset,
          frac_bits, x_axis, metric, out, engine, scheduler):
    """Measures the error against K over a grid (K x promotion x data x formats).

    Writes OUT.csv (one row per grid point, every statistic) and OUT.png (the chosen
    --metric against K or the promotion interval, log-log), with a progress bar on
    stderr when the sweep takes more than 2 s. Errors are against the exact (float64)
    product of the decoded FP8 inputs: the accumulation error alone.
    """
    if not out.strip() or Path(out).name in ("", ".", ".."):
        raise click.BadParameter(f"expected a file prefix such as results/sweep, got {out!r}",
                                 param_hint="'--out'")
    prefix = Path(out)
    if prefix.suffix in (".csv", ".png"):
        prefix = prefix.with_suffix("")
    for p in promotes:
        if p < 0 or p % 32:
            raise click.BadParameter(f"expected 0 or a positive multiple of 32, got {p}",
                                     param_hint="'--promote'")
    step = step_of(preset, frac_bits)
    pairs = [(fa.lower(), fb.lower()) for fa in a_formats for fb in b_formats]
    grid = sweep_grid(k_values, m=m, n=n, promotes=promotes, dists=dists, formats=pairs,
                      scale=scale, seed=seed, preset=step, engine=engine)
    with usage_errors():
        check_request(m, n, max(k_values), None, "choose smaller --m, --n or --k-values")
    if engine == "gpu" and scheduler is None:  # (a cluster's workers may have GPUs)
        with usage_errors():
            from fp8sim.engine import _gpu

            _gpu.check()
    csv_path = prefix.parent / f"{prefix.name}.csv"
    png_path = prefix.parent / f"{prefix.name}.png"
    with usage_errors():  # before anything is computed
        for path in (csv_path, png_path):
            check_writable(path, "--out")
    weights = {_grid_label(point): sum(stage_weights(m, n, point.k, step).values())
               for point in grid}
    t0 = time.perf_counter()
    with usage_errors(), _dask_client(scheduler) as client, \
            budget.Progress("fp8sim sweep", weights):
        if client is None:
            rows = []
            for point in grid:
                with budget.stage(_grid_label(point)):
                    rows.append(sweep_point(point))
        else:  # each finished task closes its stage of the bar
            rows = run_sweep(grid, client=client, on_done=_stage_done)
    try:
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        if x_axis == "auto":
            x_axis = "promote" if len(set(k_values)) == 1 and len(set(promotes)) > 1 else "k"
        from fp8sim.analysis.plots import save_figure

        save_figure(plot_sweep(rows, metric, x_axis), png_path)
    except OSError as e:
        raise click.FileError(str(e.filename or prefix), hint=e.strerror) from None
    click.echo(f"wrote {csv_path} and {png_path} ({len(rows)} points, "
               f"{time.perf_counter() - t0:.1f} s)")


def _stage_done(point) -> None:
    """Marks a grid point done in the active progress bar (its stage, run elsewhere)."""
    with budget.stage(_grid_label(point)):
        pass


def _grid_label(point) -> str:
    """Progress-bar label of one grid point."""
    if point is None:
        return ""
    return f"{point.a_format}x{point.b_format} {point.dist} promote={point.promote} K={point.k}"


@contextlib.contextmanager
def _dask_client(scheduler: str | None):
    """None without --scheduler, else a Dask client (one usage-error line if Dask is missing)."""
    if scheduler is None:
        yield None
        return
    from fp8sim.analysis.distributed import connect, parse_scheduler

    kind = where = None
    with contextlib.ExitStack() as stack:
        try:
            kind, where = parse_scheduler(scheduler)
            if _at_terminal() and sys.modules.get("distributed", True) is not None and \
                    importlib.util.find_spec("distributed") is not None:  # else connect says
                # (at a terminal only: a failed run's stderr stays its one error line)
                click.echo(f"fp8sim sweep: {_connecting(kind, where)}", err=True)
            client = stack.enter_context(connect(scheduler))
        except (ImportError, ValueError, OSError, RuntimeError) as e:  # incl. timeouts
            text = one_line(str(e)) or type(e).__name__
            if kind in ("address", "file") and "scheduler" not in text.lower():
                text = f"cannot reach the Dask scheduler {where} ({text})"
            raise click.BadParameter(text, param_hint="'--scheduler'") from None
        yield client


def _at_terminal() -> bool:
    """Whether stderr is a terminal (where a status line before a long wait helps)."""
    return sys.stderr.isatty()


def _connecting(kind: str, where) -> str:
    """What --scheduler is about to do, said before the wait (a connection can take 30 s)."""
    if kind == "local":
        return f"starting {where} local Dask worker processes ..."
    try:
        import dask

        timeout = dask.config.get("distributed.comm.timeouts.connect")
    except (ImportError, KeyError):
        timeout = "30s"
    what = f"scheduler file {where}" if kind == "file" else f"Dask scheduler {where}"
    return (f"connecting to the {what} (gives up after {timeout}; "
            "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT changes it) ...")


def plot_sweep(rows: list[dict], metric: str = "fro_rel_error", x_axis: str = "k"):
    """`metric` against K (or the promotion interval), with fp8sim.analysis.plots."""
    from fp8sim.analysis.plots import error_vs_k, error_vs_promote

    r0 = rows[0]
    pairs = list(dict.fromkeys(r["formats"] for r in rows))
    against = "K" if x_axis == "k" else "promotion interval"
    title = (f"FP8 GEMM error vs {against}: {', '.join(pairs)}, {r0['m']} x {r0['n']} "
             f"outputs, preset {r0['preset']}")
    if x_axis == "promote":
        many = len(pairs) > 1
        rows = [r | {"case": f"K={r['k']}, {r['dist']}" + (f", {r['formats']}" if many else "")}
                for r in rows]
        return error_vs_promote(rows, metric=metric, series="case", title=title)
    series = ("promote", "dist") + (("formats",) if len(pairs) > 1 else ())
    return error_vs_k(rows, metric=metric, series=series, title=title)
