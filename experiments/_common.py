"""Shared helpers of the numbered studies: result paths, CSV output, error stats, golden checks.

Not a study itself (run_all.py runs only the numbered scripts).
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

import fp8sim
from fp8sim.analysis.scales import scaled_exact as _scaled_exact
from fp8sim.analysis.stats import error_stats, normwise_error
from fp8sim.capture.golden import load_cases, output_spec

RESULTS = Path(__file__).resolve().parent / "results"
GOLDEN = Path(os.environ.get("FP8SIM_GOLDEN") or
              Path(__file__).resolve().parents[2] / "shared" / "golden")
"""The full H100 captures: ../shared/golden beside the checkout, or $FP8SIM_GOLDEN."""
GOLDEN_CROPPED = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden"
"""Committed copies of the captures with fewer outputs (6 x 6), used when GOLDEN is absent."""
H100_ERRORS = RESULTS / "h100_errors.csv"
"""The H100's own error statistics of every full capture a study checks, recorded where
GOLDEN is present, so that a checkout without it (a fresh clone) draws the same stars and
writes the same figures: `make experiments` leaves `git status` clean either way."""
_H100_FIELDS = ("file", "key", "output", "m", "n", "k", "h100_max_rel_error",
                "h100_mean_rel_error", "h100_fro_rel_error")


def results_path(study: str, suffix: str, out_dir: Path | None = None) -> Path:
    """experiments/results/<study><suffix> (or under `out_dir`), creating the folder."""
    d = Path(out_dir) if out_dir is not None else RESULTS
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{study}{suffix}"


def write_csv(rows: Sequence[Mapping], path: Path) -> None:
    """Writes rows (dicts with the same keys) as CSV; floats with 6 significant digits.

    A "seconds" column is left out, so regenerated results differ only where numbers do.
    """
    keys = [k for k in rows[0] if k != "seconds"]  # timings would make every rerun a diff
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()
                        if k in keys})


def stats(out: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """error_stats plus fro_rel_error = ||out - exact||_F / ||exact||_F (finite outputs)."""
    return dict(error_stats(out, exact)) | {"fro_rel_error": normwise_error(out, exact)}


def rel_errors(out: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Per-output relative errors |out - exact| / |exact| over outputs with exact != 0."""
    o, e = np.asarray(out, np.float64), np.asarray(exact, np.float64)
    ok = np.isfinite(o) & np.isfinite(e) & (e != 0)
    return np.abs(o - e)[ok] / np.abs(e[ok])


def scaled_exact(a: np.ndarray, b: np.ndarray, a_format: str, b_format: str, kw: dict,
                 c: np.ndarray | None = None) -> np.ndarray:
    """The exact (float64) value of a scaled GEMM given its fp8sim.gemm keywords `kw`
    (`fp8sim.analysis.scales.scaled_exact`: group scales cover `promote` elements of K)."""
    return _scaled_exact(a, b, kw.get("scale_a"), kw.get("scale_b"), promote=kw.get("promote"),
                         scaling=kw.get("scaling"), a_format=a_format, b_format=b_format, c=c)


def golden_check(file: str, key: str, output: str, **gemm_changes) -> dict | None:
    """Replays one captured H100 output with fp8sim.gemm and asserts it matches bit for bit.

    Args:
        file: capture file name under ../shared/golden (e.g. "gemm_public0.npz"); when
            that folder is absent, the cropped copy in tests/data/golden (fewer outputs,
            so the H100's error statistics are over those outputs only).
        key: case key ("e4m3_e4m3/positive/K4096").
        output: captured output name ("triton_p0").
        **gemm_changes: extra keywords for fp8sim.gemm (e.g. preset=...).

    Returns:
        None when no copy of the capture is present, else {"case", "output", "shape",
        "cropped", "bits_equal",
        "h100_max_rel_error", "h100_mean_rel_error", "h100_fro_rel_error"}: the error of
        the H100's own output against the exact product of its inputs, over the full
        capture: computed where it is present (and recorded in H100_ERRORS), else as
        recorded there (the cropped copy's own when not recorded).

    Raises:
        AssertionError: the simulation differs from the H100 in any bit.
    """
    path, cropped = GOLDEN / file, False
    if not path.exists():
        path, cropped = GOLDEN_CROPPED / file, True
    if not path.exists():
        print(f"golden check skipped: {GOLDEN / file} not present")
        return None
    case = next(c for c in load_cases(path) if c.key == key)
    kw = output_spec(case, output) | gemm_changes
    got = fp8sim.gemm(case.a, case.b, **kw)
    want = case.arrays[output]
    equal = np.array_equal(np.asarray(got, np.float32).view(np.uint32),
                           np.asarray(want, np.float32).view(np.uint32))
    assert equal, f"{file}:{key}/{output}: fp8sim.gemm differs from the H100 capture"
    exact = scaled_exact(case.a, case.b, case.a_format, case.b_format, kw,
                         case.arrays.get("C"))
    s = stats(want, exact)
    shape = (case.a.shape[0], case.b.shape[1], case.a.shape[1])
    errors = {"h100_max_rel_error": s["max_rel_error"], "h100_mean_rel_error": s["mean_rel_error"],
              "h100_fro_rel_error": s["fro_rel_error"]}
    recorded = _recorded_h100(file, key, output)
    if not cropped:
        _record_h100(file, key, output, shape, errors)
    elif recorded is not None:  # the full capture's statistics, so figures do not change
        shape, errors = recorded
    res = {"case": f"{file}:{key}/{output}", "output": output, "shape": shape,
           "cropped": cropped, "bits_equal": True, **errors}
    m, n, k = (case.a.shape[0], case.b.shape[1], case.a.shape[1])
    where = " (cropped copy in tests/data/golden)" if cropped else ""
    stat_note = " (recorded from the full capture)" if cropped and recorded else ""
    print(f"golden check OK: fp8sim.gemm reproduces {res['case']}{where} ({m}x{n}, K={k}) bit "
          f"for bit ({m * n} outputs); the H100's error{stat_note}: max rel "
          f"{res['h100_max_rel_error']:.4g}, mean rel {res['h100_mean_rel_error']:.3g}, "
          f"normwise {res['h100_fro_rel_error']:.3g}")
    sys.stdout.flush()
    return res


def _read_h100() -> list[dict]:
    """The rows of H100_ERRORS (none when it does not exist)."""
    if not H100_ERRORS.exists():
        return []
    with open(H100_ERRORS, newline="") as f:
        return list(csv.DictReader(f))


def _recorded_h100(file: str, key: str, output: str) -> tuple[tuple, dict] | None:
    """(shape, errors) recorded for one captured output, or None."""
    for r in _read_h100():
        if (r["file"], r["key"], r["output"]) == (file, key, output):
            return ((int(r["m"]), int(r["n"]), int(r["k"])),
                    {name: float(r[name]) for name in _H100_FIELDS[6:]})
    return None


def _record_h100(file: str, key: str, output: str, shape: tuple, errors: dict) -> None:
    """Adds or updates one row of H100_ERRORS (floats as repr); writes only changes beyond
    the last few bits (a BLAS reduction's order, which varies by machine, moves those)."""
    rows = {(r["file"], r["key"], r["output"]): r for r in _read_h100()}
    new = {"file": file, "key": key, "output": output, "m": str(shape[0]), "n": str(shape[1]),
           "k": str(shape[2]), **{name: repr(float(v)) for name, v in errors.items()}}
    old = rows.get((file, key, output))
    if old is not None and all(old[f] == new[f] for f in _H100_FIELDS[:6]) and all(
            np.isclose(float(old[f]), float(new[f]), rtol=1e-12, atol=0)
            or old[f] == new[f] for f in _H100_FIELDS[6:]):
        return
    rows[(file, key, output)] = new
    H100_ERRORS.parent.mkdir(parents=True, exist_ok=True)
    with open(H100_ERRORS, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_H100_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows[k] for k in sorted(rows))


def study_cli(main, doc: str) -> None:
    """The command line every study shares: --small (a smoke test) and --out."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _cli import OneLineParser, out_dir

    p = OneLineParser(description=doc.splitlines()[0])
    p.add_argument("--small", action="store_true", help="tiny sizes, a smoke test")
    p.add_argument("--out", type=out_dir, default=None,
                   help="results folder (default experiments/results)")
    args = p.parse_args()
    main(args.small, args.out)
