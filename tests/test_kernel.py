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


# --- split-K as it runs, against an independent sum of slices: each slice computed on its
# own K range (fp8sim.gemm on the K-slices, and the pure-Python reference on a few outputs),
# the slice results added in float32 in slice order here, not by fp8sim.engine.splitk.


def _slice_sum(parts: list[np.ndarray]) -> np.ndarray:
    """The float32 sum of slice results, first slice first, each addition rounded."""
    acc = parts[0]
    for p in parts[1:]:
        acc = (acc + p).astype(np.float32)
    return acc


def _bounds(k: int, size: int) -> list[tuple[int, int]]:
    """K cut into slices of `size` (the last shorter), written out here, not split_bounds."""
    return [(k0, min(k0 + size, k)) for k0 in range(0, k, size)]


def _reference_slices(a, b, bounds, picked, *, promote=0, ep=None, sa=None, sb=None):
    """The pure-Python reference on each slice at the picked outputs, added in order."""
    from fp8sim.engine import reference
    from fp8sim.engine.mma import HOPPER
    parts = []
    for k0, k1 in bounds:
        kw = {}
        if ep is not None:
            g0, g1 = k0 // promote, -(-k1 // promote)
            kw = {"epilogue": ep, "scale_a": sa[:, g0:g1], "scale_b": sb[g0:g1]}
        part = reference.gemm(a[:, k0:k1], b[k0:k1], "e4m3", "e4m3", HOPPER, promote=promote,
                              elements=picked, **kw)
        parts.append(part[tuple(np.array(picked).T)])
    return _slice_sum(parts)


def _ranged_long_k(m, n, k, cut, seed=4):
    """Long-K inputs whose products before K = cut are 2**16 times those after: the first
    slice's sum is so much larger that adding the slices in another order rounds otherwise
    (slice results of 14 significant bits, 16 binades apart, need more than float32's 24)."""
    rng = np.random.default_rng(seed)
    sizes = np.where(np.arange(k) < cut, np.float32(16), np.float32(1 / 16))
    a = fp8sim.encode(rng.standard_normal((m, k)).astype(np.float32) * sizes, "e4m3")
    b = fp8sim.encode(rng.standard_normal((k, n)).astype(np.float32) * sizes[:, None], "e4m3")
    return a, b


def test_cublaslt_fast_split_is_the_sum_of_its_slices():
    """64 x 64 x 8192 (CUBLASLT_FAST_SLICES_H100: 3 slices): K cut at 2816 and 5632
    (ceil(8192 / 3) = 2731 rounded up to 128), each slice one chain, added in order; then
    alpha = fl(scale_a * scale_b) once. Checked on the whole output with gemm on the K-slices
    and on sampled outputs with the reference; the other orders and cuts give other bits."""
    assert KERNELS["cublaslt-fast"].split[0].slices(64, 64, 8192) == 3
    a, b = _ranged_long_k(64, 64, 8192, cut=2816)
    sa, sb = np.float32(1.5), np.float32(0.75)
    got = KERNELS["cublaslt-fast"](a, b, scale_a=sa, scale_b=sb)
    bounds = _bounds(8192, 2816)
    parts = [gemm(np.ascontiguousarray(a[:, k0:k1]), np.ascontiguousarray(b[k0:k1]))
             for k0, k1 in bounds]
    alpha = np.float32(sa * sb)
    want = (_slice_sum(parts) * alpha).astype(np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    picked = [(0, 0), (63, 5)]
    ref = (_reference_slices(a, b, bounds, picked) * alpha).astype(np.float32)
    assert np.array_equal(got.view(np.uint32)[tuple(np.array(picked).T)], ref.view(np.uint32))
    # the bits tell the order and the cut apart (so the checks above can fail)
    backwards = (_slice_sum(parts[::-1]) * alpha).astype(np.float32)
    assert np.count_nonzero(backwards.view(np.uint32) != got.view(np.uint32)) > 0.1 * got.size
    cut_512 = [gemm(np.ascontiguousarray(a[:, k0:k1]), np.ascontiguousarray(b[k0:k1]))
               for k0, k1 in _bounds(8192, 3072)]
    other = (_slice_sum(cut_512) * alpha).astype(np.float32)
    assert np.count_nonzero(other.view(np.uint32) != got.view(np.uint32)) > 0.5 * got.size


def test_cublaslt_fast_split_of_a_crop():
    """A crop (3 rows, 4 columns) of the captured 64 x 64 x 8192 with problem_shape=: the
    same 3 slices, and the crop's outputs are the whole GEMM's."""
    a, b = _long_k(64, 64, 8192, seed=4)
    full = KERNELS["cublaslt-fast"](a, b, scale_a=np.float32(1), scale_b=np.float32(1))
    rows, cols = [0, 31, 63], [1, 2, 40, 63]
    ac, bc = np.ascontiguousarray(a[rows]), np.ascontiguousarray(b[:, cols])
    crop = KERNELS["cublaslt-fast"](ac, bc, scale_a=np.float32(1), scale_b=np.float32(1),
                                    problem_shape=(64, 64, 8192))
    assert np.array_equal(crop.view(np.uint32), full[np.ix_(rows, cols)].view(np.uint32))
    picked = [(0, 0), (2, 3)]
    ref = _reference_slices(ac, bc, _bounds(8192, 2816), picked)
    assert np.array_equal(crop.view(np.uint32)[tuple(np.array(picked).T)], ref.view(np.uint32))


def _blockwise_crop(k, n_scales, seed):
    """A 4 x 6 crop of a long-K GEMM with 1x128 scale_a and n_scales columns of scale_b."""
    rng = np.random.default_rng(seed)
    a, b = _long_k(4, 6, k, seed=seed)
    g = k // 128
    sa = np.ldexp(rng.random((4, g)) + 0.5, rng.integers(-8, 8, (4, g))).astype(np.float32)
    sb = np.ldexp(rng.random((g, n_scales)) + 0.5,
                  rng.integers(-8, 8, (g, n_scales))).astype(np.float32)
    return a, b, sa, sb


@pytest.mark.parametrize(("layout", "table", "size"), [
    ("group", CUBLASLT_BLOCKWISE_SPLIT, 3072),  # ceil(8192 / 3) rounded up to 512
    ("group-column", CUBLASLT_BLOCKWISE_WGRAD_SPLIT, 2816),  # ... rounded up to 128
])
def test_cublaslt_blockwise_split_is_the_sum_of_its_slices(layout, table, size):
    """(128, 128, 8192) is captured as 3 slices for both scale layouts: each slice runs the
    epilogue over its own K groups from +0 and the slices add in order (a 4 x 6 crop through
    problem_shape=). Checked against gemm on the K-slices with their scales, and the
    reference on sampled outputs."""
    from fp8sim.engine.epilogue import epilogue
    assert table.slices(128, 128, 8192) == 3
    a, b, sa, sb = _blockwise_crop(8192, 6 if layout == "group-column" else 1, seed=9)
    got = KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=sb, gpu="H200",
                                        problem_shape=(128, 128, 8192))  # captured there
    bounds = _bounds(8192, size)
    parts = [gemm(np.ascontiguousarray(a[:, k0:k1]), np.ascontiguousarray(b[k0:k1]),
                  promote=128, scaling=layout,
                  scale_a=np.ascontiguousarray(sa[:, k0 // 128:k1 // 128]),
                  scale_b=np.ascontiguousarray(sb[k0 // 128:k1 // 128])) for k0, k1 in bounds]
    want = _slice_sum(parts)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    picked = [(0, 0), (3, 5)]
    ref = _reference_slices(a, b, bounds, picked, promote=128, ep=epilogue(layout), sa=sa,
                            sb=sb)
    assert np.array_equal(got.view(np.uint32)[tuple(np.array(picked).T)], ref.view(np.uint32))
    one = gemm(a, b, promote=128, scaling=layout, scale_a=sa, scale_b=sb)
    backwards = _slice_sum(parts[::-1])
    for other in (one, backwards):  # an unsplit chain, another order: other bits
        assert not np.array_equal(other.view(np.uint32), got.view(np.uint32))


def test_triton_blockwise_never_splits():
    """torchao's Triton kernel at the same shape: one chain of promotions through all of K
    (the reference on sampled outputs), not cuBLASLt's three slices."""
    from fp8sim.engine.epilogue import epilogue
    a, b, sa, sb = _blockwise_crop(8192, 1, seed=9)
    got = KERNELS["torchao-triton-blockwise"](a, b, scale_a=sa, scale_b=sb,
                                              problem_shape=(128, 128, 8192))
    picked = [(1, 4)]
    ref = _reference_slices(a, b, [(0, 8192)], picked, promote=128,
                            ep=epilogue("group-a-first"), sa=sa, sb=sb)
    assert np.array_equal(got.view(np.uint32)[tuple(np.array(picked).T)], ref.view(np.uint32))
