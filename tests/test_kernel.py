"""Named kernels are gemm with their settings, and cublaslt-fast applies its split of K."""

from __future__ import annotations

import numpy as np
import pytest

import fp8sim
from fp8sim import gemm
from fp8sim.engine.kernel import KERNELS, kernel
from fp8sim.engine.splitk import gemm_split_k


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_named_kernel_is_gemm_with_its_settings(name):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 0x70, (8, 300), dtype=np.uint8)
    b = rng.integers(0, 0x70, (300, 5), dtype=np.uint8)
    k = KERNELS[name]
    scales = {}
    if k.scaling == "group":
        scales = {"scale_a": rng.random((8, 3), dtype=np.float32),
                  "scale_b": rng.random((3, 1), dtype=np.float32)}
    elif k.scaling == "tensor":
        scales = {"scale_a": np.float32(0.5), "scale_b": np.float32(3.0)}
    elif k.scaling == "row":
        scales = {"scale_a": rng.random((8, 1), dtype=np.float32),
                  "scale_b": rng.random((1, 5), dtype=np.float32)}
    got = k(a, b, **scales)
    want = gemm(a, b, promote=k.promote, scaling=k.scaling, out_dtype=k.out_dtype, **scales)
    assert got.dtype == want.dtype
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8))
    assert kernel(name) is k and k.description


def test_unknown_kernel():
    with pytest.raises(ValueError, match="^kernel:"):
        kernel("cutlass")


def _long_k(m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    a = fp8sim.encode(rng.standard_normal((m, k)).astype(np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((k, n)).astype(np.float32), "e4m3")
    return a, b


def test_cublaslt_fast_applies_the_captured_split():
    """64 x 64 x 16384: cuBLASLt's 6 slices of 2816, not one chain (issue 13: every output
    was wrong before the kernel applied its split)."""
    a, b = _long_k(64, 64, 16384)
    fast = KERNELS["cublaslt-fast"]
    got = fast(a, b, scale_a=np.float32(1), scale_b=np.float32(1))
    want = gemm_split_k(a, b, slices=6)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    one_chain = gemm(a, b)
    assert np.count_nonzero(got.view(np.uint32) != one_chain.view(np.uint32)) > 0.9 * got.size
    assert fast.gemm_kwargs(a, b)["promote"] == 2816


def test_cublaslt_fast_split_depends_on_output_type():
    """(256, 256, 16384): 2 slices for float32 outputs, 3 for bfloat16 (captured)."""
    a, b = _long_k(2, 3, 16384)
    fast = KERNELS["cublaslt-fast"]
    shape = (256, 256, 16384)
    assert fast.gemm_kwargs(a, b, problem_shape=shape)["promote"] == 8192
    kw16 = fast.gemm_kwargs(a, b, problem_shape=shape, out_dtype="bfloat16")
    assert kw16["promote"] == 5504  # ceil(16384 / 3) = 5462, rounded up to 128
    got = fast(a, b, problem_shape=shape, out_dtype="bfloat16", scaling=None)
    want = gemm_split_k(a, b, slices=3, out_dtype="bfloat16")
    assert np.array_equal(got.view(np.uint16), want.view(np.uint16))


def test_cublaslt_fast_short_k_is_one_chain():
    a, b = _long_k(5, 7, 4096)
    assert KERNELS["cublaslt-fast"].gemm_kwargs(a, b)["promote"] == 0
    assert KERNELS["cublaslt-fast"].gemm_kwargs(a, b, slices=2)["promote"] == 2048


@pytest.mark.parametrize(("name", "kwargs", "start"), [
    ("cublaslt-fast", {}, "slices: cublaslt-fast splits K = 8192 > 4096"),  # (5, 7) unknown
    ("cublaslt-fast", {"promote": 128}, "slices: cublaslt-fast splits K = 8192"),
    ("cublaslt-fast", {"slices": 0}, "slices: expected a positive int"),
    ("cublaslt-fast", {"slices": 2.0}, "slices: expected a positive int"),
    ("cublaslt-fast", {"problem_shape": (64, 64)}, "problem_shape: expected (M, N, K)"),
    ("cublaslt-fast", {"problem_shape": (64, 64, 4096)}, "problem_shape: (64, 64, 4096) does"),
    ("cublaslt-fast", {"problem_shape": (4, 64, 8192)}, "problem_shape: (4, 64, 8192) does"),
    ("triton", {"slices": -1}, "slices: expected a positive int"),
    ("cublaslt", {"problem_shape": (1, 1, 8192)}, "problem_shape: (1, 1, 8192) does"),
])
def test_split_arguments_are_checked(name, kwargs, start):
    a, b = _long_k(5, 7, 8192)
    with pytest.raises(ValueError) as info:
        KERNELS[name](a, b, scale_a=np.float32(1), scale_b=np.float32(1), **kwargs)
    assert str(info.value).startswith(start), str(info.value)
