"""Named kernels are gemm with their settings."""

from __future__ import annotations

import numpy as np
import pytest

from fp8sim import gemm
from fp8sim.engine.kernel import KERNELS, kernel


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
