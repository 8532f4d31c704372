"""Bad arguments to fp8sim.gemm raise ValueError/TypeError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

from fp8sim import gemm

A = np.zeros((4, 64), np.uint8)
B = np.zeros((64, 3), np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "error", "starts"),
    [
        ({"b": np.zeros((63, 3), np.uint8)}, ValueError, "b:"),
        ({"a": np.zeros((4, 0), np.uint8), "b": np.zeros((0, 3), np.uint8)}, ValueError, "a:"),
        ({"a": np.zeros(64, np.uint8)}, ValueError, "a:"),
        ({"b": np.zeros((64, 3, 1), np.uint8)}, ValueError, "b:"),
        ({"a": np.zeros((4, 64), np.float32)}, TypeError, "a:"),
        ({"b": np.zeros((64, 3), np.int64)}, TypeError, "b:"),
        ({"promote": 48}, ValueError, "promote:"),
        ({"promote": -32}, ValueError, "promote:"),
        ({"promote": 32.0}, TypeError, "promote:"),
        ({"promote": True}, TypeError, "promote:"),
        ({"a_format": "e3m4"}, ValueError, "a_format:"),
        ({"b_format": "fp8"}, ValueError, "b_format:"),
        ({"preset": "volta"}, ValueError, "preset:"),
        ({"out_dtype": "float64"}, ValueError, "out_dtype:"),
        ({"c": np.zeros((4, 4), np.float32)}, ValueError, "c:"),
        ({"c": np.zeros((4, 3), np.float64)}, TypeError, "c:"),
        ({"scale_a": np.ones((4, 1), np.float32)}, ValueError, "scale_b:"),
        ({"scale_a": np.ones((4, 2), np.float32), "scale_b": np.ones((2, 1), np.float32),
          "promote": 32, "scaling": "tensor"}, ValueError, "scale_a:"),
        ({"scale_a": np.ones((4, 3), np.float32), "scale_b": np.ones((3, 1), np.float32),
          "promote": 32}, ValueError, "scale_a:"),
        ({"scale_a": np.ones((4, 1), np.float32), "scale_b": np.ones((1, 1), np.float32),
          "scaling": "group"}, ValueError, "promote:"),
        ({"scale_a": np.ones((4, 2), np.float32), "scale_b": np.ones((2, 2), np.float32),
          "promote": 32, "scaling": "group"}, ValueError, "scale_b:"),
        ({"scale_a": np.float64(0.1), "scale_b": np.float32(1), "scaling": "tensor"},
         ValueError, "scale_a:"),
        ({"scale_a": 1.0, "scale_b": 1.0, "scaling": "blockwise"}, ValueError, "scaling:"),
        ({"scaling": "row"}, ValueError, "scale_a:"),
        ({"preset": "exact", "promote": 32, "scale_a": np.ones((4, 2), np.float32),
          "scale_b": np.ones((2, 1), np.float32)}, ValueError, "scaling:"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, starts):
    args = {"a": A, "b": B} | kwargs
    a, b = args.pop("a"), args.pop("b")
    with pytest.raises(error) as info:
        gemm(a, b, **args)
    assert str(info.value).startswith(starts), str(info.value)


def test_ambiguous_scale_shapes_need_scaling():
    """(M, 1) and (1, N) with M = 1, N = 1, K <= promote fit both row and group scaling."""
    a = np.zeros((1, 32), np.uint8)
    b = np.zeros((32, 1), np.uint8)
    one = np.ones((1, 1), np.float32)
    with pytest.raises(ValueError, match="^scaling: .*ambiguous"):
        gemm(a, b, promote=32, scale_a=one, scale_b=one)
    assert gemm(a, b, promote=32, scale_a=one, scale_b=one, scaling="row").shape == (1, 1)


def test_ml_dtypes_contradicting_format():
    import ml_dtypes
    with pytest.raises(ValueError, match="^a:"):
        gemm(A.view(ml_dtypes.float8_e4m3fn), B, a_format="e5m2")


def test_empty_m_or_n_gives_empty_output():
    assert gemm(np.zeros((0, 64), np.uint8), B).shape == (0, 3)
    assert gemm(A, np.zeros((64, 0), np.uint8)).shape == (4, 0)


@pytest.mark.parametrize(("changes", "starts"), [({"frac_bits": -1}, "frac_bits:"),
                                                  ({"frac_bits": 60}, "frac_bits:"),
                                                  ({"terms": 0}, "terms:")])
def test_impossible_mma_steps_are_refused(changes, starts):
    from fp8sim.engine.mma import HOPPER
    with pytest.raises(ValueError, match=f"^{starts}"):
        HOPPER.replace(**changes)


A2 = np.zeros((4, 256), np.uint8)
B2 = np.zeros((256, 3), np.uint8)
SA2 = np.ones((4, 2), np.float32)


@pytest.mark.parametrize(
    ("kwargs", "error", "starts"),
    [
        ({"scale_b": np.ones((2, 1), np.float32), "scaling": "group-column"}, ValueError,
         "scale_b: 'group-column' scaling (group-column scales) expects shape (2, 3)"),
        ({"scale_b": np.ones((2, 3), np.float32), "scaling": "group"}, ValueError,
         "scale_b: 'group' scaling (block scales) expects shape (2, 1), got (2, 3) ((2, 3) fits "
         "scaling='group-column')"),
        ({"scale_b": np.ones((3, 3), np.float32)}, ValueError, "scale_a: shapes"),
        ({"scale_b": np.ones((2, 3), np.float32), "promote": 0, "scaling": "group-column"},
         ValueError, "promote:"),
        ({"scale_b": np.ones((2, 3), np.float32), "scaling": []}, ValueError, "scaling:"),
        ({"scale_b": np.ones((2, 3), np.float32), "scaling": 42}, ValueError, "scaling:"),
        ({"scale_b": np.ones((2, 3), np.float32), "scaling": ["group", "nope"]}, ValueError,
         "scaling:"),
        ({"scale_a": None, "scale_b": np.ones((2, 3), np.float32), "scaling": "group-column"},
         ValueError, "scale_a: 'group-column' scaling needs scale_a"),
        ({"scale_b": np.ones((2, 3), np.int32), "scaling": "group-column"}, TypeError,
         "scale_b:"),
        ({"scale_b": np.full((2, 3), 0.1), "scaling": "group-column"}, ValueError, "scale_b:"),
    ],
)
def test_bad_blockwise_scales_name_the_argument(kwargs, error, starts):
    args = {"scale_a": SA2, "promote": 128} | kwargs
    with pytest.raises(error) as info:
        gemm(A2, B2, **args)
    assert str(info.value).startswith(starts), str(info.value)


def test_scale_b_shape_picks_the_granularity():
    """(G, ceil(N/128)) is group scaling, (G, N) group-column (128x1, Wgrad)."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 0x70, (4, 256), dtype=np.uint8)
    b = rng.integers(0, 0x70, (256, 3), dtype=np.uint8)
    sbc = rng.random((2, 3), dtype=np.float32) + np.float32(0.5)
    got = gemm(a, b, promote=128, scale_a=SA2, scale_b=sbc)
    want = gemm(a, b, promote=128, scale_a=SA2, scale_b=sbc, scaling="group-column")
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    sb = sbc[:, :1].copy()
    got = gemm(a, b, promote=128, scale_a=SA2, scale_b=sb)
    assert np.array_equal(got.view(np.uint32), gemm(a, b, promote=128, scale_a=SA2, scale_b=sb,
                                                    scaling="group").view(np.uint32))


def test_scales_that_fit_two_of_a_kernels_layouts_are_ambiguous():
    """N = 1: scale_b (2, 1) is both 128x128 blocks and 128x1 tiles, whose arithmetic and
    split differ: no silent pick of the first (cublaslt-blockwise gave 128x128's bits)."""
    from fp8sim import KERNELS
    from fp8sim.engine.epilogue import GROUP, GROUP_COLUMN
    rng = np.random.default_rng(1)
    a = rng.integers(0, 0x7E, (4, 256), dtype=np.uint8)
    b = rng.integers(0, 0x7E, (256, 1), dtype=np.uint8)
    sa, sb = rng.random((4, 2)).astype(np.float32), rng.random((2, 1)).astype(np.float32)
    for scaling in ((GROUP, GROUP_COLUMN), None):
        with pytest.raises(ValueError, match=r"^scaling: .*ambiguous \(group or group-column\)"):
            gemm(a, b, promote=128, scale_a=sa, scale_b=sb, scaling=scaling)
    with pytest.raises(ValueError, match=r"^scaling: .*ambiguous"):
        KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=sb)
    for name in ("group", "group-column"):
        want = gemm(a, b, promote=128, scale_a=sa, scale_b=sb, scaling=name)
        got = KERNELS["cublaslt-blockwise"](a, b, scale_a=sa, scale_b=sb, scaling=name)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def _bits32(x) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


@pytest.mark.parametrize("huge", [2**31, 2**63, 2**64, np.uint64(2**64 - 32)])
def test_huge_promote_promotes_once_at_the_end(huge):
    """Any interval of K or more is one chain and one promotion (was OverflowError/TypingError
    from numba for 2**64); scales per K group then have one group."""
    from fp8sim import KERNELS
    from fp8sim.engine.splitk import gemm_split_k
    rng = np.random.default_rng(5)
    a = rng.integers(0, 0x78, (4, 256), dtype=np.uint8)
    b = rng.integers(0, 0x78, (256, 3), dtype=np.uint8) | 0x80
    assert np.array_equal(_bits32(gemm(a, b, promote=huge)), _bits32(gemm(a, b, promote=256)))
    sa, sb = np.full((4, 1), 0.75, np.float32), np.full((1, 1), 3.0, np.float32)
    assert np.array_equal(_bits32(gemm(a, b, promote=huge, scale_a=sa, scale_b=sb,
                                       scaling="group")),
                          _bits32(gemm(a, b, promote=256, scale_a=sa, scale_b=sb,
                                       scaling="group")))
    want = gemm_split_k(a, b, slices=2, promote=128)
    assert np.array_equal(_bits32(gemm_split_k(a, b, slices=2, promote=huge)),
                          _bits32(gemm_split_k(a, b, slices=2, promote=256)))
    assert want.shape == (4, 3)
    got = KERNELS["cublaslt"](a, b, scale_a=1.0, scale_b=1.0, promote=huge)
    assert np.array_equal(_bits32(got), _bits32(gemm(a, b, promote=256, scale_a=1.0,
                                                     scale_b=1.0)))


def test_split_k_names_its_bad_arguments():
    from fp8sim.engine.splitk import gemm_split_k
    with pytest.raises(ValueError, match="^a: expected a 2-D"):
        gemm_split_k(A2[None], B2, slices=2)
    with pytest.raises(ValueError, match="^out_dtype:"):
        gemm_split_k(A2, B2, slices=2, out_dtype=["float32"])
    with pytest.raises(ValueError, match="^out_dtype:"):
        gemm_split_k(A2, B2, slices=2, out_dtype="float64")
    got = gemm_split_k(A2, B2, slices=2, out_dtype=np.float16)  # a dtype, as gemm takes
    assert got.dtype == np.float16
