"""Checks a cuBLASLt probe recording's random-shape captures (record.py captures.npz).

    python scripts/check_cublaslt_captures.py DIR [DIR ...]

For every capture: fp8sim's predicted split (fp8sim.engine.cublaslt_splits, for the card
named in DIR/env.json) against the SPLITK_NUM cuBLASLt recorded, and the kernel's bits with
that prediction (without slices=) against the captured outputs. Prints one line per
capture and a total; exits 1 on any mismatch (a refusal is counted, not a failure).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import fp8sim
from fp8sim.capture.cublaslt_probe.tabulate import card_of
from fp8sim.engine import cublaslt_splits as cs

KERNEL = {"tensor-fast": "cublaslt-fast", "tensor": "cublaslt", "row-fast": "torch-rowwise-fast",
          "row": "torch-rowwise", "block128": "cublaslt-blockwise",
          "block1": "cublaslt-blockwise"}


def check(directory: Path) -> tuple[int, int, int, int]:
    """(captures, exact, refused, outputs compared) of one recording."""
    card = card_of(directory) or "H100"
    total = exact = refused = outputs = 0
    with np.load(directory / "captures.npz") as z:
        for key in sorted({k.split("/")[0] for k in z.files}):
            meta = json.loads(str(z[key + "/meta"]))
            fam, out = meta["family"], meta["out"]
            m, n, k = (int(v) for v in z[key + "/shape"])
            recorded = meta["records"][-1]["algo"]["splitk_num"]
            a, b, sa, sb, d = (z[f"{key}/{x}"] for x in ("A", "B", "scale_a", "scale_b", "D"))
            if fam.startswith("tensor"):
                sa, sb = sa.reshape(()), sb.reshape(())
            total += 1
            try:
                predicted = cs.cublaslt_slices(fam, m, n, k, out, card)
                got = fp8sim.KERNELS[KERNEL[fam]](a, b, scale_a=sa, scale_b=sb, out_dtype=out,
                                                  problem_shape=(m, n, k), gpu=card)
            except ValueError as e:
                refused += 1
                print(f"{key} {fam} {out} {m}x{n}x{k}: refused ({str(e)[:90]})")
                continue
            same = np.array_equal(got.view(d.dtype), d)
            ok = same and predicted == recorded
            exact += ok
            outputs += d.size
            print(f"{key} {fam} {out} {m}x{n}x{k} on the {card}: split {predicted} "
                  f"(recorded {recorded}), {d.size} outputs {'bit-exact' if same else 'DIFFER'}")
    return total, exact, refused, outputs


def main(argv: list[str]) -> int:
    """Checks every DIR; exit 1 on a mismatch."""
    bad = 0
    for d in argv:
        total, exact, refused, outputs = check(Path(d))
        bad += total - exact - refused
        print(f"{d}: {total} captures, {exact} bit-exact with the predicted split "
              f"({outputs} outputs), {refused} refused, {total - exact - refused} wrong")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
