"""The operands `fp8sim gemm` runs on: a random case, or the user's files and scales.

Each function returns a `Case`: FP8 operands (ml_dtypes float8 arrays, which carry their
format), their scales, the float data before quantization (for the total error) and the
description of the data that goes into the output row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fp8sim.analysis.measure import kernel_scaling
from fp8sim.analysis.studies import random_case, random_floats, stats_bytes
from fp8sim.cli import data as _data
from fp8sim.engine import budget
from fp8sim.formats.convert import decode

__all__ = ["Case", "random_operands", "file_operands", "scale_options", "recipe_floats"]


@dataclass
class Case:
    """The operands of one gemm run and how they came about."""

    mnk: tuple[int, int, int]
    info: dict
    """The row's data description: dist, seed, scale (and the files a, b)."""
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    scale_a: object = None
    scale_b: object = None
    floats: tuple[np.ndarray, np.ndarray] | None = None
    """The float data (float64) before quantization, for the total error."""
    x: np.ndarray | None = None
    """Float data a recipe quantizes itself (with `w`)."""
    w: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def scale_options(scale_a: str | None, scale_b: str | None) -> tuple[object, object, list[str]]:
    """--scale-a / --scale-b as float32 numbers or loaded float arrays, and notes on numbers
    rounded to float32."""
    out, notes = [], []
    for text, option, names in ((scale_a, "--scale-a", ("scale_a", "sa")),
                                (scale_b, "--scale-b", ("scale_b", "sb"))):
        src, value = _data.parse_scale(text, option, names)
        if src is not None:
            value = _data.load(src)
            if value.dtype.kind != "f":
                raise _data.DataError(f"{option}: expected float32 scales, {src} has dtype "
                                      f"{value.dtype}")
        note = _data.rounded_note(text, value, option)
        if note:
            notes.append(note)
        out.append(value)
    return out[0], out[1], notes


def random_operands(m: int, n: int, k: int, dist: str, a_format: str | None,
                    b_format: str | None, seed: int, scale: str) -> Case:
    """A random case (`fp8sim.analysis.studies.random_case`) as float8 operands."""
    fa, fb = a_format or "e4m3", b_format or "e4m3"
    a, b = random_case(m, n, k, dist=dist, a_format=fa, b_format=fb, seed=seed, scale=scale)
    return Case((m, n, k), {"dist": dist, "scale": scale, "seed": seed},
                a=_data.as_float8(a, fa), b=_data.as_float8(b, fb))


def recipe_floats(m: int, n: int, k: int, dist: str, a_format: str | None,
                  b_format: str | None, seed: int) -> Case:
    """Random float data (A drawn before B) for a recipe to quantize."""
    rng = np.random.default_rng(seed)
    with budget.stage("random data"):
        if dist == "codes":
            from fp8sim.analysis.studies import random_codes

            fa, fb = a_format or "e4m3", b_format or "e4m3"
            x = decode(random_codes((m, k), fa, dist, rng), fa)
            w = decode(random_codes((k, n), fb, dist, rng), fb)
        else:
            x, w = random_floats((m, k), dist, rng), random_floats((k, n), dist, rng)
    return Case((m, n, k), {"dist": dist, "scale": "recipe", "seed": seed}, x=x, w=w)


def file_operands(a_path, b_path, a_format, b_format, scale, recipe, kern,
                  scale_a, scale_b) -> Case:
    """Peeks at --a and --b, checks the memory, loads and (for floats) quantizes them."""
    sa_src = _data.peek(a_path, "--a", ("A", "a"))
    sb_src = _data.peek(b_path, "--b", ("B", "b"))
    for src in (sa_src, sb_src):
        _data.check_operand(src)
    (m, k), (k2, n) = sa_src.shape, sb_src.shape
    if k2 != k:
        raise _data.DataError(f"--b: expected shape ({k}, N) to match A's K = {k}, "
                              f"{sb_src} has shape {sb_src.shape}")
    if 0 in (m, n, k):
        which = "--a" if 0 in (m, k) else "--b"
        raise _data.DataError(f"{which}: expected a non-empty matrix, shapes A {sa_src.shape} "
                              f"x B {sb_src.shape}")
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
    if recipe is not None:
        for option, v in (("--a", x), ("--b", w)):
            with np.errstate(over="ignore"):
                finite = np.all(np.isfinite(np.asarray(v, np.float32)))
            if not finite:
                raise _data.DataError(f"{option}: the float data holds NaN or Inf (or values "
                                      "beyond float32), which would poison a block's scale; "
                                      "a recipe needs finite data")
        return Case((m, n, k), {"dist": "file", "scale": "recipe", "seed": None,
                                "a": str(sa_src), "b": str(sb_src)}, x=x, w=w)
    info = {"dist": "file", "seed": None, "scale": scale if any(floats) else "codes",
            "a": str(sa_src), "b": str(sb_src)}
    case = Case((m, n, k), info)
    fa, fb = a_format or "e4m3", b_format or "e4m3"
    if scale == "tensor" and any(floats):
        scaling = kernel_scaling(kern) if kern is not None else "tensor"
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
        sa, sb, case.notes = scale_options(scale_a, scale_b)
        scales = [sa, sb]
    elif any(s is not None for s in scales):  # per-tensor quantized: the other scale is 1
        scales = [np.float32(1.0) if s is None else s for s in scales]
    if any(floats):
        case.floats = (np.asarray(x, np.float64), np.asarray(w, np.float64))
    case.a, case.b = operands
    case.scale_a, case.scale_b = scales
    return case
