"""The text summary `fp8sim gemm` prints for one row (without --json or --csv)."""

from __future__ import annotations

__all__ = ["summary"]


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


_SOURCE = {"user": "set by --slices", "table": "cuBLASLt's recorded choice for this shape",
           "dense": "cuBLASLt's recorded choice for this shape (dense recording)",
           "rule": "cuBLASLt's recorded rule: short K or a large output is never split",
           "captured": "the kernel's captured split table",
           "never": "this kernel never splits K",
           "unrecorded": "never recorded for this kernel on this card: one chain assumed"}
"""Where a kernel run's split count came from (`fp8sim.engine.split_choice.split_choice`)."""


def _split(row: dict) -> str:
    """'6 slices of K on the H100 (cuBLASLt's recorded choice for this shape)'."""
    count = row.get("slices")
    what = "K in 1 slice (no split)" if count == 1 else f"K in {count} slices"
    return f"{what} on the {row.get('gpu')} ({_SOURCE.get(row['split'], row['split'])})"


def summary(row: dict, notes: list[str] = ()) -> str:
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
    if row.get("split"):
        lines.append(f"slices    {_split(row)}")
    lines += [f"note      {note}" for note in notes]
    if row.get("out"):
        lines.append(f"output    written to {row['out']} ({row.get('out_dtype', 'float32')})")
    lines.append(f"time      {row['gemm_seconds']:.3f} s simulated GEMM, "
                 f"{row['seconds']:.2f} s in all")
    return "\n".join(lines)
