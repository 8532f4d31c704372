"""`fp8sim identify`: which promotion interval (and MMA step) explains a kernel's saved output.

A standalone click command (`identify_cmd`) that the main `fp8sim` group registers.
It reads either a plain ``.npz`` with arrays ``A`` (M, K uint8 codes), ``B`` (K, N) and
``D`` (the kernel's output; optional ``C``, ``scale_a``, ``scale_b``), or a capture file
(`fp8sim.golden` layout) and a ``--key`` naming one output
("e4m3_e4m3/normal/K4096/cublas_slow_f32") or a whole case ("e4m3_e4m3/normal/K4096").
Errors exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import click
import numpy as np

from fp8sim.analysis.identify import SEARCHES, identify
from fp8sim.analysis.stats import percent
from fp8sim.capture.golden import Case, load_cases, open_npz, output_spec
from fp8sim.cli.errors import OneLineErrors, fail

__all__ = ["identify_cmd"]

_FORMATS = ("e4m3", "e5m2")
_OUT_DTYPES = ("float32", "bfloat16", "float16")


@click.command("identify", cls=OneLineErrors,
               short_help="Finds the promotion interval (or accumulator) of a kernel.")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--a", "a_path", default=None, metavar="FILE",
              help="Instead of FILE: A (M, K) uint8 codes from FILE.npy (or FILE.npz[:NAME]).")
@click.option("--b", "b_path", default=None, metavar="FILE", help="B (K, N), as --a.")
@click.option("--d", "d_path", default=None, metavar="FILE",
              help="The kernel's output D (M, N): float32, float16, or uint16 bits with "
                   "--out-dtype.")
@click.option("--key", default=None,
              help="In a capture file: an output ('<fa>_<fb>/<dist>/K<k>/<name>') or a case "
                   "prefix (every output of the case).")
@click.option("--a-format", type=click.Choice(_FORMATS), default=None,
              help="Format of A (plain files; default e4m3; capture keys give it).")
@click.option("--b-format", type=click.Choice(_FORMATS), default=None,
              help="Format of B (as --a-format).")
@click.option("--out-dtype", type=click.Choice(_OUT_DTYPES), default=None,
              help="Type of D; needed when D holds raw uint16 bits.")
@click.option("--search", type=click.Choice(SEARCHES), default="promote", show_default=True,
              help="'promote': promotion intervals; 'full': also accumulator fractional bits, "
                   "terms per fused sum and the ideal/exact presets.")
@click.option("--promotes", default=None,
              help="Comma-separated promotion intervals to try instead of the default sweep.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="Candidates shown per output (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def identify_cmd(file, a_path, b_path, d_path, key, a_format, b_format, out_dtype, search,
                 promotes, top, as_json):
    """Finds the promotion interval that reproduces a kernel's output bit for bit.

    FILE is an .npz with arrays A, B, D (optional C, scale_a, scale_b, out_dtype; what
    'fp8sim gemm --out FILE.npz' writes), or a capture file with --key; or give the
    arrays as --a, --b and --d files. Prints every candidate tried with the share of
    outputs it reproduces; says so when none reproduces them all.
    """
    plist = _parse_promotes(promotes)
    if file is None:
        jobs = _file_jobs(a_path, b_path, d_path, a_format, b_format, out_dtype)
    elif a_path or b_path or d_path:
        fail("FILE: give either FILE or --a, --b and --d, not both")
    else:
        jobs = _jobs(Path(file), key, a_format, b_format, out_dtype)
    results = []
    for name, args, kwargs in jobs:
        try:
            r = identify(*args, search=search, promotes=plist, **kwargs)
        except (ValueError, TypeError) as e:
            fail(_blame(name, str(e), (a_path, b_path, d_path) if file is None else None))
        results.append((name, r))
    if as_json:
        payload = [{"output": n} | r for n, r in results]
        click.echo(json.dumps(payload[0] if len(payload) == 1 else payload))
        return
    for i, (name, r) in enumerate(results):
        if i:
            click.echo("")
        click.echo(_table(name, r, top))


def _blame(name: str, message: str, paths: tuple | None) -> str:
    """identify's error, naming the --a/--b/--d option whose file it is about."""
    arg, sep, rest = message.partition(": ")
    if paths is not None and sep and arg in ("a", "b", "d"):
        return f"--{arg}: {Path(dict(zip('abd', paths, strict=True))[arg]).name}: {rest}"
    return f"{name}: {message}"


def _parse_promotes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        fail(f"--promotes: expected comma-separated integers, got {text!r}")
    if not values or any(v < 0 or v % 32 for v in values):
        fail(f"--promotes: expected 0 or positive multiples of 32, got {text!r}")
    return values


def _file_jobs(a_path, b_path, d_path, a_format, b_format, out_dtype
               ) -> list[tuple[str, tuple, dict]]:
    """The one job of --a, --b and --d files."""
    from fp8sim.cli import data

    missing = [opt for opt, v in (("--a", a_path), ("--b", b_path), ("--d", d_path)) if not v]
    if missing:
        fail(f"{missing[0]}: name the kernel's inputs and output as --a, --b and --d "
             "(or give one .npz FILE)")
    arrays = []
    try:
        for spec, opt, names in ((a_path, "--a", ("A", "a")), (b_path, "--b", ("B", "b")),
                                 (d_path, "--d", ("D", "d"))):
            arrays.append(data.load(data.peek(spec, opt, names)))
    except data.DataError as e:
        fail(str(e))
    kw = {"a_format": a_format, "b_format": b_format, "out_dtype": out_dtype}
    return [(Path(d_path).name, tuple(arrays), kw)]


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        fail(f"FILE: {path} does not exist")
    try:
        with open_npz(path) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        fail(f"FILE: {e}; identify reads A, B and D saved with np.savez, or --a/--b/--d")
    except (OSError, zipfile.BadZipFile) as e:
        fail(f"FILE: cannot read {path} as .npz ({e})")


def _jobs(path: Path, key, a_format, b_format, out_dtype) -> list[tuple[str, tuple, dict]]:
    """(name, (a, b, d), identify keywords) for every output to identify."""
    arrays = _load(path)
    plain = {k.upper() if k in ("a", "b", "c", "d") else k: v for k, v in arrays.items()}
    if key is None and {"A", "B", "D"} <= plain.keys():
        saved = str(plain["out_dtype"]) if "out_dtype" in plain else None
        kw = {"a_format": a_format or "e4m3", "b_format": b_format or "e4m3",
              "out_dtype": out_dtype or saved, "c": plain.get("C"),
              "scale_a": plain.get("scale_a"), "scale_b": plain.get("scale_b")}
        return [(path.name, (plain["A"], plain["B"], plain["D"]), kw)]
    if key is None:
        sample = ", ".join(list(arrays)[:3])
        lacking = ", ".join(sorted({"A", "B", "D"} - plain.keys()))
        fail(f"--key: {path.name} has no {lacking} array; name an output of the capture "
              f"(e.g. {sample}; {len(arrays)} arrays)")
    cases = {c.key: c for c in load_cases(path)}
    key = key.strip("/")
    if key in cases:
        case = cases[key]
        names = case.outputs
    else:
        prefix, _, name = key.rpartition("/")
        if prefix not in cases or name not in cases[prefix].outputs:
            fail(f"--key: {key!r} is neither an output nor a case in {path.name}")
        case, names = cases[prefix], [name]
    if not names:
        fail(f"--key: case {case.key!r} has no outputs")
    return [(f"{case.key}/{n}", (case.a, case.b, case.arrays[n]),
             _case_kwargs(case, n, a_format, b_format, out_dtype)) for n in names]


def _case_kwargs(case: Case, name: str, a_format, b_format, out_dtype) -> dict:
    """identify keywords for a captured output: its C, scales and output type, not its promote."""
    spec = output_spec(case, name) or {"a_format": case.a_format, "b_format": case.b_format,
                                       "c": case.arrays.get("C")}
    kw = {k: v for k, v in spec.items() if k not in ("promote", "preset")}
    if a_format:
        kw["a_format"] = a_format
    if b_format:
        kw["b_format"] = b_format
    if out_dtype:
        kw["out_dtype"] = out_dtype
    return kw


def _table(name: str, r: dict, top: int) -> str:
    """The candidates of one identification as text, best first, and the verdict."""
    lines = [f"{name}: M={r['m']} N={r['n']} K={r['k']}, {r['out_dtype']} output, "
             f"search={r['search']}",
             f"  {'rank':>4}  {'candidate':<34}{'frac_bits':>9}{'terms':>6}{'match':>10}"
             f"{'rows':>6}"]
    cands = r["candidates"] if top == 0 else r["candidates"][:top]
    for i, c in enumerate(cands, 1):
        frac = "-" if c["frac_bits"] is None else str(c["frac_bits"])
        lines.append(f"  {i:>4}  {c['label']:<34}{frac:>9}{c['terms']:>6}"
                     f"{percent(c['match'], 3):>9.3f}%{c['rows']:>6}")
    if any(c["rows"] < r["m"] for c in cands):
        lines.append("  (match on fewer rows than M: scored on those evenly spaced rows only)")
    if len(cands) < len(r["candidates"]):
        lines.append(f"  ... {len(r['candidates']) - len(cands)} more (--top 0 shows all)")
    verdict = "explained" if r["explained"] else "NOT explained"
    lines.append(f"{verdict}: {r['note']} [{r['seconds']:.2f} s]")
    return "\n".join(lines)
