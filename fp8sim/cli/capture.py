"""`fp8sim capture` and `fp8sim verify`: record FP8 GEMMs on a GPU, replay them on the CPU.

Standalone click commands (`capture_cmd`, `verify_cmd`) that the main `fp8sim` group
registers. Argument errors exit with status 2 and one line on stderr; `verify` exits 1
when an output that fp8sim claims to reproduce does not match bit for bit.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import click

from fp8sim.capture.cases import GROUPS
from fp8sim.capture.run import capture
from fp8sim.capture.verify import verify
from fp8sim.cli.errors import OneLineErrors, fail

__all__ = ["capture_cmd", "verify_cmd"]


@click.command("capture", cls=OneLineErrors,
               short_help="Captures FP8 GEMMs on an NVIDIA GPU into .npz files.")
@click.option("--out", "out_dir", default="capture", show_default=True,
              type=click.Path(file_okay=False), help="Folder for capture_<group>.npz files.")
@click.option("--group", "groups", multiple=True, type=click.Choice(list(GROUPS)),
              help="Case group to capture (repeatable; default: all).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the inputs.")
@click.option("--no-conversions", is_flag=True, help="Skip float32 -> FP8 conversions.")
@click.option("--deepgemm-src", type=click.Path(file_okay=False, exists=True), default=None,
              help="DeepGEMM source tree (JIT era, CUTLASS headers in deep_gemm/include) for "
                   "the deepgemm group and DeepGEMM's casts.")
def capture_cmd(out_dir, groups, seed, no_conversions, deepgemm_src):
    """Runs FP8 GEMMs and conversions on an NVIDIA GPU and saves inputs and outputs.

    Writes one .npz per case group in the layout `fp8sim verify` reads. Without a CUDA
    GPU, torch and triton it prints one line and exits 0. The real-stack groups (blockwise,
    blockwise-long, blockwise-ds, casts, layers, deepgemm) also need torchao (and DeepGEMM).
    """
    capture(out_dir, list(groups) or None, seed=seed, conversions=not no_conversions,
            log=lambda line: click.echo(line), deepgemm_src=deepgemm_src)


@click.command("verify", cls=OneLineErrors,
               short_help="Replays a capture; agreement per kernel family.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--identify", "run_identify", is_flag=True,
              help="For each output that does not match, search promotion intervals and "
                   "split-K (fp8sim.identify, search='split') and print the best candidate.")
@click.option("--quiet", is_flag=True, help="Only the per-family table and totals.")
def verify_cmd(file, run_identify, quiet):
    """Replays a capture file through fp8sim and prints agreement per kernel family.

    Exits 1 if an output fp8sim is expected to reproduce differs in any bit.
    """
    path = Path(file)
    if not path.is_file():
        fail(f"FILE: no such file {file!r}")
    try:
        stats, results = verify(path)
    except (zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
        fail(f"FILE: not a readable capture: {e}")
    if not stats:
        fail(f"FILE: {file!r} holds no GEMM outputs or conversions")
    bad = [r for r in results if not r.exact]
    if not quiet:
        for r in bad:
            tag = "expected mismatch" if r.expected_mismatch else "MISMATCH"
            click.echo(f"{tag}: {r.case}/{r.output}: {r.matched}/{r.total} bits agree")
        for fam, s in stats.items():
            if fam.startswith("convert") and s.mismatching:
                for key in s.mismatching:
                    click.echo(f"MISMATCH: {key}")
    click.echo(f"{'family':<26} {'outputs':>7} {'exact':>6} {'elements agreeing':>22}")
    n_out = n_exact = n_match = n_total = 0
    failed = False
    for fam in sorted(stats):
        s = stats[fam]
        note = f"  ({s.expected_mismatch} expected mismatch)" if s.expected_mismatch else ""
        click.echo(f"{fam:<26} {s.outputs:>7} {s.exact:>6} "
                   f"{s.matched:>10}/{s.total:<11}{note}")
        n_out, n_exact = n_out + s.outputs, n_exact + s.exact
        n_match, n_total = n_match + s.matched, n_total + s.total
        failed = failed or bool(s.mismatching)
    share = n_match / n_total if n_total else 1.0
    click.echo(f"total: {n_exact}/{n_out} outputs exact, {n_match}/{n_total} elements "
               f"({100 * share:.4f}%)")
    if run_identify:
        _identify_mismatches(path, bad)
    if failed:
        raise click.exceptions.Exit(1)


def _identify_mismatches(path: Path, bad: list) -> None:
    """Runs fp8sim.identify(search='split') on every output that did not match."""
    from fp8sim.analysis.identify import identify
    from fp8sim.capture.golden import load_cases, output_spec
    cases = {c.key: c for c in load_cases(path)}
    for r in bad:
        case = cases[r.case]
        kw = output_spec(case, r.output) or {}
        d = case.arrays[r.output]
        out = kw.get("out_dtype", "float32")
        args = {k: kw[k] for k in ("a_format", "b_format", "c", "scale_a", "scale_b",
                                   "scaling") if k in kw}
        try:
            res = identify(case.a, case.b, d, out_dtype=out, search="split", **args)
        except (ValueError, TypeError) as e:
            click.echo(f"identify {r.case}/{r.output}: not run: {e}")
            continue
        click.echo(f"identify {r.case}/{r.output}: best {res['label']} "
                   f"(promote {res['promote']}, slices {res['slices']}), match "
                   f"{res['match']:.6f}; equivalent: {', '.join(res['equivalent'][:4])}; "
                   f"{res['seconds']:.0f} s")


main = click.Group("fp8sim", commands=[capture_cmd, verify_cmd],
                   help="Capture FP8 GEMMs on a GPU and verify them against fp8sim.")
"""A group of the two commands, for ``python3 -m fp8sim.capture``."""
