"""The `fp8sim` command line: simulate random FP8 GEMMs, sweep K, inspect FP8 codes.

Argument errors exit with status 2 and one line on stderr ("Error: ..."), never a
traceback: click's usage errors are printed on one line, and ValueError/TypeError
raised by fp8sim for bad arguments inside a command become usage errors.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np

from fp8sim import __version__
from fp8sim.analysis.studies import DISTS, SCALES, gemm_stats, random_case, random_codes
from fp8sim.analysis.sweep import sweep as run_sweep
from fp8sim.analysis.sweep import sweep_grid
from fp8sim.engine.mma import PRESETS
from fp8sim.formats.convert import decode, encode
from fp8sim.formats.info import decode_table, format_info
from fp8sim.formats.rounding import RoundMode

__all__ = ["main"]

_FORMATS = ("e4m3", "e5m2")
_INSPECT_FORMATS = ("e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz")
_DEFAULT_K_VALUES = "128,256,512,1024,2048,4096,8192,16384,32768,65536"
_METRICS = {"max_rel_error": "max relative error", "mean_rel_error": "mean relative error",
            "median_rel_error": "median relative error",
            "fro_rel_error": "normwise error ||D - exact||_F / ||exact||_F"}


def _one_line(message: str) -> str:
    """Joins a (possibly multi-line) message into one line."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip())


class _Group(click.Group):
    """A click group whose errors print as one stderr line (exit 2 for usage errors)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        """Runs the CLI; in standalone mode prints click errors as one line and exits."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:
            hint = ""
            ctx = getattr(e, "ctx", None)
            if isinstance(e, click.UsageError) and ctx is not None:
                hint = f" (try '{ctx.command_path} --help')"
            click.echo(f"Error: {_one_line(e.format_message())}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """Turns fp8sim's ValueError/TypeError (bad arguments) into a one-line usage error."""
    try:
        yield
    except (ValueError, TypeError) as e:
        raise click.UsageError(_one_line(str(e))) from None
    except MemoryError:
        raise click.ClickException("out of memory: choose smaller --m, --n or --k") from None


def _json_value(v):
    """A JSON-safe value: non-finite floats become null (JSON has no NaN or Infinity)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fp8sim")
def main() -> None:
    """fp8sim: bit-exact CPU simulation of FP8 GEMMs on NVIDIA Hopper Tensor Cores."""


# --------------------------------------------------------------------------- gemm

_size = click.IntRange(min=1)


def _case_options(f):
    """The options that select a random GEMM case (shared by gemm and sweep)."""
    f = click.option("--scale", type=click.Choice(SCALES), default="unit", show_default=True,
                     help="Float data: encode it as drawn (unit), or after a per-tensor "
                          "scale that maps each matrix's amax onto the format's largest "
                          "finite value (tensor).")(f)
    f = click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Random seed (A is drawn before B).")(f)
    f = click.option("--b-format", type=click.Choice(_FORMATS, case_sensitive=False),
                     default=None, help="Format of B (K, N). [default: e4m3]")(f)
    f = click.option("--a-format", type=click.Choice(_FORMATS, case_sensitive=False),
                     default=None, help="Format of A (M, K). [default: e4m3]")(f)
    return f


_FRAC_BITS = click.option(
    "--frac-bits", type=click.IntRange(min=0), default=None, metavar="N",
    help="What-if accumulator: the preset's MMA step with N fractional bits instead "
         "(fp8sim.engine.mma.HOPPER.replace(frac_bits=N); fused presets hopper, ada, blackwell; "
         "the H100 has 13).")


def _step(preset: str, frac_bits: int | None):
    """The MMA step to simulate: a preset name, or that preset with other fractional bits."""
    if frac_bits is None:
        return preset
    if preset in _REFERENCE_PRESETS:
        raise click.UsageError(f"--frac-bits: preset {preset} is a software reference; "
                               "use hopper, ada or blackwell")
    return PRESETS[preset].replace(frac_bits=frac_bits)


def _step_name(step) -> str:
    """Name of a preset or MMAStep, for output rows."""
    return step if isinstance(step, str) else step.name


_DIST_HELP = ("Data: normal N(0,1), positive |N(0,1)| or uniform U(-1,1) drawn in float32 and "
              "encoded round-to-nearest, saturating (at unit scale by default, like the H100 "
              "captures' 'normal'/'positive' data; see --scale), or codes: every finite FP8 "
              "code equally likely.")


@main.command(short_help="Simulates a random FP8 GEMM; error against the exact product.")
@click.option("--m", type=_size, default=256, show_default=True, help="Rows of A and the output.")
@click.option("--n", type=_size, default=256, show_default=True,
              help="Columns of B and the output.")
@click.option("--k", type=_size, default=4096, show_default=True, help="Inner dimension.")
@click.option("--dist", type=click.Choice(DISTS), default="positive", show_default=True,
              help=_DIST_HELP + " The default, positive, keeps every output away from zero; "
              "on signed data the max relative error comes from outputs that cancel to "
              "near zero (see the normwise error).")
@_case_options
@click.option("--promote", type=int, default=None,
              help="Promote the Tensor Core partial sum into FP32 every N elements of K "
                   "(a multiple of 32; 0 = never). [default: 0, or the recipe's]")
@click.option("--preset", default=None, metavar="NAME",
              help=f"MMA step model: {', '.join(PRESETS)}. [default: hopper]")
@_FRAC_BITS
@click.option("--recipe", default=None, metavar="NAME",
              help="Quantize float data with a training recipe (fp8sim.recipes.pipeline.RECIPES, "
                   "e.g. deepseek-v3) instead of encoding it at unit scale; errors are then "
                   "against the exact product of the unquantized data.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="Print a CSV header and one row.")
def gemm(m, n, k, dist, a_format, b_format, seed, scale, promote, preset, frac_bits, recipe,
         as_json, as_csv):
    """Simulates a random M x K x N FP8 GEMM and prints its error against the exact product.

    The exact product is the float64 product of the decoded FP8 inputs
    (fp8sim.analysis.stats.exact_product), so the errors are those of the accumulation alone;
    with --recipe it is the product of the float data before quantization. Also runs the
    "ideal" preset (sequential FP32 accumulation of exact products) and reports the share
    of outputs whose bits differ from it. Relative errors are over the outputs whose
    exact value is nonzero; ULP errors are in ULPs of float32(exact).
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    if preset is not None and preset not in PRESETS:
        raise click.BadParameter(f"unknown preset {preset!r}; expected one of "
                                 f"{', '.join(PRESETS)}", param_hint="'--preset'")
    t0 = time.perf_counter()
    with _usage_errors():
        if recipe is not None:
            if scale != "unit":
                raise click.UsageError("--scale: a recipe scales the data itself; "
                                       "leave --scale unit with --recipe")
            if frac_bits is not None:
                preset = _step(preset or "hopper", frac_bits)
            row = _recipe_case(m, n, k, dist, a_format, b_format, seed, promote, preset, recipe)
        else:
            a_format, b_format = a_format or "e4m3", b_format or "e4m3"
            promote = 0 if promote is None else promote
            preset = _step(preset or "hopper", frac_bits)
            a, b = random_case(m, n, k, dist=dist, a_format=a_format, b_format=b_format,
                               seed=seed, scale=scale)
            stats = gemm_stats(a, b, a_format=a_format, b_format=b_format, promote=promote,
                               preset=preset)
            row = {"m": m, "n": n, "k": k, "promote": promote, "a_format": a_format,
                   "b_format": b_format, "preset": _step_name(preset), "recipe": None,
                   "dist": dist,
                   "scale": scale, "seed": seed, **stats}
    row["gemm_seconds"] = row.pop("seconds")
    row["seconds"] = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps({key: _json_value(v) for key, v in row.items()},
                              allow_nan=False))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(row), lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
    else:
        click.echo(_summary(row))


def _recipe_case(m, n, k, dist, a_format, b_format, seed, promote, preset, recipe) -> dict:
    """Runs fp8sim.recipes.pipeline.fp8_matmul on random float data; the gemm command's row."""
    try:
        from fp8sim.recipes.pipeline import RECIPES, fp8_matmul
    except ImportError:
        raise click.UsageError("--recipe: fp8sim.pipeline is not available") from None
    if recipe not in RECIPES:
        raise click.BadParameter(f"unknown recipe {recipe!r}; expected one of "
                                 f"{', '.join(RECIPES)}", param_hint="'--recipe'")
    rng = np.random.default_rng(seed)
    if dist == "codes":
        x = decode(random_codes((m, k), a_format or "e4m3", dist, rng), a_format or "e4m3")
        w = decode(random_codes((k, n), b_format or "e4m3", dist, rng), b_format or "e4m3")
    else:
        draw = {"normal": lambda s: rng.standard_normal(s, dtype=np.float32),
                "positive": lambda s: np.abs(rng.standard_normal(s, dtype=np.float32)),
                "uniform": lambda s: rng.uniform(-1.0, 1.0, s).astype(np.float32)}[dist]
        x, w = draw((m, k)), draw((k, n))
    changes = {}
    if promote is not None:
        changes["promote"] = promote
    if preset is not None:
        changes["preset"] = preset
    if a_format is not None:
        changes["x_format"] = a_format
    if b_format is not None:
        changes["w_format"] = b_format
    res = fp8_matmul(x, w, recipe, **changes)
    ideal = fp8_matmul(x, w, recipe, **(changes | {"preset": "ideal"}))
    out = np.asarray(res.out, np.float64)
    ref = np.asarray(ideal.out, np.float64)
    differs = (out != ref) & ~(np.isnan(out) & np.isnan(ref))
    r = res.recipe
    return {"m": m, "n": n, "k": k, "promote": r.promote, "a_format": r.x_format,
            "b_format": r.w_format,
            "preset": r.preset if isinstance(r.preset, str) else r.preset.name,
            "recipe": recipe, "dist": dist, "scale": "recipe", "seed": seed, **res.total,
            "quantization_max_rel_error": res.quantization["max_rel_error"],
            "accumulation_max_rel_error": res.accumulation["max_rel_error"],
            "share_differs_from_ideal": float(differs.mean()) if differs.size else 0.0,
            "ideal_max_rel_error": ideal.total["max_rel_error"],
            "seconds": res.seconds}


def _share(share: float, outputs: int) -> str:
    """'N of M outputs (P%)', never rounding a partial share to 0% or 100%."""
    count = round(share * outputs)
    pct = 100 * share
    text = f"{pct:.2f}%"
    if 0 < count < outputs and text in ("0.00%", "100.00%"):
        text = f"{pct:.4g}%"
    return f"{count} of {outputs} outputs ({text})"


def _scale_note(row: dict) -> str:
    """', per-tensor scaled' when the data was scaled to the FP8 range before encoding."""
    return ", per-tensor scaled" if row.get("scale") == "tensor" and row["dist"] != "codes" else ""


def _summary(row: dict) -> str:
    """The human-readable summary of one gemm row."""
    promote = f"every {row['promote']} elements of K" if row["promote"] else "never"
    recipe = f", recipe {row['recipe']}" if row.get("recipe") else ""
    lines = [
        f"GEMM      M={row['m']} N={row['n']} K={row['k']}  A {row['a_format']} x "
        f"B {row['b_format']}  data {row['dist']}{_scale_note(row)} (seed {row['seed']})",
        f"kernel    preset {row['preset']}{recipe}, FP32 promotion {promote}",
        f"rel error max {row['max_rel_error']:.3e}  mean {row['mean_rel_error']:.3e}  "
        f"median {row['median_rel_error']:.3e}  normwise {row['fro_rel_error']:.3e}  "
        f"(vs exact product)",
        f"ULP error mean {row['mean_ulp_error']:.4g}  max {row['max_ulp_error']:.4g}  "
        f"(ULPs of float32(exact))",
        f"vs ideal  {_share(row['share_differs_from_ideal'], row['m'] * row['n'])} differ "
        f"from sequential FP32 accumulation (its max rel error "
        f"{row['ideal_max_rel_error']:.3e})",
    ]
    if row.get("nonfinite_outputs"):
        lines.append(f"nonfinite {row['nonfinite_outputs']} outputs (left out of the stats)")
    if row.get("recipe"):
        lines.append(f"split     quantization max rel {row['quantization_max_rel_error']:.3e}"
                     f", accumulation max rel {row['accumulation_max_rel_error']:.3e}")
    lines.append(f"time      {row['gemm_seconds']:.3f} s simulated GEMM, "
                 f"{row['seconds']:.2f} s in all")
    return "\n".join(lines)


# --------------------------------------------------------------------------- sweep

def _int_list(ctx, param, value: str) -> list[int]:
    """Parses a comma-separated list of positive integers."""
    try:
        values = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not values or any(v < 1 for v in values):
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return values


@main.command(short_help="Error against K or promotion interval over a grid; CSV + PNG.")
@click.option("--k-values", default=_DEFAULT_K_VALUES, show_default=True,
              callback=_int_list, help="Comma-separated K values.")
@click.option("--m", type=_size, default=16, show_default=True, help="Rows of the output.")
@click.option("--n", type=_size, default=16, show_default=True, help="Columns of the output.")
@click.option("--promote", "promotes", type=int, multiple=True, default=(0, 128),
              show_default=True, help="Promotion interval (repeatable; 0 = never).")
@click.option("--dist", "dists", type=click.Choice(DISTS), multiple=True,
              default=("normal", "positive"), show_default=True,
              help="Data distribution (repeatable). " + _DIST_HELP)
@click.option("--a-format", "a_formats", type=click.Choice(_FORMATS, case_sensitive=False),
              multiple=True, default=("e4m3",), show_default=True,
              help="Format of A (repeatable: every A x B pair is swept).")
@click.option("--b-format", "b_formats", type=click.Choice(_FORMATS, case_sensitive=False),
              multiple=True, default=("e4m3",), show_default=True,
              help="Format of B (repeatable).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random seed of every grid point (A is drawn before B).")
@click.option("--scale", type=click.Choice(SCALES), default="unit", show_default=True,
              help="Float data: encoded as drawn (unit) or after a per-tensor amax scale "
                   "onto the format's range (tensor).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="hopper",
              show_default=True, help="MMA step model.")
@_FRAC_BITS
@click.option("--x", "x_axis", type=click.Choice(("auto", "k", "promote")), default="auto",
              show_default=True,
              help="The plot's x axis: K, or the promotion interval (auto: promotion when "
                   "one K and several intervals are swept).")
@click.option("--metric", type=click.Choice(_METRICS), default="max_rel_error",
              show_default=True, help="Error statistic on the plot's y axis (the CSV has all).")
@click.option("--out", type=click.Path(dir_okay=False), default="sweep", show_default=True,
              help="Output prefix: writes OUT.csv and OUT.png.")
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
    stderr. Errors are against the
    exact (float64) product of the decoded FP8 inputs: the accumulation error alone.
    """
    prefix = Path(out)
    if prefix.suffix in (".csv", ".png"):
        prefix = prefix.with_suffix("")
    folder = prefix.parent
    if not folder.is_dir():
        raise click.BadParameter(f"folder {str(folder)!r} does not exist",
                                 param_hint="'--out'")
    for p in promotes:
        if p < 0 or p % 32:
            raise click.BadParameter(f"expected 0 or a positive multiple of 32, got {p}",
                                     param_hint="'--promote'")
    step = _step(preset, frac_bits)
    pairs = [(fa.lower(), fb.lower()) for fa in a_formats for fb in b_formats]
    grid = sweep_grid(k_values, m=m, n=n, promotes=promotes, dists=dists, formats=pairs,
                      scale=scale, seed=seed, preset=step, engine=engine)
    if engine == "gpu" and scheduler is None:  # (a cluster's workers may have GPUs)
        with _usage_errors():
            from fp8sim.engine import _gpu

            _gpu.check()
    with _usage_errors(), _dask_client(scheduler) as client, click.progressbar(
            length=len(grid), label="sweep", file=sys.stderr,
            item_show_func=_grid_label) as bar:
        t0 = time.perf_counter()
        rows = run_sweep(grid, client=client, on_done=lambda point: bar.update(1, point))
    csv_path = prefix.parent / f"{prefix.name}.csv"
    png_path = prefix.parent / f"{prefix.name}.png"
    try:
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        if x_axis == "auto":
            x_axis = "promote" if len(set(k_values)) == 1 and len(set(promotes)) > 1 else "k"
        fig = _plot_sweep(rows, metric, x_axis)
        fig.savefig(png_path, dpi=120)
    except OSError as e:
        raise click.FileError(str(e.filename or prefix), hint=e.strerror) from None
    click.echo(f"wrote {csv_path} and {png_path} ({len(rows)} points, "
               f"{time.perf_counter() - t0:.1f} s)")


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
    from fp8sim.analysis.distributed import connect

    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(connect(scheduler))
        except (ImportError, ValueError, OSError) as e:
            raise click.BadParameter(_one_line(str(e)), param_hint="'--scheduler'") from None
        yield client


def _plot_sweep(rows: list[dict], metric: str = "max_rel_error", x_axis: str = "k"):
    """`metric` against K (or the promotion interval): fp8sim.plots if present, else basic."""
    r0 = rows[0]
    pairs = list(dict.fromkeys(r["formats"] for r in rows))
    against = "K" if x_axis == "k" else "promotion interval"
    title = (f"FP8 GEMM error vs {against}: {', '.join(pairs)}, {r0['m']} x {r0['n']} "
             f"outputs, preset {r0['preset']}")
    if x_axis == "promote":
        many = len(pairs) > 1
        rows = [r | {"case": f"K={r['k']}, {r['dist']}" + (f", {r['formats']}" if many else "")}
                for r in rows]
        try:
            from fp8sim.analysis.plots import error_vs_promote
        except ImportError:
            error_vs_promote = None
        if error_vs_promote is not None:
            return error_vs_promote(rows, metric=metric, series="case", title=title)
        series: tuple[str, ...] = ("case",)
    else:
        series = ("promote", "dist") + (("formats",) if len(pairs) > 1 else ())
        try:
            from fp8sim.analysis.plots import error_vs_k
        except ImportError:
            error_vs_k = None
        if error_vs_k is not None:
            return error_vs_k(rows, metric=metric, series=series, title=title)
    from matplotlib.figure import Figure  # Agg canvas, no pyplot global state

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[key] for key in series), []).append(r)
    for key, rs in groups.items():
        if x_axis == "promote":  # never promoting = promoting once, at x = K
            pts = sorted((r["promote"] or r["k"], r[metric]) for r in rs)
            label = str(key[0])
        else:
            pts = sorted((r["k"], r[metric]) for r in rs)
            p = key[0]
            label = ", ".join(["no promotion" if p == 0 else f"promote every {p}",
                               *map(str, key[1:])])
        ax.plot([x for x, _ in pts], [e for _, e in pts], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("K (elements summed)" if x_axis == "k" else
                  "promotion interval (elements of K between FP32 promotions)")
    ax.set_ylabel(f"{_METRICS[metric]} vs exact product (unitless)")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- encode / decode

def _describe(code: int, fmt: str) -> list[str]:
    """Lines describing one code: hex, binary, fields, value, neighbours."""
    f = format_info(fmt)
    mb, eb = f.mantissa_bits, f.exponent_bits
    sign, exp, man = code >> 7, (code >> mb) & ((1 << eb) - 1), code & ((1 << mb) - 1)
    value = float(decode_table(f)[code])
    if math.isnan(value):
        kind = "NaN"
    elif math.isinf(value):
        kind = "infinity"
    elif value == 0:
        kind = "zero"
    elif exp == 0:
        kind = f"subnormal, 2^{1 - f.bias} x 0.{man:0{mb}b}b"
    else:
        kind = f"normal, 2^{exp - f.bias} x 1.{man:0{mb}b}b"
    lines = [f"  code     0x{code:02x} = 0b{sign}_{exp:0{eb}b}_{man:0{mb}b}  "
             f"(sign {sign}, exponent {exp:0{eb}b} = {exp} biased by {f.bias}, "
             f"mantissa {man:0{mb}b})",
             f"  value    {value!r}  ({kind})"]
    if math.isfinite(value):
        below, above = _neighbours(value, f)
        parts = [f"below {_code_value(below, f)}" if below is not None else "below: none",
                 f"above {_code_value(above, f)}" if above is not None else "above: none"]
        lines.append(f"  neighbours {', '.join(parts)}")
    return lines


def _code_value(code: int, f) -> str:
    """'0xNN (value)'."""
    return f"0x{code:02x} ({float(decode_table(f)[code])!r})"


def _neighbours(value: float, f) -> tuple[int | None, int | None]:
    """Codes of the next smaller and next larger finite values (positive zero preferred)."""
    table = decode_table(f).astype(np.float64)
    codes = np.arange(table.size)
    finite = np.isfinite(table)
    lower = codes[finite & (table < value)]
    upper = codes[finite & (table > value)]
    below = int(lower[np.argmax(table[lower])]) if lower.size else None
    above = int(upper[np.argmin(table[upper])]) if upper.size else None
    return below, above


def _parse_float(text: str) -> float:
    """A float from the command line (also 'inf', 'nan', hex floats like 0x1.8p-3)."""
    try:
        return float(text)
    except ValueError:
        try:
            if "0x" not in text.lower():
                raise ValueError(text)
            return float.fromhex(text)
        except ValueError:
            raise click.BadParameter(f"expected a number, got {text!r}",
                                     param_hint="'VALUE'") from None


_FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(_INSPECT_FORMATS),
                              default="e4m3", show_default=True, help="FP8 format.")


@main.command(name="encode", context_settings={"ignore_unknown_options": True},
              short_help="Encodes numbers: code, fields, neighbours, every rounding mode.")
@click.argument("values", nargs=-1, required=True)
@_FORMAT_OPTION
def encode_(values, fmt):
    """Encodes VALUE... (e.g. 0.3 -1.5 448 1e-3 inf) and shows what each rounding mode gives."""
    f = format_info(fmt)
    blocks = []
    for text in values:
        x = _parse_float(text)
        arr = np.array([x], np.float64)
        code = int(encode(arr, f)[0])
        lines = [f"{text} -> {fmt} (round to nearest, ties to even)"]
        lines += _describe(code, fmt)
        v = float(decode_table(f)[code])
        if math.isfinite(v) and math.isfinite(x):
            err = v - x
            rel = f", rel {err / abs(x):+.3e}" if x else ""
            lines.append(f"  error    {err:+.6g}{rel}")
        modes = []
        for mode in RoundMode:
            if mode is RoundMode.Stochastic:
                continue
            c = int(encode(arr, f, rounding=mode)[0])
            modes.append(f"{mode.name} {_code_value(c, f)}")
        lines.append("  rounding " + "; ".join(modes))
        lines.append("  " + _stochastic(x, f))
        sat = int(encode(arr, f, saturate=True)[0])
        lines.append(f"  saturating (satfinite) {_code_value(sat, f)}")
        blocks.append("\n".join(lines))
    click.echo("\n\n".join(blocks))


def _stochastic(x: float, f) -> str:
    """What stochastic rounding gives for x: the two candidates and P(away from zero)."""
    arr = np.array([x], np.float64)
    lo = int(encode(arr, f, rounding=RoundMode.TowardZero)[0])
    hi_mode = RoundMode.TowardPositive if x >= 0 else RoundMode.TowardNegative
    hi = int(encode(arr, f, rounding=hi_mode)[0])
    if lo == hi or not math.isfinite(x):
        return f"Stochastic always {_code_value(lo, f)}"
    vlo, vhi = float(decode_table(f)[lo]), float(decode_table(f)[hi])
    if not math.isfinite(vhi):
        return f"Stochastic {_code_value(lo, f)} or {_code_value(hi, f)}"
    p = (abs(x) - abs(vlo)) / (abs(vhi) - abs(vlo))
    return (f"Stochastic {_code_value(hi, f)} with probability {p:.4g}, "
            f"else {_code_value(lo, f)}")



def _parse_code(text: str) -> int:
    """A code from '0x7e', '0b01111110', '126'."""
    try:
        code = int(text, 0)
    except ValueError:
        raise click.BadParameter(f"expected a code like 0x7e or 126, got {text!r}",
                                 param_hint="'CODE'") from None
    if not 0 <= code <= 255:
        raise click.BadParameter(f"expected 0..255 (0x00..0xff), got {text!r}",
                                 param_hint="'CODE'")
    return code


@main.command(name="decode", short_help="Decodes FP8 codes: fields, value, neighbours.")
@click.argument("codes", nargs=-1, required=True)
@_FORMAT_OPTION
def decode_(codes, fmt):
    """Decodes CODE... (hex like 0x7e, binary like 0b01111110, or decimal)."""
    blocks = []
    for text in codes:
        code = _parse_code(text)
        blocks.append("\n".join([f"{text} as {fmt}"] + _describe(code, fmt)))
    click.echo("\n\n".join(blocks))


# --------------------------------------------------------------------------- presets

_REFERENCE_PRESETS = ("ideal", "exact")  # mathematical baselines, not models of a chip


@main.command(short_help="Lists the MMA step presets and named kernels.")
def presets():
    """Lists the MMA step presets and the named kernels, and which are verified on an H100."""
    click.echo("MMA step presets (--preset):")
    for p in PRESETS.values():
        bits = "exact" if p.frac_bits is None else f"{p.frac_bits} frac bits"
        if p.verified:
            check = "verified on H100"
        elif p.name in _REFERENCE_PRESETS:
            check = "software reference (no hardware)"
        else:
            check = "not verified"
        terms = f"{p.terms:>2} term{'s' if p.terms != 1 else ''},"
        click.echo(f"  {p.name:<10} {terms:<9} {bits:<13} {check}")
        click.echo(f"             {p.description}")
    try:
        from fp8sim.engine.kernel import KERNELS
    except ImportError:
        return
    click.echo("\nKernels (fp8sim.engine.kernel.KERNELS):")
    for k in KERNELS.values():
        promote = f"promote {k.promote}" if k.promote else "no promotion"
        check = "verified on H100" if k.verified else "not verified"
        click.echo(f"  {k.name:<18} {k.step.name}, {promote}, scaling {k.scaling_label}, "
                   f"{k.out_dtype} out, {check}")
        click.echo(f"                     {k.description}")


# --------------------------------------------------------------------------- optional commands

try:
    from fp8sim.cli.oracle import identify_cmd
except ImportError:
    pass
else:
    main.add_command(identify_cmd, "identify")

try:
    from fp8sim.cli.capture import capture_cmd, verify_cmd
except ImportError:
    pass
else:
    main.add_command(capture_cmd, "capture")
    main.add_command(verify_cmd, "verify")
