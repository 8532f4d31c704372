"""fp8sim.splitk: split-K GEMMs, and cuBLASLt fast accumulation at long K reproduced by them."""

from __future__ import annotations

import math

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
def test_split_k_is_the_sum_of_slice_chains(slices, promote):
    """Each slice is its own chain (promoting every `promote` inside it) on its K range,
    the float32 results added in slice order: the pure-Python reference slice by slice on
    sampled outputs, the slice bounds written out here (ceil(1000 / slices) rounded up to 32)."""
    from fp8sim.engine import reference
    from fp8sim.engine.mma import HOPPER
    a, b = _inputs()
    got = gemm_split_k(a, b, slices=slices, align=32, b_format="e5m2", promote=promote)
    size = math.ceil(math.ceil(1000 / slices) / 32) * 32
    picked = [(0, 0), (3, 11), (7, 23)]
    idx = tuple(np.array(picked).T)
    want = None
    for k0 in range(0, 1000, size):
        k1 = min(k0 + size, 1000)
        part = reference.gemm(a[:, k0:k1], b[k0:k1], "e4m3", "e5m2", HOPPER, promote=promote,
                              elements=picked)[idx]
        want = part if want is None else (want + part).astype(np.float32)
    assert np.array_equal(got.view(np.uint32)[idx], want.view(np.uint32))
    if slices == 1:
        plain = fp8sim.gemm(a, b, b_format="e5m2", promote=promote)
        assert np.array_equal(got.view(np.uint32), plain.view(np.uint32))


def _by_hand() -> tuple[np.ndarray, np.ndarray]:
    """One row of E5M2 codes, K = 90, whose slice results are known by hand (see below)."""
    a = np.ones((1, 90), np.float32)
    a[0, 0] = 2.0**12
    b = np.zeros((90, 3), np.float32)
    b[0, 0], b[32, 0], b[64, 0] = 2.0**12, 1, 1  # slice results 2**24, 1, 1
    b[0, 1], b[32, 1], b[64, 1] = 4, 1, 1  # 2**14, 1, 1
    b[0, 2], b[31, 2] = 4, 1  # 2**14 + 1 at k = 0 and 31: one slice, one MMA step
    return fp8sim.encode(a, "e5m2"), fp8sim.encode(b, "e5m2")


def test_slices_add_in_order_by_hand():
    """K = 90 in 3 slices (ceil(90 / 3) = 30, rounded up to align = 32: [0, 32), [32, 64),
    [64, 90)), answers stated by hand:

    - column 0, slice results 2**24, 1, 1: in order (2**24 + 1) + 1 rounds to even twice,
      2**24; last first, 1 + 1 + 2**24 = 2**24 + 2 is exact;
    - column 1, 2**14, 1, 1: 2**14 + 2, exact; one chain through K would truncate each 1
      below its lsb 2 (13 fractional bits at emax 14): 2**14;
    - column 2, 2**14 at k = 0 and 1 at k = 31: both in the first slice's first step, the 1
      truncated: 2**14; slices cut at 30 (no alignment) would give 2**14 + 1.
    """
    a, b = _by_hand()
    got = gemm_split_k(a, b, slices=3, align=32, a_format="e5m2", b_format="e5m2")
    assert got.dtype == np.float32
    assert got.tolist() == [[2.0**24, 2.0**14 + 2, 2.0**14]]
    chain = fp8sim.gemm(a, b, a_format="e5m2", b_format="e5m2")
    assert chain.tolist() == [[2.0**24, 2.0**14, 2.0**14]]
    bf16 = gemm_split_k(a, b, slices=3, align=32, a_format="e5m2", b_format="e5m2",
                        out_dtype="bfloat16")
    assert bf16.view(np.uint16).tolist() == [[0x4B80, 0x4680, 0x4680]]  # 2**24, 2**14, 2**14


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


def _scaled_inputs(m=4, k=900, n=140, column=False, seed=3):
    rng = np.random.default_rng(seed)
    a = fp8sim.encode(rng.standard_normal((m, k)).astype(np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((k, n)).astype(np.float32), "e4m3")
    g = -(-k // 128)
    nb = n if column else -(-n // 128)
    sa = np.ldexp(rng.random((m, g)) + 0.5, rng.integers(-20, 20, (m, g))).astype(np.float32)
    sb = np.ldexp(rng.random((g, nb)) + 0.5, rng.integers(-20, 20, (g, nb))).astype(np.float32)
    return a, b, sa, sb


@pytest.mark.parametrize(("scaling", "column"), [("group", False), ("group-a-first", False),
                                                 ("group-column", True)])
@pytest.mark.parametrize("slices", [1, 3, 5])
def test_scaled_split_k_runs_each_slice_on_its_own_groups(scaling, column, slices):
    """Each slice applies the epilogue to its own K groups from +0 (the reference, one value
    at a time, on outputs on both sides of the 128-column block edge), and the slice results
    add in order in FP32."""
    from fp8sim.engine import reference
    from fp8sim.engine.epilogue import epilogue
    from fp8sim.engine.mma import HOPPER
    a, b, sa, sb = _scaled_inputs(column=column)
    got = gemm_split_k(a, b, slices=slices, promote=128, scale_a=sa, scale_b=sb,
                       scaling=scaling)
    picked = [(i, j) for i in (0, 3) for j in (0, 127, 128, 139)]
    want = None
    for k0, k1 in split_bounds(a.shape[1], slices):
        g0, g1 = k0 // 128, -(-k1 // 128)
        part = reference.gemm(a[:, k0:k1], b[k0:k1], "e4m3", "e4m3", HOPPER, promote=128,
                              epilogue=epilogue(scaling), scale_a=sa[:, g0:g1],
                              scale_b=sb[g0:g1], elements=picked)
        want = part if want is None else want + part  # the first slice is not added to +0
    idx = tuple(np.array(picked).T)
    assert np.array_equal(got.view(np.uint32)[idx], want.view(np.uint32)[idx])
    if slices > 1:  # the split is visible in the bits
        one = fp8sim.gemm(a, b, promote=128, scale_a=sa, scale_b=sb, scaling=scaling)
        assert not np.array_equal(got.view(np.uint32), one.view(np.uint32))


@pytest.mark.parametrize(("kwargs", "start"), [
    ({"promote": 256}, "promote:"),  # slices of 384 are not whole groups of 256
    ({"promote": 128, "scale_b": np.ones((7, 2), np.float32), "scaling": "group"}, "scale_b:"),
    ({"promote": 128, "scale_b": np.ones((7, 2), np.float32)}, "scale_a: shapes"),
    ({"promote": 0, "scaling": "group"}, "promote:"),
    ({"promote": "128"}, "promote:"),
])
def test_scaled_split_k_refuses_what_is_not_modelled(kwargs, start):
    a, b, sa, sb = _scaled_inputs()
    kw = {"slices": 3, "promote": 128, "scale_a": sa, "scale_b": sb} | kwargs
    if kwargs.get("promote") == 256:
        kw |= {"scale_a": sa[:, :4], "scale_b": sb[:4]}
    with pytest.raises((ValueError, TypeError)) as info:
        gemm_split_k(a, b, **kw)
    assert str(info.value).startswith(start)


@pytest.mark.parametrize("promote", [0, 128])
def test_end_scales_apply_once_to_the_sum_of_the_slices(promote):
    """cuBLASLt's per-tensor alpha scales the FP32 sum of the slices (H100 captures, see
    test_cublaslt_splits): fl(sum * fl(sa * sb)), not the sum of scaled slices."""
    rng = np.random.default_rng(3)
    a = (rng.integers(0, 0x7E, (6, 1536)) | (rng.integers(0, 2, (6, 1536)) << 7)).astype(np.uint8)
    b = (rng.integers(0, 0x7E, (1536, 5)) | (rng.integers(0, 2, (1536, 5)) << 7)).astype(np.uint8)
    sa, sb = np.float32(1.37), np.float32(0.61)
    got = gemm_split_k(a, b, slices=3, promote=promote, scale_a=sa, scale_b=sb,
                       scaling="tensor")
    plain = gemm_split_k(a, b, slices=3, promote=promote)
    want = plain * np.float32(sa * sb)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    each = sum((gemm_split_k(a[:, k0:k0 + 512], b[k0:k0 + 512], slices=1, promote=promote,
                             scale_a=sa, scale_b=sb, scaling="tensor")
                for k0 in range(512, 1536, 512)),
               gemm_split_k(a[:, :512], b[:512], slices=1, promote=promote, scale_a=sa,
                            scale_b=sb, scaling="tensor"))
    assert not np.array_equal(got.view(np.uint32), each.view(np.uint32))
