"""Planted bugs in the GPU engine's K split, each of which the GPU checks must catch.

Usage (device tool, from the repository root): python3 scripts/device/gpu_mutants.py
Each mutant edits a copy of the CUDA source (FP8SIM_GPU_SOURCE), runs the K-split checks
of tests/test_gpu_engine.py in a fresh process and must fail them; prints KILLED or
SURVIVED per mutant, and the count that survived (the exit status). ("C in every K group"
survived the H100's first run, whose checks had C only under NaN codes; test_k_split_with_c
killed it on the next, 2026-12-07, and GEMMs with C now split too.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path("fp8sim/engine/_gpu_gemm.cu")
MUTANTS = {
    "C in every K group": ("has_c && blockIdx.z == 0 &&", "has_c &&"),
    "intervals promoted in reverse": ("for (int g = 0; g < G; g++) {",
                                      "for (int g = G - 1; g >= 0; g--) {"),
    "a K group one interval short": ("min(K, (g + g_per_z) * chunk)",
                                     "min(K, (g + g_per_z - 1) * chunk)"),
    "no end scale after the split": ("    if (when == WHEN_END)\n        acc = scale_end(",
                                     "    if (when == WHEN_NONE)\n        acc = scale_end("),
}
CHECK = """
import sys; sys.path.insert(0, "tests")
import test_gpu_engine as e
from fp8sim.engine import _gpu
_gpu.K_SPLIT = True
e.test_k_split_with_c("hopper")
e.test_special_codes_and_accumulators(128, (67, 300, 65))
e.test_k_split_at_a_wgrad_shape("group")
e.test_random_cases_of_every_scaling("tensor", "float32")
"""


def main() -> int:
    text = SOURCE.read_text()
    survived = 0
    for name, (old, new) in MUTANTS.items():
        assert text.count(old) == 1, f"{name}: the snippet is not in {SOURCE} once"
        with tempfile.NamedTemporaryFile("w", suffix=".cu", delete=False) as f:
            f.write(text.replace(old, new))
        env = dict(os.environ, FP8SIM_GPU_SOURCE=f.name)
        r = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True,
                           text=True, timeout=240)
        killed = r.returncode != 0 and "AssertionError" in r.stderr
        survived += not killed
        print("KILLED  " if killed else "SURVIVED", name, flush=True)
        if not killed:
            print(r.stderr[-1500:])
    print("survived:", survived)
    return survived


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
