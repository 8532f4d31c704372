"""`compare` / `assert_matches` with kernel=: the expected output is a named kernel's."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fp8sim
from fp8sim import KERNELS, assert_matches, compare

RNG = np.random.default_rng(21)
A = RNG.integers(0, 0x78, (6, 1024), dtype=np.uint8) | (RNG.integers(0, 2, (6, 1024)) << 7
                                                       ).astype(np.uint8)
B = RNG.integers(0, 0x78, (1024, 5), dtype=np.uint8)
SA = (RNG.random((6, 8)) + 0.5).astype(np.float32)
SB = (RNG.random((8, 1)) + 0.5).astype(np.float32)


def _flip_last_bit(out: np.ndarray, idx: tuple[int, int]) -> np.ndarray:
    bad = out.copy()
    bits = bad.view(np.uint16 if bad.dtype.itemsize == 2 else np.uint32)
    bits[idx] ^= 1
    return bad


@pytest.mark.parametrize("kernel", ["cublaslt-blockwise", KERNELS["torchao-triton-blockwise"]],
                         ids=["name", "Kernel"])
def test_kernel_output_matches_itself(kernel):
    kern = fp8sim.engine.kernel.kernel(kernel)
    out = kern(A, B, scale_a=SA, scale_b=SB, out_dtype="bfloat16")
    report = assert_matches(out, A, B, kernel=kernel, scale_a=SA, scale_b=SB)
    assert report.ok and report.out_dtype == "bfloat16" and report.total == 30
    assert f"fp8sim.KERNELS[{kern.name!r}]" in str(report)


def test_kernel_is_what_is_compared_not_gemm():
    """cuBLASLt's blockwise kernel (fma(p, fl(sa*sb), acc)) and torchao's Triton kernel
    (fma(fl(p*sa), sb, acc)) differ on some outputs: each is told from the other."""
    tao = KERNELS["torchao-triton-blockwise"](A, B, scale_a=SA, scale_b=SB)
    cub = KERNELS["cublaslt-blockwise"](A, B, scale_a=SA, scale_b=SB)
    assert not np.array_equal(tao.view(np.uint32), cub.view(np.uint32))
    assert compare(tao, A, B, kernel="torchao-triton-blockwise", scale_a=SA, scale_b=SB).ok
    report = compare(tao, A, B, kernel="cublaslt-blockwise", scale_a=SA, scale_b=SB)
    assert report.mismatches == np.count_nonzero(tao.view(np.uint32) != cub.view(np.uint32))


def test_mismatch_names_the_first_differing_element():
    out = KERNELS["cublaslt"](A, B, scale_a=np.float32(0.5), scale_b=np.float32(2.0))
    bad = _flip_last_bit(_flip_last_bit(out, (4, 3)), (2, 1))
    with pytest.raises(AssertionError) as info:
        assert_matches(bad, A, B, kernel="cublaslt", scale_a=np.float32(0.5),
                       scale_b=np.float32(2.0))
    text = str(info.value)
    assert text.startswith("2 of 30 outputs") and "fp8sim.KERNELS['cublaslt']" in text
    first = text.split("row-major):")[1].splitlines()[2].split()
    assert first[0] + first[1] == "(2,1)"
    report = compare(bad, A, B, kernel="cublaslt", scale_a=np.float32(0.5),
                     scale_b=np.float32(2.0))
    assert [m.index for m in report.first] == [(2, 1), (4, 3)]
    assert report.first[0].expected_bits == int(out.view(np.uint32)[2, 1])
    assert report.first[0].ulp == 1


def test_split_kernel_and_raw_bits():
    """A kernel that splits K (no single gemm) is compared too; raw uint16 bits take the
    kernel's own output type."""
    out = KERNELS["cublaslt-blockwise"](A, B, scale_a=SA, scale_b=SB, slices=2)
    report = compare(out, A, B, kernel="cublaslt-blockwise", scale_a=SA, scale_b=SB, slices=2)
    assert report.ok and report.recipe == "cublaslt-blockwise: its split of K -> float32"
    unsplit = compare(out, A, B, kernel="cublaslt-blockwise", scale_a=SA, scale_b=SB)
    assert not unsplit.ok  # two slices differ from one chain here
    assert "group | group-column scales" in unsplit.recipe
    rows = KERNELS["torch-rowwise"](A, B, scale_a=SA[:, :1], scale_b=SB[:1].T.repeat(5, 1))
    assert rows.dtype == ml_dtypes.bfloat16
    assert compare(rows.view(np.uint16), A, B, kernel="torch-rowwise", scale_a=SA[:, :1],
                   scale_b=SB[:1].T.repeat(5, 1)).ok


def test_bad_kernel_names_the_argument():
    with pytest.raises(ValueError, match="^kernel: unknown kernel 'cublas'"):
        compare(np.zeros((6, 5), np.float32), A, B, kernel="cublas")
    with pytest.raises(ValueError, match="^a_format: cublaslt-blockwise takes e4m3"):
        compare(np.zeros((6, 5), np.float32), A.view(ml_dtypes.float8_e5m2), B,
                kernel="cublaslt-blockwise", scale_a=SA, scale_b=SB)


@pytest.mark.parametrize("flag", ["equal_nan", "alternatives"])
def test_flags_must_be_bools(flag):
    """equal_nan="no" read as True (NaN mismatches silently forgiven)."""
    out = np.zeros((6, 5), np.float32)
    with pytest.raises(TypeError, match=f"^{flag}: expected True or False"):
        compare(out, A, B, **{flag: "no"})
