"""Replays every GEMM output of ../shared/golden through the public kernels and counts the
output bits that differ (the figure quoted in the README and closing notes)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fp8sim.capture.golden import as_bits, known_unexplained, load_cases, output_kernel


def main(folder: str = "../shared/golden") -> int:
    outputs = elements = differ = unexplained = 0
    for path in sorted(Path(folder).glob("*.npz")):
        if path.name.startswith(("thirdparty", "deepgemm", "convert")):
            continue  # other layouts: tests/test_thirdparty_gemm.py, test_stacks_casts.py
        for case in load_cases(path):
            for name in case.arrays:
                try:
                    kern, kw = output_kernel(case, name)
                except (KeyError, ValueError, TypeError):
                    continue  # an input array, not an output
                if kern is None:
                    continue
                if known_unexplained(case, name):
                    unexplained += 1
                    continue
                want = as_bits(case.arrays[name])
                got = as_bits(kern(case.a, case.b, **kw))
                outputs += 1
                elements += want.size
                differ += int(np.count_nonzero(got != want))
    print(f"{folder}: {outputs} outputs, {elements} elements through the public kernels, "
          f"{differ} differ; {unexplained} refused as never captured")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
