"""cuBLASLt's and torchao's blockwise FP8 GEMMs (H200 captures), bit for bit.

`thirdparty_public_a.npz` holds, per case, forward GEMMs (1x128 x 128x128 scales) and Wgrad
GEMMs (1x128 x 128x1) run by `torch.nn.functional.scaled_mm` (cuBLASLt) and by torchao's
Triton kernels, float32 and bfloat16 out. The committed crop (tests/data/thirdparty_gemm.npz)
always runs: the kernels are called at the captured shape with zeros outside the kept rows
of A and columns of B. The full file runs too when ../shared/golden is there.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, SHARED_GOLDEN

import fp8sim
from fp8sim.engine.epilogue import variants

FAMILIES = {"cublas": "cublaslt-blockwise", "triton": "torchao-triton-blockwise"}
OUT = {"f32": ("float32", np.uint32), "bf16": ("bfloat16", np.uint16)}
CROP = DATA / "thirdparty_gemm.npz"
FULL = SHARED_GOLDEN / "thirdparty_public_a.npz"


def _cases(path) -> list[str]:
    with np.load(path) as z:
        return sorted({k.rsplit("/", 1)[0] for k in z.files if k.startswith("gemm/")})


def _inputs(z, case: str):
    """(a, b, scale_a, scale_b, rows, cols) at the captured shape; rows/cols None when whole."""
    a, b = z[case + "/A"], z[case + "/B"]
    if case + "/rows" not in z.files:
        return a, b, z[case + "/scale_a"], z[case + "/scale_b"], None, None
    m, n, k = (int(v) for v in z[case + "/orig_shape"])
    rows, cols = z[case + "/rows"], z[case + "/cols"]
    full_a = np.zeros((m, k), np.uint8)
    full_b = np.zeros((k, n), np.uint8)
    full_a[rows] = a
    full_b[:, cols] = b
    return full_a, full_b, z[case + "/scale_a"], z[case + "/scale_b"], rows, cols


def _check(path, case: str, family: str, out: str) -> None:
    with np.load(path) as z:
        a, b, sa, sb, rows, cols = _inputs(z, case)
        want = z[f"{case}/{family}_{out}"]
    dtype, view = OUT[out]
    got = fp8sim.KERNELS[FAMILIES[family]](a, b, scale_a=sa, scale_b=sb, out_dtype=dtype)
    got = got.view(view)
    if rows is not None:
        got = got[np.ix_(rows, cols)]
    bad = int(np.count_nonzero(got != want))
    assert bad == 0, f"{case} {family}_{out}: {bad} of {want.size} outputs differ"


PARAMS = [(c, f, o) for c in _cases(CROP) for f in FAMILIES for o in OUT]


@pytest.mark.parametrize(("case", "family", "out"), PARAMS)
def test_committed_crop(case, family, out):
    _check(CROP, case, family, out)


def test_committed_crop_has_every_family():
    cases = _cases(CROP)
    assert {c.rsplit("/", 1)[1] for c in cases} == {"normal", "outlier", "wgrad"}
    assert len(cases) == 6


@pytest.mark.golden
@pytest.mark.parametrize(("case", "family", "out"),
                         [(c, f, o) for c in _cases(FULL) for f in FAMILIES for o in OUT]
                         if FULL.exists() else [])
def test_full_capture(case, family, out):
    _check(FULL, case, family, out)


@pytest.mark.parametrize("case", _cases(CROP))
def test_each_family_needs_its_own_epilogue(case):
    """The captured outputs tell the epilogue variants apart: only the named one explains
    each family (so the tests above would notice a swapped order or a lost fma)."""
    with np.load(CROP) as z:
        a, b, sa, sb, rows, cols = _inputs(z, case)
        wants = {f: z[f"{case}/{f}_f32"] for f in FAMILIES}
    for family, name in FAMILIES.items():
        kern = fp8sim.KERNELS[name]
        chosen = [e for e in kern.scaling if e.scale_shapes(*a.shape, b.shape[1], 128)[1]
                  == sb.shape][0]
        for ep in variants(chosen):
            got = fp8sim.gemm(a, b, promote=128, scale_a=sa, scale_b=sb, scaling=ep)
            same = np.array_equal(got.view(np.uint32)[np.ix_(rows, cols)], wants[family])
            assert same == (ep is chosen), f"{family}: {ep.name}"
