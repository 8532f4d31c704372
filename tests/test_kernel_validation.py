"""Bad arguments to the named kernels and gemm_split_k: a clear error naming the argument."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from fp8sim import KERNELS
from fp8sim.engine.splitk import gemm_split_k

RNG = np.random.default_rng(11)
A = RNG.integers(0, 0x78, (4, 1024), dtype=np.uint8)
B = RNG.integers(0, 0x78, (1024, 3), dtype=np.uint8)
C = np.ones((4, 3), np.float32)
SA = np.ones((4, 8), np.float32)
SB = np.ones((8, 1), np.float32)


@pytest.mark.parametrize("call", [
    lambda: KERNELS["cublaslt-fast"](A, B, scale_a=1.0, scale_b=1.0, slices=3, c=C),
    lambda: KERNELS["cublaslt"](A, B, scale_a=1.0, scale_b=1.0, slices=2, c=C),
    lambda: KERNELS["cublaslt-blockwise"](A, B, scale_a=SA, scale_b=SB, slices=2, c=C),
    lambda: gemm_split_k(A, B, slices=2, c=C),
], ids=["cublaslt-fast", "cublaslt", "cublaslt-blockwise", "gemm_split_k"])
def test_split_k_with_c_is_refused_everywhere(call):
    """cublaslt-fast folded its slices into promotion and added C into the first slice,
    while the blockwise kernels and gemm_split_k refused C; now every split refuses it."""
    with pytest.raises(ValueError, match=r"^c: .*slices=\d.*split-K with C is not modelled"):
        call()


def test_one_slice_with_c_runs():
    """One slice is a plain gemm: C is its accumulator input, split or not requested."""
    want = KERNELS["triton"](A, B, c=C)
    one = np.float32(1)
    for got in (KERNELS["cublaslt-fast"](A, B, scale_a=one, scale_b=one, slices=1, c=C),
                gemm_split_k(A, B, slices=1, c=C)):
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_slices_for_a_kernel_that_never_splits_are_refused_with_c_too():
    with pytest.raises(ValueError, match="^slices: kernel triton never splits K"):
        KERNELS["triton"](A, B, slices=2, c=C)


@pytest.mark.parametrize("name", ["cublaslt-blockwise", "torchao-triton-blockwise"])
def test_blockwise_kernels_refuse_what_no_capture_backs(name):
    """E4M3 operands and float32/bfloat16 outputs are what the H200 captures back."""
    kern = KERNELS[name]
    e5 = A.view(ml_dtypes.float8_e5m2)
    with pytest.raises(ValueError, match=f"^b_format: {name} takes e4m3 operands"):
        kern(A, B, scale_a=SA, scale_b=SB, b_format="e5m2")
    with pytest.raises(ValueError, match=f"^a: {name} takes e4m3 operands.*got e5m2"):
        kern(e5, B, scale_a=SA, scale_b=SB)
    for out in ("float16", np.float16):
        with pytest.raises(ValueError, match=f"^out_dtype: {name} writes float32 or bfloat16"):
            kern(A, B, scale_a=SA, scale_b=SB, out_dtype=out)
    for out in ("float32", "bfloat16", np.float32):
        assert kern(A, B, scale_a=SA, scale_b=SB, out_dtype=out).shape == (4, 3)
    assert kern(A.view(ml_dtypes.float8_e4m3fn), B, scale_a=SA, scale_b=SB,
                a_format="e4m3").shape == (4, 3)
    with pytest.raises(ValueError, match="^out_dtype: expected one of"):
        kern(A, B, scale_a=SA, scale_b=SB, out_dtype="float64")  # gemm's own message


def test_other_kernels_keep_e5m2_and_float16():
    for name in ("cublaslt", "cublaslt-fast"):
        out = KERNELS[name](A, B, scale_a=1.0, scale_b=1.0, b_format="e5m2", out_dtype="float16")
        assert out.dtype == np.float16


def test_cublaslt_refuses_a_long_k_split_never_recorded_on_the_card():
    """cuBLASLt splits K > 4096 by its own heuristic: on a card without a recording of the
    per-tensor family the kernel refuses (naming gpu) instead of running one chain."""
    from fp8sim.engine.kernel import UNSPLIT_ANY_CARD_K

    one = np.float32(1)
    a = np.zeros((64, 8192), np.uint8)
    b = np.zeros((8192, 64), np.uint8)
    with pytest.raises(ValueError, match=r"^gpu: cublaslt's split of K = 8192 on the H200"):
        KERNELS["cublaslt"](a, b, scale_a=one, scale_b=one, gpu="H200")
    k = UNSPLIT_ANY_CARD_K
    got = KERNELS["cublaslt"](a[:, :k], b[:k], scale_a=one, scale_b=one, gpu="H200")
    assert got.shape == (64, 64)
    assert KERNELS["cublaslt"](a, b, scale_a=one, scale_b=one, slices=2,
                                      gpu="H200").shape == (64, 64)


@pytest.mark.parametrize("name", ["cublaslt", "cublaslt-fast"])
def test_cublaslt_refuses_two_e5m2_operands_as_the_library_does(name):
    one = np.float32(1)
    with pytest.raises(ValueError, match=rf"^b_format: {name} does not multiply two E5M2"):
        KERNELS[name](A, B, scale_a=one, scale_b=one, a_format="e5m2", b_format="e5m2")
    for fa, fb in (("e4m3", "e5m2"), ("e5m2", "e4m3")):  # one E5M2 operand is fine
        KERNELS[name](A, B, scale_a=one, scale_b=one, a_format=fa, b_format=fb)
