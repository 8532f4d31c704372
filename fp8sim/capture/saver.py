"""Writing capture files without torch: the size-capped .npz saver and the crop rule.

Kept apart from `fp8sim.capture.stacks` (whose modules need torch and a GPU) so they are tested
everywhere.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

Log = Callable[[str], None]


def crop_index(m: int, n: int, seed: int, nrows: int = 16,
               step: int = 2) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows spread over all of M (first and last included) and every `step`-th column of one
    128-column block: (rows, cols, block). Outputs of those rows and columns depend only on
    them; the full shape still decides the kernel (split-K, tiles)."""
    rng = np.random.default_rng(seed + 12345)
    if m <= nrows:
        rows = np.arange(m)
    else:
        mid = rng.choice(np.arange(1, m - 1), nrows - 2, replace=False)
        rows = np.unique(np.concatenate([[0, m - 1], mid]))
    blk = int(rng.integers(0, -(-n // 128)))
    cols = np.arange(blk * 128, min(n, blk * 128 + 128), step)
    return rows.astype(np.int64), cols.astype(np.int64), blk


class Saver:
    """Collects arrays by case and writes one compressed .npz of at most `limit` bytes,
    dropping the last cases (recorded in ``failures``) when it would be larger."""

    def __init__(self, path: Path, env: dict, limit: int, log: Log):
        self.path = Path(path)
        self.limit = limit
        self.log = log
        self.cases: list[tuple[str, dict]] = []
        self.top: dict[str, np.ndarray] = {"env": np.array(json.dumps(env))}
        self.failures: list[str] = []

    def add(self, prefix: str, arrays: dict) -> None:
        """Adds the arrays of one case under ``prefix/<name>``."""
        self.cases.append((prefix, arrays))

    def fail(self, what: str) -> None:
        """Records (and logs with its traceback) a case that raised."""
        tb = traceback.format_exc()
        self.log(f"FAILED {what}\n{tb}")
        self.failures.append(f"{what}: {tb.strip().splitlines()[-1][:300]}")

    def _arrays(self, cases: list) -> dict:
        arrays = dict(self.top)
        arrays["failures"] = np.array(json.dumps(self.failures))
        for prefix, d in cases:
            arrays.update({f"{prefix}/{k}": v for k, v in d.items()})
        return arrays

    def write(self) -> Path:
        """Writes the file; if over the limit, drops cases by the measured compression ratio."""
        cases = list(self.cases)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        size = 0
        for _ in range(4):
            arrays = self._arrays(cases)
            np.savez_compressed(tmp, **arrays)
            size = tmp.stat().st_size
            if size <= self.limit or not cases:
                break
            raw = sum(v.nbytes for v in arrays.values())
            ratio = size / max(raw, 1)
            while cases and raw * ratio > 0.97 * self.limit:
                prefix, d = cases.pop()
                raw -= sum(v.nbytes for v in d.values())
                self.failures.append(f"dropped {prefix} (file over {self.limit} bytes)")
        os.replace(tmp, self.path)
        self.log(f"wrote {self.path} ({len(cases)} cases, {size / 2**20:.2f} MiB)")
        return self.path
