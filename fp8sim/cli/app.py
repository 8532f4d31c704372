"""The `fp8sim` command line: simulate random FP8 GEMMs, sweep K, inspect FP8 codes.

Argument errors exit with status 2 and one line on stderr ("Error: ..."), never a
traceback: click's usage errors are printed on one line, and ValueError/TypeError
raised by fp8sim for bad arguments inside a command become usage errors.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import math
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np

from fp8sim import __version__
from fp8sim.analysis.studies import (
    DISTS,
    SCALES,
    gemm_stats,
    random_case,
    random_codes,
    request_bytes,
    stage_weights,
    stats_bytes,
)
from fp8sim.analysis.sweep import sweep as run_sweep
from fp8sim.analysis.sweep import sweep_grid, sweep_point
from fp8sim.cli import data as _data
from fp8sim.engine import budget
from fp8sim.engine.gemm import gemm as gemm_api
from fp8sim.engine.mma import PRESETS
from fp8sim.formats.convert import decode, encode
from fp8sim.formats.info import decode_table, format_info
from fp8sim.formats.rounding import RoundMode

__all__ = ["main"]

_FORMATS = ("e4m3", "e5m2")
_OUT_DTYPES = ("float32", "bfloat16", "float16")
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


_OPTION_OF = {"a": "--a", "b": "--b", "scale_a": "--scale-a", "scale_b": "--scale-b",
              "a_format": "--a-format", "b_format": "--b-format", "promote": "--promote",
              "out_dtype": "--out-dtype", "preset": "--preset", "m": "--m", "n": "--n",
              "k": "--k", "seed": "--seed", "frac_bits": "--frac-bits"}


def _cli_message(message: str) -> str:
    """An API error message with its leading argument name as the CLI option ("scale_a:" ->
    "--scale-a:"), and a keyword a kernel does not take named as its option."""
    text = _one_line(message)
    head, sep, rest = text.partition(": ")
    if sep and head in _OPTION_OF:
        return f"{_OPTION_OF[head]}: {rest}"
    kw = re.search(r"unexpected keyword argument '(\w+)'", text)
    if kw:
        option = _OPTION_OF.get(kw.group(1), kw.group(1))
        return f"{option}: this kernel does not take it ({text})"
    return text


class _TooLarge(click.ClickException):
    """A request that cannot fit in memory: one line, exit status 2."""

    exit_code = 2


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """Turns fp8sim's ValueError/TypeError (bad arguments) into a one-line usage error, and a
    request too large for the memory into one line with exit status 2."""
    try:
        yield
    except (ValueError, TypeError) as e:
        raise click.UsageError(_cli_message(str(e))) from None
    except MemoryError as e:
        text = _one_line(str(e)) or "out of memory"
        raise _TooLarge(f"{text} (nothing was computed)") from None


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


@main.command(short_help="Simulates an FP8 GEMM (random or your .npy data); error vs exact.")
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
                   "(a multiple of 32; 0 = never). [default: 0, or the recipe's or kernel's]")
@click.option("--preset", default=None, metavar="NAME",
              help=f"MMA step model: {', '.join(PRESETS)}. [default: hopper]")
@_FRAC_BITS
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
              help="scale_a of the kernel's epilogue: a number or an array file (.npy, "
                   ".npz[:NAME]), e.g. (M, K/128) for 1x128 blocks.")
@click.option("--scale-b", "scale_b", default=None, metavar="X|FILE",
              help="scale_b, as --scale-a, e.g. (K/128, N/128) for 128x128 blocks.")
@click.option("--out-dtype", type=click.Choice(_OUT_DTYPES), default=None,
              help="Output type. [default: float32, or the kernel's]")
@click.option("--out", "out_path", default=None, metavar="FILE",
              help="Write the simulated output D to FILE bit for bit: .npy (float32, float16, "
                   "or bfloat16 as uint16 bits), or .npz with D, out_dtype and the FP8 inputs "
                   "A, B (and scales), which 'fp8sim identify FILE' reads. Missing folders are "
                   "created.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--csv", "as_csv", is_flag=True, help="Print a CSV header and one row.")
def gemm(m, n, k, dist, a_format, b_format, seed, scale, promote, preset, frac_bits, recipe,
         a_path, b_path, kernel, scale_a, scale_b, out_dtype, out_path, as_json, as_csv):
    """Simulates an M x K x N FP8 GEMM and prints its error against the exact product.

    The data is random (--m, --n, --k, --dist, --seed) or yours (--a, --b). The exact
    product is the float64 product of the decoded FP8 inputs, times their scales
    (fp8sim.analysis.stats.exact_product), so the errors are those of the accumulation
    alone; with --recipe it is the product of the float data before quantization (float
    files also report that error as total_*). Also runs the "ideal" preset (sequential
    FP32 accumulation of exact products; with --kernel, the kernel with that step) and
    reports the share of outputs whose bits differ from it. Relative errors are over the
    outputs whose exact value is nonzero; ULP errors are in ULPs of float32(exact).
    """
    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    if preset is not None and preset not in PRESETS:
        raise click.BadParameter(f"unknown preset {preset!r}; expected one of "
                                 f"{', '.join(PRESETS)}", param_hint="'--preset'")
    if (a_path is None) != (b_path is None):
        missing = "--b" if b_path is None else "--a"
        raise click.UsageError(f"{missing}: --a and --b go together (your A and B)")
    if recipe is not None and (kernel or scale_a or scale_b):
        raise click.UsageError("--recipe: a recipe picks its own kernel and scales; leave out "
                               "--kernel, --scale-a and --scale-b")
    if recipe is not None and scale != "unit":
        raise click.UsageError("--scale: a recipe scales the data itself; "
                               "leave --scale unit with --recipe")
    if out_path is not None and Path(out_path).suffix.lower() not in (".npy", ".npz"):
        raise click.BadParameter(f"expected a .npy or .npz file name, got {out_path!r}",
                                 param_hint="'--out'")
    kern = _find_kernel(kernel) if kernel is not None else None
    if frac_bits is not None or preset is not None:
        preset = _step(preset or "hopper", frac_bits)
    t0 = time.perf_counter()
    out = None
    inputs: dict = {}  # what an .npz --out holds besides D: the FP8 inputs and their scales
    with _usage_errors():
        if a_path is not None:
            case = _file_operands(a_path, b_path, a_format, b_format, scale, recipe, kern,
                                  promote, scale_a, scale_b)
        else:
            case = None
            _check_request(m, n, k, recipe)
        weights = stage_weights(*(case["mnk"] if case else (m, n, k)),
                                preset if preset is not None else "hopper")
        with budget.Progress("fp8sim gemm", weights):
            if recipe is not None:
                if case is not None:
                    row, out = _recipe_run(case["x"], case["w"], a_format, b_format, promote,
                                           preset, recipe)
                    row |= {"dist": "file", "seed": None, "a": a_path, "b": b_path}
                else:
                    row, out = _recipe_case(m, n, k, dist, a_format, b_format, seed, promote,
                                            preset, recipe)
            elif case is None and kern is None and scale_a is None and scale_b is None \
                    and out_dtype is None:  # the headline case: the studies' own measure
                fa, fb = a_format or "e4m3", b_format or "e4m3"
                step = preset if preset is not None else "hopper"
                p = 0 if promote is None else promote
                a, b = random_case(m, n, k, dist=dist, a_format=fa, b_format=fb, seed=seed,
                                   scale=scale)
                kept: dict = {}
                stats = gemm_stats(a, b, a_format=fa, b_format=fb, promote=p, preset=step,
                                   keep=kept)
                row = {"m": m, "n": n, "k": k, "promote": p, "a_format": fa, "b_format": fb,
                       "preset": _step_name(step), "recipe": None, "kernel": None,
                       "out_dtype": "float32", "dist": dist, "scale": scale, "seed": seed,
                       **stats}
                out = kept["out"]
                inputs = {"A": a, "B": b}
            else:
                if case is None:
                    fa, fb = a_format or "e4m3", b_format or "e4m3"
                    a, b = random_case(m, n, k, dist=dist, a_format=fa, b_format=fb, seed=seed,
                                       scale=scale)
                    case = {"a": _data.as_float8(a, fa), "b": _data.as_float8(b, fb),
                            "scale_a": None, "scale_b": None, "floats": None,
                            "mnk": (m, n, k), "info": {"dist": dist, "scale": scale,
                                                       "seed": seed}}
                    if scale_a is not None or scale_b is not None:
                        case["scale_a"], case["scale_b"] = _scale_files(scale_a, scale_b)
                row, out = _run_case(case, kern, promote, preset, out_dtype)
                inputs = {"A": np.asarray(case["a"]).view(np.uint8),
                          "B": np.asarray(case["b"]).view(np.uint8),
                          "scale_a": row.pop("_scale_a", None),
                          "scale_b": row.pop("_scale_b", None)}
    row["gemm_seconds"] = row.pop("seconds")
    if out_path is not None:
        try:
            written = _data.save_output(out_path, out, row.get("out_dtype", "float32"), inputs)
        except OSError as e:
            raise click.FileError(str(out_path), hint=e.strerror) from None
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
        click.echo(_summary(row))


def _find_kernel(name: str):
    """fp8sim.KERNELS[name], looked up when the command runs (kernels added later included)."""
    import fp8sim

    kernels = fp8sim.KERNELS
    if name not in kernels:
        raise click.BadParameter(f"unknown kernel {name!r}; expected one of "
                                 f"{', '.join(kernels)}", param_hint="'--kernel'")
    return kernels[name]


def _kernel_scaling(kern) -> str | None:
    """The name of a kernel's scaling epilogue ("tensor", "group", ...), or None."""
    scaling = getattr(kern, "scaling", None)
    if isinstance(scaling, (tuple, list)):
        scaling = scaling[0] if scaling else None
    return getattr(scaling, "name", scaling)


def _check_request(m: int, n: int, k: int, recipe: str | None,
                   hint: str = "choose smaller --m, --n or --k") -> None:
    """Refuses a random case that cannot fit in memory, before drawing anything."""
    need = request_bytes(m, n, k)
    if recipe is not None:  # float32 data, quantized copies, two runs and their references
        need += 16 * (m * k + k * n) + 40 * m * n
    codes = m * k + k * n
    budget.check_memory(need, f"M={m} N={n} K={k} (A and B {budget.format_bytes(codes)} of "
                        f"FP8 codes, {budget.format_bytes(m * n)} outputs)",
                        hint=hint)


def _scale_files(scale_a, scale_b):
    """--scale-a / --scale-b as float32 values (numbers or loaded arrays)."""
    out = []
    for text, option, names in ((scale_a, "--scale-a", ("scale_a", "sa")),
                                (scale_b, "--scale-b", ("scale_b", "sb"))):
        src, value = _data.parse_scale(text, option, names)
        if src is not None:
            value = _data.load(src)
            if value.dtype.kind != "f":
                raise _data.DataError(f"{option}: expected float32 scales, {src} has dtype "
                                      f"{value.dtype}")
        out.append(value)
    return out[0], out[1]


def _file_operands(a_path, b_path, a_format, b_format, scale, recipe, kern, promote,
                   scale_a, scale_b) -> dict:
    """Peeks at --a and --b, checks the memory, loads and (for floats) quantizes them."""
    sa_src = _data.peek(a_path, "--a", ("A", "a"))
    sb_src = _data.peek(b_path, "--b", ("B", "b"))
    for src in (sa_src, sb_src):
        _data.check_operand(src)
    (m, k), (k2, n) = sa_src.shape, sb_src.shape
    if k2 != k:
        raise _data.DataError(f"--b: expected shape ({k}, N) to match A's K = {k}, "
                              f"{sb_src} has shape {sb_src.shape}")
    floats = [not _data.is_codes(s.dtype) for s in (sa_src, sb_src)]
    if recipe is not None and not all(floats):
        which = "--a" if not floats[0] else "--b"
        raise _data.DataError(f"{which}: --recipe quantizes float data; this file holds FP8 "
                              "codes (drop --recipe, or pass the float data)")
    need = sa_src.nbytes + sb_src.nbytes + stats_bytes(m, n, k) + 16 * m * n
    if any(floats):
        need += 13 * max(m * k, k * n)
    budget.check_memory(need, f"--a {sa_src} ({m}, {k}) x --b {sb_src} ({k}, {n})",
                        hint="use smaller matrices")
    x, w = _data.load(sa_src), _data.load(sb_src)
    info = {"dist": "file", "seed": None, "scale": scale if any(floats) else "codes",
            "a": str(sa_src), "b": str(sb_src)}
    case = {"mnk": (m, n, k), "info": info, "floats": None, "scale_a": None, "scale_b": None}
    if recipe is not None:
        return case | {"x": x, "w": w}
    fa, fb = a_format or "e4m3", b_format or "e4m3"
    if scale == "tensor" and any(floats):
        scaling = _kernel_scaling(kern) if kern is not None else "tensor"
        if scaling != "tensor" or scale_a is not None or scale_b is not None:
            raise _data.DataError(
                "--scale: tensor-scaled float data needs a kernel with a tensor epilogue "
                f"(e.g. --kernel cublaslt{'' if kern is None else f', not {kern.name}'}) and "
                "no --scale-a/--scale-b; pass codes with scale files for other epilogues")
    operands, scales = [], []
    for arr, fmt, is_float, option in ((x, fa, floats[0], "--a"), (w, fb, floats[1], "--b")):
        if is_float:
            q, s = _data.quantize_operand(arr, fmt, scale, option)
            operands.append(q)
            scales.append(s)
        else:
            operands.append(_data.as_float8(arr, fmt))
            scales.append(None)
    if scale_a is not None or scale_b is not None:
        scales = list(_scale_files(scale_a, scale_b))
    elif any(s is not None for s in scales):  # per-tensor quantized: the other scale is 1
        scales = [np.float32(1.0) if s is None else s for s in scales]
    if any(floats):
        case["floats"] = (np.asarray(x, np.float64), np.asarray(w, np.float64))
    return case | {"a": operands[0], "b": operands[1], "scale_a": scales[0],
                   "scale_b": scales[1]}


def _run_case(case: dict, kern, promote, preset, out_dtype) -> tuple[dict, np.ndarray]:
    """Runs fp8sim.gemm (or a named kernel) on the case's FP8 operands; (row, output)."""
    from fp8sim.analysis.stats import error_stats
    from fp8sim.analysis.studies import fro_rel_error

    a, b = case["a"], case["b"]
    sa, sb = case["scale_a"], case["scale_b"]
    m, n, k = case["mnk"]
    kw: dict = {}
    if sa is not None or sb is not None:
        kw |= {"scale_a": sa, "scale_b": sb}
    if out_dtype is not None:
        kw["out_dtype"] = out_dtype
    if kern is None:
        eff_promote = 0 if promote is None else promote
        step = preset if preset is not None else "hopper"
        run = functools.partial(gemm_api, promote=eff_promote, preset=step)
        if sa is not None and np.size(sa) == 1 and np.size(sb) == 1:
            kw["scaling"] = "tensor"
        grouped = sa is not None and np.ndim(sa) == 2 and np.shape(sa)[1] > 1
        ideal = functools.partial(gemm_api, promote=eff_promote if grouped else 0,
                                  preset="ideal")
        name = None
    else:
        eff_promote = getattr(kern, "promote", 0) if promote is None else promote
        step = preset if preset is not None else getattr(kern, "step", "hopper")
        if promote is not None:
            kw["promote"] = promote
        if preset is not None:
            kw["preset"] = preset
        scaling = _kernel_scaling(kern)
        if sa is None and scaling == "tensor":
            kw |= {"scale_a": np.float32(1.0), "scale_b": np.float32(1.0)}
        elif sa is None and scaling is not None:
            raise _data.DataError(f"--scale-a: kernel {kern.name} applies {scaling!r} scales; "
                                  "pass --scale-a and --scale-b (numbers or array files)")
        run = kern
        ideal = functools.partial(kern, preset="ideal")
        name = getattr(kern, "name", str(kern))
    with budget.stage("simulated GEMM"):
        t0 = time.perf_counter()
        out = run(a, b, **kw)
        seconds = time.perf_counter() - t0
    odt = _out_dtype_name(out)
    with budget.stage("exact product"):
        exact = _data.scaled_exact(a, b, kw.get("scale_a"), kw.get("scale_b"),
                                   promote=eff_promote or None)
    with budget.stage("statistics"):
        out32 = np.asarray(out, np.float32)
        stats = dict(error_stats(out32, exact))
        stats["fro_rel_error"] = fro_rel_error(out32, exact)
        if case["floats"] is not None:
            from fp8sim.analysis.stats import exact_product

            total = exact_product(*case["floats"])
            stats["total_max_rel_error"] = error_stats(out32, total)["max_rel_error"]
            stats["total_fro_rel_error"] = fro_rel_error(out32, total)
    if ideal is not None:
        with budget.stage("ideal GEMM"):
            try:
                ref = ideal(a, b, **{key: v for key, v in kw.items() if key != "preset"})
            except (TypeError, ValueError):
                ref = None
        if ref is not None:
            both_nan = np.isnan(out32) & np.isnan(np.asarray(ref, np.float32))
            differs = (_bits(out) != _bits(ref)) & ~both_nan
            stats["share_differs_from_ideal"] = float(differs.mean()) if out.size else 0.0
            stats["ideal_max_rel_error"] = error_stats(np.asarray(ref, np.float32),
                                                       exact)["max_rel_error"]
    info = case["info"]
    row = {"m": m, "n": n, "k": k, "promote": eff_promote,
           "a_format": _fmt_name(a), "b_format": _fmt_name(b), "preset": _step_name(step),
           "recipe": None, "kernel": name, "out_dtype": odt, **info, **stats,
           "seconds": seconds, "_scale_a": kw.get("scale_a"), "_scale_b": kw.get("scale_b")}
    return row, out


def _bits(x: np.ndarray) -> np.ndarray:
    """The raw bits of a float32 or 16-bit float array, as unsigned integers."""
    x = np.asarray(x)
    return x.view(np.uint32 if x.dtype.itemsize == 4 else np.uint16)


def _out_dtype_name(out: np.ndarray) -> str:
    """'float32', 'bfloat16' or 'float16'."""
    return {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}.get(
        np.asarray(out).dtype, "bfloat16")


def _fmt_name(x: np.ndarray) -> str:
    """The FP8 format an ml_dtypes float8 array carries ("e4m3")."""
    from fp8sim.formats.info import format_of_dtype

    f = format_of_dtype(np.asarray(x).dtype)
    return f.name if f is not None else "e4m3"


def _recipe_case(m, n, k, dist, a_format, b_format, seed, promote, preset, recipe
                 ) -> tuple[dict, np.ndarray]:
    """Runs fp8sim.recipes.pipeline.fp8_matmul on random float data; the gemm command's row."""
    rng = np.random.default_rng(seed)
    with budget.stage("random data"):
        if dist == "codes":
            x = decode(random_codes((m, k), a_format or "e4m3", dist, rng), a_format or "e4m3")
            w = decode(random_codes((k, n), b_format or "e4m3", dist, rng), b_format or "e4m3")
        else:
            draw = {"normal": lambda s: rng.standard_normal(s, dtype=np.float32),
                    "positive": lambda s: np.abs(rng.standard_normal(s, dtype=np.float32)),
                    "uniform": lambda s: rng.uniform(-1.0, 1.0, s).astype(np.float32)}[dist]
            x, w = draw((m, k)), draw((k, n))
    row, out = _recipe_run(x, w, a_format, b_format, promote, preset, recipe)
    return row | {"dist": dist, "seed": seed}, out


def _recipe_run(x, w, a_format, b_format, promote, preset, recipe) -> tuple[dict, np.ndarray]:
    """fp8_matmul of float data by a recipe, and its ideal-step twin; (row, output)."""
    try:
        from fp8sim.recipes.pipeline import RECIPES, fp8_matmul
    except ImportError:
        raise click.UsageError("--recipe: fp8sim.recipes.pipeline is not available") from None

    if recipe not in RECIPES:
        raise click.BadParameter(f"unknown recipe {recipe!r}; expected one of "
                                 f"{', '.join(RECIPES)}", param_hint="'--recipe'")
    changes = {}
    if promote is not None:
        changes["promote"] = promote
    if preset is not None:
        changes["preset"] = preset
    if a_format is not None:
        changes["x_format"] = a_format
    if b_format is not None:
        changes["w_format"] = b_format
    with budget.stage("simulated GEMM"):
        res = fp8_matmul(x, w, recipe, **changes)
    with budget.stage("ideal GEMM"):
        ideal = fp8_matmul(x, w, recipe, **(changes | {"preset": "ideal"}))
    out = np.asarray(res.out, np.float64)
    ref = np.asarray(ideal.out, np.float64)
    differs = (out != ref) & ~(np.isnan(out) & np.isnan(ref))
    r = res.recipe
    m, k = np.shape(x)
    n = np.shape(w)[1]
    row = {"m": m, "n": n, "k": k, "promote": r.promote, "a_format": r.x_format,
           "b_format": r.w_format,
           "preset": r.preset if isinstance(r.preset, str) else r.preset.name,
           "recipe": recipe, "kernel": None, "out_dtype": r.out_dtype, "dist": None,
           "scale": "recipe", "seed": None, **res.total,
           "quantization_max_rel_error": res.quantization["max_rel_error"],
           "accumulation_max_rel_error": res.accumulation["max_rel_error"],
           "share_differs_from_ideal": float(differs.mean()) if differs.size else 0.0,
           "ideal_max_rel_error": ideal.total["max_rel_error"],
           "seconds": res.seconds}
    return row, res.out


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
    if row.get("dist") == "file":
        data = f"data {row.get('a')} x {row.get('b')} ({row.get('scale')})"
    elif row.get("dist") is None:
        data = "data your floats"
    else:
        data = f"data {row['dist']}{_scale_note(row)} (seed {row['seed']})"
    name = f"{row['kernel']}: " if row.get("kernel") else ""
    out = f", {row['out_dtype']} out" if row.get("out_dtype", "float32") != "float32" else ""
    lines = [
        f"GEMM      M={row['m']} N={row['n']} K={row['k']}  A {row['a_format']} x "
        f"B {row['b_format']}  {data}",
        f"kernel    {name}preset {row['preset']}{recipe}, FP32 promotion {promote}{out}",
        f"rel error max {row['max_rel_error']:.3e}  mean {row['mean_rel_error']:.3e}  "
        f"median {row['median_rel_error']:.3e}  normwise {row['fro_rel_error']:.3e}  "
        f"(vs exact product)",
        f"ULP error mean {row['mean_ulp_error']:.4g}  max {row['max_ulp_error']:.4g}  "
        f"(ULPs of float32(exact))",
    ]
    if "share_differs_from_ideal" in row:
        ideal = "the kernel with the ideal step" if row.get("kernel") else \
            "sequential FP32 accumulation"
        lines.append(f"vs ideal  {_share(row['share_differs_from_ideal'], row['m'] * row['n'])} "
                     f"differ from {ideal} (its max rel error {row['ideal_max_rel_error']:.3e})")
    if "total_fro_rel_error" in row:
        lines.append(f"total     vs your float data (quantization included): max rel "
                     f"{row['total_max_rel_error']:.3e}, normwise {row['total_fro_rel_error']:.3e}")
    if row.get("nonfinite_outputs"):
        lines.append(f"nonfinite {row['nonfinite_outputs']} outputs (left out of the stats)")
    if row.get("recipe"):
        lines.append(f"split     quantization max rel {row['quantization_max_rel_error']:.3e}"
                     f", accumulation max rel {row['accumulation_max_rel_error']:.3e}")
    if row.get("out"):
        lines.append(f"output    written to {row['out']} ({row.get('out_dtype', 'float32')})")
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
    prefix = Path(out)
    if prefix.suffix in (".csv", ".png"):
        prefix = prefix.with_suffix("")
    for p in promotes:
        if p < 0 or p % 32:
            raise click.BadParameter(f"expected 0 or a positive multiple of 32, got {p}",
                                     param_hint="'--promote'")
    step = _step(preset, frac_bits)
    pairs = [(fa.lower(), fb.lower()) for fa in a_formats for fb in b_formats]
    grid = sweep_grid(k_values, m=m, n=n, promotes=promotes, dists=dists, formats=pairs,
                      scale=scale, seed=seed, preset=step, engine=engine)
    with _usage_errors():
        _check_request(m, n, max(k_values), None, "choose smaller --m, --n or --k-values")
    if engine == "gpu" and scheduler is None:  # (a cluster's workers may have GPUs)
        with _usage_errors():
            from fp8sim.engine import _gpu

            _gpu.check()
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.FileError(str(prefix.parent), hint=e.strerror) from None
    weights = {_grid_label(point): sum(stage_weights(m, n, point.k, step).values())
               for point in grid}
    t0 = time.perf_counter()
    with _usage_errors(), _dask_client(scheduler) as client, \
            budget.Progress("fp8sim sweep", weights):
        if client is None:
            rows = []
            for point in grid:
                with budget.stage(_grid_label(point)):
                    rows.append(sweep_point(point))
        else:  # each finished task closes its stage of the bar
            rows = run_sweep(grid, client=client, on_done=_stage_done)
    csv_path = prefix.parent / f"{prefix.name}.csv"
    png_path = prefix.parent / f"{prefix.name}.png"
    try:
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        if x_axis == "auto":
            x_axis = "promote" if len(set(k_values)) == 1 and len(set(promotes)) > 1 else "k"
        from fp8sim.analysis.plots import save_figure

        save_figure(_plot_sweep(rows, metric, x_axis), png_path)
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
    from fp8sim.analysis.distributed import connect

    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(connect(scheduler))
        except (ImportError, ValueError, OSError, RuntimeError) as e:  # incl. timeouts
            raise click.BadParameter(_one_line(str(e)), param_hint="'--scheduler'") from None
        yield client


def _plot_sweep(rows: list[dict], metric: str = "fro_rel_error", x_axis: str = "k"):
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
    click.echo("\nKernels (fp8sim.KERNELS; fp8sim gemm --kernel NAME runs one):")
    for k in KERNELS.values():
        promote = f"promote {k.promote}" if k.promote else "no promotion"
        check = f"verified on {k.device}" if k.verified else "not verified"
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
