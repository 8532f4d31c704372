"""`fp8sim splits`: the batch sizes over which a kernel keeps one split of K (batch invariance).

A row of an FP8 GEMM keeps its bits when the batch size M changes exactly while the
library keeps its split of K (the only M-dependent part of the arithmetic fp8sim models);
this command lists the M ranges of one split for an (N, K) on a card
(`fp8sim.engine.split_choice.splits`, from `fp8sim.engine.cublaslt_splits`) and where rows
change bits with the batch size.
"""

from __future__ import annotations

import json

import click

from fp8sim.cli.errors import cli_message
from fp8sim.engine.cublaslt_splits import FAMILIES, GPUS, RANGE, card_info
from fp8sim.engine.split_choice import library_split, splits_text
from fp8sim.engine.split_choice import splits as split_ranges

__all__ = ["splits"]


def _message(e: Exception) -> str:
    """An API error as this command's one line (the way out is gemm's --slices)."""
    text = cli_message(str(e)).replace("pass --slices N", "fp8sim gemm --slices N runs a "
                                       "split of your choice")
    return "--kernel: " + text[len("family: "):] if text.startswith("family: ") else text


@click.command(short_help="Batch invariance: the M ranges with one split of K (same bits).")
@click.option("--kernel", required=True, metavar="NAME",
              help="A kernel of fp8sim.KERNELS (cublaslt-fast, cublaslt, torch-rowwise[-fast], "
                   "cublaslt-blockwise, or one that never splits: deepgemm, triton, ...) or a "
                   f"cuBLASLt family ({', '.join(FAMILIES)}).")
@click.option("--n", type=int, required=True, help="Columns of the output (torch's N).")
@click.option("--k", type=int, required=True, help="Inner dimension K.")
@click.option("--gpu", type=click.Choice(GPUS), default="H100", show_default=True,
              help="The card whose recorded split-K choice to list.")
@click.option("--m-max", "m_max", type=int, default=RANGE["m"][1], show_default=True,
              help="The largest batch size M listed.")
@click.option("--out-dtype", type=click.Choice(("float32", "bfloat16")), default="float32",
              show_default=True, help="Output type (cuBLASLt splits 16-bit outputs apart).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def splits(kernel, n, k, gpu, m_max, out_dtype, as_json):
    """Lists the batch sizes M over which KERNEL keeps one split of K for N x K on GPU.

    Within one range a row's bits do not depend on how many other rows the batch has;
    across a range boundary they may change (cuBLASLt cuts K into another number of
    slices). "not recorded": the library's choice there was never read; `fp8sim gemm
    --kernel NAME --slices S` runs a split of your choice. Kernels that never split K
    (DeepGEMM, Triton) print one range.
    """
    try:
        ranges = split_ranges(kernel, n, k, gpu, m_max, out_dtype=out_dtype)
        text = splits_text(kernel, n, k, gpu, m_max, out_dtype=out_dtype)
    except (ValueError, TypeError) as e:
        raise click.UsageError(_message(e)) from None
    if not as_json:
        click.echo(text.replace("(pass slices=)", "(fp8sim gemm --slices N runs one)"))
        return
    click.echo(json.dumps({
        "kernel": kernel, "n": n, "k": k, "gpu": gpu, "m_max": m_max, "out_dtype": out_dtype,
        "library": card_info(gpu) if library_split(kernel) else None,
        "ranges": [{"m_lo": lo, "m_hi": hi, "slices": s} for lo, hi, s in ranges],
        "changes_at": [lo for lo, _, _ in ranges[1:]],
        "batch_invariant": None if len(ranges) == 1 and ranges[0][2] is None
        else len(ranges) == 1}))
