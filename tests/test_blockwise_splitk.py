"""cuBLASLt's blockwise kernels split K at long K; the kernels reproduce it from their tables.

H200 captures (cuBLASLt 13.1 through torch 2.11 F.scaled_mm, torchao 0.18's Triton): with few
output tiles and K >= 6144, cuBLASLt cuts K into S slices of ceil(K / S) rounded up to 512
(1x128 x 128x128) or 128 (1x128 x 128x1), runs the scaled epilogue over each slice's own K
groups from +0 and adds the slice results in FP32 in order; bf16 rounds that sum. Triton
never splits. tests/data/blockwise_splitk.npz keeps a few outputs of some captures with
their row and column indices; the kernels run at the captured shape (zeros elsewhere) and
look the split up themselves. With $FP8SIM_CAPTURES naming the capture folder, every
captured output is checked too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA

import fp8sim
from fp8sim.engine.gemm import resolve_scaling
from fp8sim.engine.kernel import CUBLASLT_BLOCKWISE_SPLIT, CUBLASLT_BLOCKWISE_WGRAD_SPLIT
from fp8sim.engine.splitk import gemm_split_k

PATH = DATA / "blockwise_splitk.npz"
FAMILIES = {"cublas": "cublaslt-blockwise", "triton": "torchao-triton-blockwise"}
OUT = {"f32": ("float32", np.uint32), "bf16": ("bfloat16", np.uint16)}
CAPTURES = os.environ.get("FP8SIM_CAPTURES")


def _cases() -> list[str]:
    with np.load(PATH) as z:
        return sorted({k.rsplit("/", 1)[0] for k in z.files if k.startswith("gemm/")})


def _full(z, case: str):
    """(a, b, scale_a, scale_b, rows, cols) at the captured shape."""
    m, n, k = (int(v) for v in z[case + "/orig_shape"])
    rows, cols = z[case + "/rows"], z[case + "/cols"]
    a = np.zeros((m, k), np.uint8)
    b = np.zeros((k, n), np.uint8)
    a[rows] = z[case + "/A"]
    b[:, cols] = z[case + "/B"]
    return a, b, z[case + "/scale_a"], z[case + "/scale_b"], rows, cols


@pytest.mark.parametrize("case", _cases())
@pytest.mark.parametrize("family", FAMILIES)
def test_kernel_reproduces_the_capture(case, family):
    with np.load(PATH) as z:
        a, b, sa, sb, rows, cols = _full(z, case)
        wants = {o: z[f"{case}/{family}_{o}"] for o in OUT}
    for out, (dtype, view) in OUT.items():
        got = fp8sim.KERNELS[FAMILIES[family]](a, b, scale_a=sa, scale_b=sb, out_dtype=dtype,
                                               gpu="H200")
        got = got.view(view)[np.ix_(rows, cols)]
        assert np.array_equal(got, wants[out]), f"{case} {family}_{out}"


@pytest.mark.parametrize("case", _cases())
def test_the_split_is_visible_in_the_bits(case):
    """Where cuBLASLt splits, no split (or the other alignment) does not give its float32 bits."""
    with np.load(PATH) as z:
        a, b, sa, sb, rows, cols = _full(z, case)
        want = z[case + "/cublas_f32"]
    m, k = a.shape
    n = b.shape[1]
    kern = fp8sim.KERNELS["cublaslt-blockwise"]
    ep = resolve_scaling(kern.scaling, sa, sb, m, k, n, 128)
    split = CUBLASLT_BLOCKWISE_WGRAD_SPLIT if case.endswith("wgrad") else CUBLASLT_BLOCKWISE_SPLIT
    assert split.epilogue == ep.name
    slices = split.slices(m, n, k)
    one = kern(a, b, scale_a=sa, scale_b=sb, slices=1).view(np.uint32)[np.ix_(rows, cols)]
    if slices == 1:
        assert np.array_equal(one, want)
        return
    assert not np.array_equal(one, want)
    other = 640 - split.align  # 512 <-> 128
    cut = gemm_split_k(a, b, slices=slices, align=other, promote=128, scale_a=sa, scale_b=sb,
                       scaling=ep).view(np.uint32)[np.ix_(rows, cols)]
    if [k0 for k0, _ in _bounds(k, slices, other)] != [k0 for k0, _ in
                                                        _bounds(k, slices, split.align)]:
        assert not np.array_equal(cut, want)


def _bounds(k, slices, align):
    from fp8sim.engine.splitk import split_bounds
    return split_bounds(k, slices, align)


def test_unknown_long_k_is_refused_and_short_k_is_not_split():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 0x70, (64, 8192), dtype=np.uint8)
    b = rng.integers(0, 0x70, (8192, 64), dtype=np.uint8)
    sa = np.ones((64, 64), np.float32)
    sb = np.ones((64, 1), np.float32)
    with pytest.raises(ValueError, match=r"^slices: cublaslt-blockwise .* \(64, 64, 8192\)"):
        fp8sim.KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=sb, gpu="H200")
    with pytest.raises(ValueError, match=r"^slices: .*128x1"):
        fp8sim.KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=np.ones((64, 64),
                                                                              np.float32),
                                             gpu="H200")
    fp8sim.KERNELS["torchao-triton-blockwise"](a, b, scale_a=sa, scale_b=sb)  # never splits
    assert CUBLASLT_BLOCKWISE_SPLIT.slices(64, 64, 4096) == 1


def _capture_params():
    if not CAPTURES:
        return []
    params = []
    for path in sorted(Path(CAPTURES).glob("*blockwise*.npz")):
        with np.load(path) as z:
            cases = sorted({k.rsplit("/", 1)[0] for k in z.files if k.startswith("gemm/")})
        params += [pytest.param(path, c, id=f"{path.stem}:{c}") for c in cases]
    return params


@pytest.mark.parametrize(("path", "case"), _capture_params())
def test_every_captured_output(path, case):
    """Crops (rows, cols of the full GEMM) run as crops: the slice count from the full shape."""
    with np.load(path) as z:
        names = {k.rsplit("/", 1)[1] for k in z.files if k.startswith(case + "/")}
        a, b, sa, sb = (z[f"{case}/{n}"] for n in ("A", "B", "scale_a", "scale_b"))
        m, n = (int(v) for v in z[case + "/orig_shape"]) if "orig_shape" in names else \
            (a.shape[0], b.shape[1])
        wants = {f"{f}_{o}": z[f"{case}/{f}_{o}"] for f in FAMILIES for o in OUT}
    for family, name in FAMILIES.items():
        kern = fp8sim.KERNELS[name]
        ep = resolve_scaling(kern.scaling, sa, sb, a.shape[0], a.shape[1], b.shape[1], 128)
        split = [s for s in kern.split if s.epilogue == ep.name]
        slices = split[0].slices(m, n, a.shape[1]) if split else 1
        for out, (dtype, view) in OUT.items():
            got = kern(a, b, scale_a=sa, scale_b=sb, out_dtype=dtype, slices=slices)
            assert np.array_equal(got.view(view), wants[f"{family}_{out}"]), (family, out)


@pytest.mark.parametrize(("case", "slice_k"), [("gemm/128x128x8192/normal", 3072),
                                               ("gemm/128x128x8192/wgrad", 2816),
                                               ("gemm/256x256x16384/normal", 5632)])
def test_identify_finds_the_split_from_the_outputs(case, slice_k):
    """Forward slices are rounded up to 512 (3 slices of 3072 at K = 8192), Wgrad's to 128."""
    from fp8sim.analysis.identify import identify
    with np.load(PATH) as z:
        rows, cols = z[case + "/rows"], z[case + "/cols"]
        sb = z[case + "/scale_b"]
        sb = sb[:, cols] if case.endswith("wgrad") else sb[:, np.unique(cols // 128)]
        r = identify(z[case + "/A"], z[case + "/B"], z[case + "/cublas_f32"].view(np.float32),
                     scale_a=z[case + "/scale_a"][rows], scale_b=np.ascontiguousarray(sb),
                     search="split")
    assert r["explained"] and r["slices"] == 3 and r["slice_k"] == slice_k, r["note"]
    assert r["epilogue"] == ("group-column" if case.endswith("wgrad") else "group")
