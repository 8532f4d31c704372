"""`fp8sim gemm`: simulates one FP8 GEMM (random or the user's data) and prints its error.

The command checks its options, builds the operands (`fp8sim.cli.gemm_inputs`), runs
the one measurement of `fp8sim.analysis.measure` and prints its `GemmRow` as text
(`fp8sim.cli.summary`), JSON or CSV.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import click
import numpy as np
from click.core import ParameterSource

from fp8sim.analysis.measure import (
    GemmRow,
    defaults,
    kernel_scaling,
    measure_kernel,
    measure_recipe,
)
from fp8sim.analysis.studies import DISTS, gemm_stats, random_case, stage_weights
from fp8sim.cli import data as _data
from fp8sim.cli import gemm_inputs as _inputs
from fp8sim.cli.errors import usage_errors
from fp8sim.cli.options import (
    DIST_HELP,
    FRAC_BITS,
    OUT_DTYPES,
    SIZE,
    case_options,
    check_request,
    find_kernel,
    step,
    step_name,
)
from fp8sim.cli.summary import summary
from fp8sim.engine import budget
from fp8sim.engine.cublaslt_splits import GPUS
from fp8sim.engine.mma import PRESETS
from fp8sim.engine.split_choice import refuse_unsplit, split_choice

__all__ = ["gemm"]


def _json_value(v):
    """A JSON-safe value: non-finite floats become null (JSON has no NaN or Infinity)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _promote(value: int | None) -> int | None:
    """--promote: None, 0 or a positive multiple of 32 (checked before anything runs)."""
    if value is not None and (value < 0 or value % 32):
        raise click.BadParameter(f"expected 0 (never) or a positive multiple of 32, got "
                                 f"{value}", param_hint="'--promote'")
    return value


@click.command(short_help="Simulates an FP8 GEMM (random or your .npy data); error vs exact.")
@click.option("--m", type=SIZE, default=256, show_default=True, help="Rows of A and the output.")
@click.option("--n", type=SIZE, default=256, show_default=True,
              help="Columns of B and the output.")
@click.option("--k", type=SIZE, default=4096, show_default=True, help="Inner dimension.")
@click.option("--dist", type=click.Choice(DISTS), default="positive", show_default=True,
              help=DIST_HELP + " The default, positive, keeps every output away from zero; "
              "on signed data the max relative error comes from outputs that cancel to "
              "near zero (see the normwise error).")
@case_options
@click.option("--promote", type=int, default=None,
              help="Promote the Tensor Core partial sum into FP32 every N elements of K "
                   "(a multiple of 32; 0 = never). [default: 0, or the recipe's or kernel's]")
@click.option("--preset", default=None, metavar="NAME",
              help=f"MMA step model: {', '.join(PRESETS)}. [default: hopper]")
@FRAC_BITS
@click.option("--recipe", default=None, metavar="NAME",
              help="Quantize float data with a training recipe (fp8sim.RECIPES, "
                   "e.g. deepseek-v3) instead of encoding it at unit scale; errors are then "
                   "against the exact product of the unquantized data.")
@click.option("--a", "a_path", default=None, metavar="FILE",
              help="Your A (M, K): FILE.npy, or FILE.npz (its array A, or FILE.npz:NAME). "
                   "uint8 arrays are FP8 codes (--a-format); float arrays are quantized by "
                   "--scale or --recipe. Needs --b; replaces --m, --k, --dist and --seed.")
@click.option("--b", "b_path", default=None, metavar="FILE", help="Your B (K, N), as --a.")
@click.option("--kernel", default=None, metavar="NAME",
              help="Run a named kernel of fp8sim.KERNELS (listed by 'fp8sim presets') "
                   "instead of fp8sim.gemm with --promote and --preset (which then override "
                   "the kernel's).")
@click.option("--scale-a", "scale_a", default=None, metavar="X|FILE",
              help="scale_a of the kernel's epilogue: a number (used as float32: 0.1 is "
                   "rounded to 0.10000000149011612, and the summary says so; nan and inf "
                   "allowed) or an array file (.npy, .npz[:NAME]), e.g. (M, K/128) for 1x128 "
                   "blocks.")
@click.option("--scale-b", "scale_b", default=None, metavar="X|FILE",
              help="scale_b, as --scale-a, e.g. (K/128, N/128) for 128x128 blocks.")
@click.option("--out-dtype", type=click.Choice(OUT_DTYPES), default=None,
              help="Output type. [default: float32, or the kernel's]")
@click.option("--gpu", type=click.Choice(GPUS), default=None,
              help="With --kernel: the card whose split of K (cuBLASLt's choice per shape, "
                   "fp8sim.engine.cublaslt_splits) the kernel reproduces. [default: H100]")
@click.option("--slices", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --kernel (one that splits K: cublaslt-fast, cublaslt, "
                   "cublaslt-blockwise): cut K into N slices instead of the library's "
                   "recorded choice (where it was never recorded the run asks for this). "
                   "The summary says which split ran and where its count came from.")
@click.option("--out", "out_path", default=None, metavar="FILE",
              help="Write the simulated output D to FILE bit for bit: .npy (float32, float16, "
                   "or bfloat16 as uint16 bits), or .npz with D, out_dtype and the FP8 inputs "
                   "A, B (and scales), which 'fp8sim identify FILE' reads. Missing folders are "
                   "created.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="Print a CSV header and one row.")
def gemm(m, n, k, dist, a_format, b_format, seed, scale, promote, preset, frac_bits, recipe,
         a_path, b_path, kernel, scale_a, scale_b, out_dtype, gpu, slices, out_path, as_json,
         as_csv):
    """Simulates an M x K x N FP8 GEMM and prints its error against the exact product.

    The data is random (--m, --n, --k, --dist, --seed) or yours (--a, --b). The exact
    product is the float64 product of the decoded FP8 inputs, times their scales
    (fp8sim.analysis.stats.exact_product), so the errors are those of the accumulation
    alone; with --recipe it is the product of the float data before quantization (float
    files also report that error as total_*). Also runs the "ideal" preset (sequential
    FP32 accumulation of exact products; with --kernel, the kernel with that step) and
    reports the share of outputs whose bits differ from it. Relative errors are over the
    outputs whose exact value is nonzero; ULP errors are in ULPs of float32(exact).
    Statistics with no output to run over (all outputs NaN or Inf) are nan (null in JSON).
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    if preset is not None and preset not in PRESETS:
        raise click.BadParameter(f"unknown preset {preset!r}; expected one of "
                                 f"{', '.join(PRESETS)}", param_hint="'--preset'")
    if (a_path is None) != (b_path is None):
        missing = "--b" if b_path is None else "--a"
        raise click.UsageError(f"{missing}: --a and --b go together (your A and B)")
    if a_path is not None:
        _refuse_random_case_options()
    if recipe is not None and (kernel or scale_a or scale_b):
        raise click.UsageError("--recipe: a recipe picks its own kernel and scales; leave out "
                               "--kernel, --scale-a and --scale-b")
    if recipe is not None and scale != "unit":
        raise click.UsageError("--scale: a recipe scales the data itself; "
                               "leave --scale unit with --recipe")
    promote = _promote(promote)
    kern = find_kernel(kernel) if kernel is not None else None
    for option, value in (("--slices", slices), ("--gpu", gpu)):
        if value is not None and kern is None:
            raise click.UsageError(f"{option}: applies to --kernel runs (a library's split of "
                                   "K); fp8sim.gemm and --recipe runs never split K")
    if kern is not None:
        with usage_errors():
            refuse_unsplit(kern, slices)
    scaling = kernel_scaling(kern) if kern is not None else None
    if scaling not in (None, "tensor") and scale_a is None and scale != "tensor":
        raise click.BadParameter(f"kernel {kern.name} applies {scaling!r} scales; pass "
                                 "--scale-a and --scale-b (numbers or array files)",
                                 param_hint="'--scale-a'")
    with usage_errors():
        if out_path is not None:
            _refuse_overwriting_inputs(out_path, a_path, b_path, scale_a, scale_b)
            if Path(out_path).suffix.lower() not in (".npy", ".npz"):
                raise _data.DataError(f"--out: expected a .npy or .npz file name, got "
                                      f"{out_path!r}")
            _data.check_writable(out_path)
        if frac_bits is not None or preset is not None:
            preset = step(preset or "hopper", frac_bits)
    t0 = time.perf_counter()
    with usage_errors():
        row, out, inputs, notes = _measure(
            m, n, k, dist, a_format, b_format, seed, scale, promote, preset, recipe,
            a_path, b_path, kern, scale_a, scale_b, out_dtype, gpu, slices)
    if out_path is not None:
        try:
            written = _data.save_output(out_path, out, row.get("out_dtype", "float32"), inputs)
        except OSError as e:
            raise click.BadParameter(f"cannot write {out_path!r} ({e.strerror or e})",
                                     param_hint="'--out'") from None
        row["out"] = str(written)
    row["seconds"] = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps({key: _json_value(v) for key, v in row.items()},
                              allow_nan=False))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(row), lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
    else:
        click.echo(summary(row, notes))


def _refuse_random_case_options() -> None:
    """--a/--b give the data and its size: a --m, --n, --k, --dist or --seed typed beside
    them would be ignored, so it is refused (exit 2)."""
    ctx = click.get_current_context()
    given = [f"--{name}" for name in ("m", "n", "k", "dist", "seed")
             if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"{given[0]}: --a and --b give the data and its size; leave "
                               f"{', '.join(given)} out")


def _refuse_overwriting_inputs(out_path: str, *inputs: str | None) -> None:
    """--out naming one of the input files would replace it with D: refused."""
    out = Path(out_path).resolve()
    for given in inputs:
        if given is not None and Path(given).is_file() and Path(given).resolve() == out:
            raise _data.DataError(f"--out: {out_path!r} is an input file; writing D there "
                                  "would overwrite it")


def _measure(m, n, k, dist, a_format, b_format, seed, scale, promote, preset, recipe,
             a_path, b_path, kern, scale_a, scale_b, out_dtype, gpu=None, slices=None):
    """Builds the operands and measures the GEMM: (row, output, arrays an .npz --out
    holds besides D, notes for the summary)."""
    if a_path is not None:
        case = _inputs.file_operands(a_path, b_path, a_format, b_format, scale, recipe, kern,
                                     scale_a, scale_b)
    else:
        case = None
        check_request(m, n, k, recipe)
    weights = stage_weights(*(case.mnk if case else (m, n, k)),
                            preset if preset is not None else "hopper")
    with budget.Progress("fp8sim gemm", weights):
        if recipe is not None:
            if case is None:
                case = _inputs.recipe_floats(m, n, k, dist, a_format, b_format, seed)
            try:
                row, out = measure_recipe(case.x, case.w, recipe, promote=promote,
                                          preset=preset, a_format=a_format, b_format=b_format)
            except ImportError:
                raise click.UsageError("--recipe: fp8sim.recipes.pipeline is not available"
                                       ) from None
            row.data = case.info
            return row.as_dict(), out, {}, case.notes
        if case is None and kern is None and scale_a is None and scale_b is None \
                and out_dtype is None:  # the headline case: the studies' own measure
            return _headline(m, n, k, dist, a_format, b_format, seed, scale, promote, preset)
        if case is None:
            case = _inputs.random_operands(m, n, k, dist, a_format, b_format, seed, scale)
            if scale_a is not None or scale_b is not None:
                case.scale_a, case.scale_b, case.notes = _inputs.scale_options(scale_a,
                                                                               scale_b)
        row, res, kw = measure_kernel(case.a, case.b, kernel=kern, promote=promote,
                                      preset=preset, scale_a=case.scale_a,
                                      scale_b=case.scale_b, out_dtype=out_dtype,
                                      floats=case.floats, gpu=gpu, slices=slices)
    row.data = case.info
    if kern is not None:  # which split of K ran, and where its count came from
        card = gpu or "H100"
        count, source = split_choice(kern, row.m, row.n, row.k, out_dtype=row.out_dtype,
                                     gpu=card, slices=slices, scale_a=kw.get("scale_a"),
                                     scale_b=kw.get("scale_b"))
        row.data |= {"gpu": card, "slices": count, "split": source}
        if slices is not None and count != slices:
            case.notes = [*case.notes, f"--slices {slices}: K = {row.k} cuts into {count} "
                          "(each slice a multiple of the kernel's split alignment long, as "
                          "the library cuts K; empty slices add nothing)"]
    for name in ("scale_a", "scale_b"):
        value = kw.get(name)
        if value is not None and np.size(value) == 1:
            row.data[name] = float(np.asarray(value).reshape(-1)[0])
    inputs = {"A": np.asarray(case.a).view(np.uint8), "B": np.asarray(case.b).view(np.uint8),
              "scale_a": kw.get("scale_a"), "scale_b": kw.get("scale_b")}
    return row.as_dict(), res.out, inputs, case.notes


def _headline(m, n, k, dist, a_format, b_format, seed, scale, promote, preset):
    """The default run: a random case measured by `gemm_stats`, as the studies measure it."""
    fa, fb = a_format or "e4m3", b_format or "e4m3"
    p, s = defaults(promote, preset)
    a, b = random_case(m, n, k, dist=dist, a_format=fa, b_format=fb, seed=seed, scale=scale)
    kept: dict = {}
    stats = gemm_stats(a, b, a_format=fa, b_format=fb, promote=p, preset=s, keep=kept)
    seconds = stats.pop("seconds")
    row = GemmRow(m, n, k, p, fa, fb, step_name(s),
                  data={"dist": dist, "scale": scale, "seed": seed}, stats=stats,
                  seconds=seconds)
    return row.as_dict(), kept["out"], {"A": a, "B": b}, []
