"""Replaying a capture: bit agreement per kernel family of every output fp8sim reproduces.

`verify(path)` replays a capture file's GEMM outputs through `fp8sim.capture.golden.replay`
and its float32 -> FP8 conversions through `fp8sim.encode`, and counts agreement per output
family (`family`); `fp8sim verify` prints it. Needs numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fp8sim.formats.convert import encode
from fp8sim.formats.info import format_info

__all__ = ["verify", "family", "FamilyStats"]


def family(name: str) -> str:
    """The family an output is counted in: 'triton_p128', 'triton_scaled',
    'cublas_fast_f16_scaled', 'rowwise_slow_bf16', ..."""
    if name.startswith("triton_scaled"):
        return "triton_scaled"
    if name.startswith("triton_p"):
        return name
    parts = name.split("_")
    if parts[0] == "cublas":
        return "cublas_" + parts[1] + "_" + parts[2] + ("_scaled" if name.endswith("scaled")
                                                      else "")
    return name


@dataclass
class FamilyStats:
    """Agreement of one output family (e.g. "cublas_fast_f16") over a capture."""

    outputs: int = 0
    exact: int = 0
    matched: int = 0
    total: int = 0
    expected_mismatch: int = 0
    mismatching: list[str] = field(default_factory=list)
    """Keys of outputs that should match and do not."""


def _conversion_results(arrays: dict[str, np.ndarray]) -> Iterator[tuple[str, int, int]]:
    """(name, matched, total) of each captured conversion against `fp8sim.encode`.

    NaN results compare as "any NaN code" (torch keeps the sign; the CUDA intrinsic
    returns 0x7F for E5M2 and for E4M3 with SATFINITE)."""
    x = arrays["x"]
    for name, got in arrays.items():
        if name == "x" or not (name.startswith("torch_") or name.startswith("cuda_")):
            continue
        parts = name.split("_")
        fmt = parts[1]
        sat = len(parts) > 2 and parts[2] == "sat"
        want = encode(x, fmt, saturate=sat)
        info = format_info(fmt)
        nan_codes = np.array(info.nan_codes, np.uint8)
        both_nan = np.isin(want, nan_codes) & np.isin(got, nan_codes)
        ok = (want == got) | both_nan
        yield name, int(ok.sum()), int(ok.size)


def verify(path: str | Path, *, gemm: Callable | None = None
           ) -> tuple[dict[str, FamilyStats], list]:
    """Replays a capture through `fp8sim.capture.golden.replay`; agreement per output family.

    Returns:
        ({family: FamilyStats}, [ReplayResult of every output]). Conversions (top-level
        ``x``, ``torch_*``, ``cuda_*``) count as families "convert_torch", "convert_cuda".
    """
    from fp8sim.capture.golden import Case, load_cases, replay
    cases = load_cases(path)
    gemm_cases: list[Case] = []
    stats: dict[str, FamilyStats] = {}
    results = []
    for case in cases:
        if "A" in case.arrays and "B" in case.arrays:
            gemm_cases.append(case)
        elif "x" in case.arrays:
            for name, matched, total in _conversion_results(case.arrays):
                fam = stats.setdefault("convert_" + name.split("_")[0], FamilyStats())
                fam.outputs += 1
                fam.exact += matched == total
                fam.matched += matched
                fam.total += total
                if matched != total:
                    fam.mismatching.append(f"{case.key + '/' if case.key else ''}{name}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow cases are on purpose
        replayed = list(replay(gemm_cases, gemm=gemm))
    for r in replayed:
        results.append(r)
        fam = stats.setdefault(family(r.output), FamilyStats())
        fam.outputs += 1
        fam.exact += r.exact
        fam.matched += r.matched
        fam.total += r.total
        if r.expected_mismatch:
            fam.expected_mismatch += 1
        elif not r.exact:
            fam.mismatching.append(f"{r.case}/{r.output}")
    return stats, results
