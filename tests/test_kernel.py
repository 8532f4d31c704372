"""Named kernels are gemm with their settings, the blockwise ones pick their epilogue by
the scale layout, and the kernels that split K apply their split (or refuse an unknown one)."""

from __future__ import annotations

import numpy as np
import pytest

import fp8sim
from fp8sim import gemm
from fp8sim.engine.epilogue import as_candidates
from fp8sim.engine.kernel import (
    CUBLASLT_BLOCKWISE_SPLIT,
    CUBLASLT_BLOCKWISE_WGRAD_SPLIT,
    KERNELS,
    kernel,
)
from fp8sim.engine.splitk import gemm_split_k


def _scales(rng, ep, m, k, n, promote):
    """Random positive scales in the epilogue's shapes (None where it has none)."""
    out = []
    for shape in ep.scale_shapes(m, k, n, promote):
        if shape is None:
            out.append(None)
        else:
            out.append(np.float32(rng.random() + 0.5) if shape == () else
                       (rng.random(shape, dtype=np.float32) + np.float32(0.5)))
    return {"scale_a": out[0], "scale_b": out[1]}


def _layouts(k):
    """(epilogue, scales) for each scale layout the kernel takes (one entry for none)."""
    cands = as_candidates(k.scaling)
    return [None] if cands is None else cands


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_named_kernel_is_gemm_with_its_settings(name):
    rng = np.random.default_rng(0)
    m, kk, n = 8, 300, 5
    a = rng.integers(0, 0x70, (m, kk), dtype=np.uint8)
    b = rng.integers(0, 0x70, (kk, n), dtype=np.uint8)
    k = KERNELS[name]
    for ep in _layouts(k):
        scales = {} if ep is None else _scales(rng, ep, m, kk, n, k.promote)
        got = k(a, b, **scales)
        want = gemm(a, b, promote=k.promote, scaling=ep, out_dtype=k.out_dtype, **scales)
        assert got.dtype == want.dtype
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), ep
    assert kernel(name) is k and k.description and k.scaling_label


def test_unknown_kernel():
    with pytest.raises(ValueError, match="^kernel:"):
        kernel("cutlass")


def _blockwise(m=70, k=512, n=200, seed=1, column=False):
    rng = np.random.default_rng(seed)
    a = fp8sim.encode(rng.standard_normal((m, k)).astype(np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((k, n)).astype(np.float32), "e4m3")
    g = -(-k // 128)
    sa = np.ldexp(rng.random((m, g)) + 0.5, rng.integers(-12, 4, (m, g))).astype(np.float32)
    nb = n if column else -(-n // 128)
    sb = np.ldexp(rng.random((g, nb)) + 0.5, rng.integers(-12, 4, (g, nb))).astype(np.float32)
    return a, b, sa, sb


@pytest.mark.parametrize("name", ["cublaslt-blockwise", "torchao-triton-blockwise"])
@pytest.mark.parametrize("column", [False, True])
def test_blockwise_kernels_pick_the_epilogue_by_scale_layout(name, column):
    a, b, sa, sb = _blockwise(column=column)
    want = {("cublaslt-blockwise", False): "group",
            ("torchao-triton-blockwise", False): "group-a-first"}.get((name, column),
                                                                       "group-column")
    got = KERNELS[name](a, b, scale_a=sa, scale_b=sb, out_dtype="bfloat16")
    ref = gemm(a, b, promote=128, scale_a=sa, scale_b=sb, scaling=want, out_dtype="bfloat16")
    assert np.array_equal(got.view(np.uint16), ref.view(np.uint16))


@pytest.mark.parametrize(("sa_shape", "sb_shape"), [((70, 4), (4, 3)), ((70, 4), (4, 1)),
                                                    ((70, 3), (3, 2)), ((70, 4), (2, 200)),
                                                    ((70, 1), (1, 200))])
def test_blockwise_kernels_refuse_scales_of_no_layout(sa_shape, sb_shape):
    a, b, _, _ = _blockwise()
    with pytest.raises(ValueError, match=r"^scale_a: shapes .* fit no scaling; expected group"):
        KERNELS["cublaslt-blockwise"](a, b, scale_a=np.ones(sa_shape, np.float32),
                                      scale_b=np.ones(sb_shape, np.float32))


def test_cublaslt_blockwise_refuses_a_long_k_of_unknown_split():
    a, b, sa, sb = _blockwise(m=4, k=6272, n=8)  # N = 8: off every recorded grid
    for gpu in ("H100", "H200"):
        with pytest.raises(ValueError, match="^slices: "):
            KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=sb, gpu=gpu)
    # the caller can say how many slices; Triton never splits
    got = KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=sb, slices=3)
    want = gemm_split_k(a, b, slices=3, align=CUBLASLT_BLOCKWISE_SPLIT.align, promote=128,
                        scale_a=sa, scale_b=sb, scaling="group")
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    one = KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=sb, slices=1)
    assert np.array_equal(one.view(np.uint32), gemm(a, b, promote=128, scale_a=sa,
                                                    scale_b=sb).view(np.uint32))
    KERNELS["torchao-triton-blockwise"](a, b, scale_a=sa, scale_b=sb)


def test_short_k_is_not_split():
    assert CUBLASLT_BLOCKWISE_SPLIT.slices(64, 64, 4096) == 1
    assert CUBLASLT_BLOCKWISE_SPLIT.slices(64, 64, 128) == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_slices(bad):
    a, b, sa, sb = _blockwise()
    with pytest.raises(ValueError, match="^slices:"):
        KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=sb, slices=bad)


def test_blockwise_outputs_of_many_tiles_are_not_split():
    """cuBLASLt split K only for outputs of few 128 x 128 tiles; the DeepSeek-V3 layer shapes
    (and every capture of 9+ tiles forward, 16+ Wgrad) ran one chain: shapes not captured
    follow that rule, shapes between the evidence are refused."""
    assert CUBLASLT_BLOCKWISE_SPLIT.slices(2048, 7168, 18432) == 1
    assert CUBLASLT_BLOCKWISE_SPLIT.slices(64, 2112, 7168) == 1
    assert CUBLASLT_BLOCKWISE_SPLIT.slices(384, 512, 65536) == 1
    assert CUBLASLT_BLOCKWISE_SPLIT.slices(256, 384, 8192) is None  # 6 tiles: no evidence
    assert CUBLASLT_BLOCKWISE_SPLIT.slices(128, 128, 8192) == 3      # captured
    assert CUBLASLT_BLOCKWISE_WGRAD_SPLIT.slices(7168, 2048, 8192) == 1
    assert CUBLASLT_BLOCKWISE_WGRAD_SPLIT.slices(384, 384, 8192) is None


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
    ("cublaslt-fast", {}, "slices: cuBLASLt's split of (5, 7, 8192)"),  # (5, 7) unknown
    ("cublaslt-fast", {"promote": 128}, "slices: cuBLASLt's split of (5, 7, 8192)"),
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
