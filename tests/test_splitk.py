"""fp8sim.splitk: split-K GEMMs, and cuBLASLt fast accumulation at long K reproduced by them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, SHARED_GOLDEN

import fp8sim
from fp8sim.capture.golden import load_cases
from fp8sim.engine.splitk import gemm_split_k, split_bounds


def _inputs(m=8, k=1000, n=24, seed=0):
    rng = np.random.default_rng(seed)
    a = fp8sim.encode(rng.standard_normal((m, k)).astype(np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((k, n)).astype(np.float32), "e5m2")
    return a, b


def test_split_bounds():
    assert split_bounds(16384, 6) == [(0, 2816), (2816, 5632), (5632, 8448), (8448, 11264),
                                      (11264, 14080), (14080, 16384)]
    b = split_bounds(65536, 22)
    assert len(b) == 22 and b[0] == (0, 3072) and b[-1] == (64512, 65536)
    assert split_bounds(256, 3) == [(0, 128), (128, 256)]  # rounding leaves two slices
    assert split_bounds(100, 1) == [(0, 100)]
    assert split_bounds(1000, 4, align=32) == [(0, 256), (256, 512), (512, 768), (768, 1000)]


@pytest.mark.parametrize("slices", [1, 2, 3, 7])
@pytest.mark.parametrize("promote", [0, 64])
def test_split_k_is_the_sum_of_slice_gemms(slices, promote):
    """Each slice is fp8sim.gemm on its K range; the float32 results add in slice order."""
    a, b = _inputs()
    got = gemm_split_k(a, b, slices=slices, align=32, b_format="e5m2", promote=promote)
    want = None
    for k0, k1 in split_bounds(1000, slices, 32):
        part = fp8sim.gemm(a[:, k0:k1].copy(), b[k0:k1].copy(), b_format="e5m2",
                           promote=promote)
        want = part if want is None else want + part
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    if slices == 1:
        plain = fp8sim.gemm(a, b, b_format="e5m2", promote=promote)
        assert np.array_equal(got.view(np.uint32), plain.view(np.uint32))


def test_out_dtype_rounds_the_sum():
    a, b = _inputs()
    f32 = gemm_split_k(a, b, slices=3, b_format="e5m2")
    bf16 = gemm_split_k(a, b, slices=3, b_format="e5m2", out_dtype="bfloat16")
    assert np.array_equal(bf16.view(np.uint16), f32.astype(bf16.dtype).view(np.uint16))


def test_nan_is_canonical():
    a, b = _inputs()
    a[0, 0] = 0x7F  # NaN
    d = gemm_split_k(a, b, slices=3, b_format="e5m2")
    assert np.all(d.view(np.uint32)[0] == 0x7FFFFFFF)


@pytest.mark.parametrize(("kwargs", "start"), [
    ({"c": np.zeros((8, 24), np.float32)}, "c:"),
    ({"scale_a": 1.0, "scale_b": 1.0}, "scale_a:"),
    ({"slices": 0}, "slices:"),
    ({"align": 0}, "align:"),
    ({"out_dtype": "float64"}, "out_dtype:"),
    ({"promote": 48}, "promote:"),
])
def test_bad_arguments_name_themselves(kwargs, start):
    a, b = _inputs()
    kw = {"slices": 2, "b_format": "e5m2"} | kwargs
    with pytest.raises(ValueError) as info:
        gemm_split_k(a, b, **kw)
    assert str(info.value).startswith(start)


LONG_K = [("longk_public0", 16384, 6), ("longk_public1", 16384, 6),
          ("longk_public0", 65536, 22), ("longk_public1", 65536, 22)]


def _check_long_k(path, k, slices):
    case = next(c for c in load_cases(path) if c.k == k)
    d = gemm_split_k(case.a, case.b, slices=slices, a_format=case.a_format,
                     b_format=case.b_format)
    assert np.array_equal(d.view(np.uint32), case.arrays["cublas_fast_f32"].view(np.uint32))
    single = fp8sim.gemm(case.a, case.b, a_format=case.a_format, b_format=case.b_format)
    assert not np.array_equal(single.view(np.uint32),
                              case.arrays["cublas_fast_f32"].view(np.uint32))


@pytest.mark.parametrize(("fname", "k", "slices"), LONG_K)
def test_cublaslt_fast_accumulation_at_long_k_committed(fname, k, slices):
    """The committed crops (a few outputs each) of the long-K captures."""
    _check_long_k(DATA / "golden" / f"{fname}.npz", k, slices)


@pytest.mark.golden
@pytest.mark.parametrize(("fname", "k", "slices"), LONG_K)
def test_cublaslt_fast_accumulation_at_long_k(fname, k, slices):
    """The H100's cuBLASLt fast accumulation at long K, bit for bit: split-K, no promotion."""
    _check_long_k(SHARED_GOLDEN / f"{fname}.npz", k, slices)
