"""The epilogue owns the scale layout: shapes, blocks, per-element expansion, cast scales.

`Epilogue.expand_scales` is checked against a loop over elements of the definitions
in `fp8sim.engine.epilogue`; `scales_from_blocks` by the identity that laying cast
scales out for an epilogue and expanding them gives every element its cast block's scale.
"""

from __future__ import annotations

import numpy as np
import pytest

from fp8sim.engine.epilogue import EPILOGUES, GROUP, GROUP_COLUMN, ROW, TENSOR

SHAPES = [(5, 300, 7), (130, 256, 260), (1, 33, 1), (64, 128, 300)]


def _per_element(ep, sa, sb, m, k, n, p):
    """Each element's scale by the definitions, one element at a time."""
    fa = np.empty((m, k), np.float32)
    fb = np.empty((k, n), np.float32)
    for i in range(m):
        for kk in range(k):
            if ep.scale_a == "tensor":
                fa[i, kk] = sa
            elif ep.scale_a == "row":
                fa[i, kk] = sa[i, 0]
            else:
                fa[i, kk] = sa[i, kk // p]
    for kk in range(k):
        for j in range(n):
            if ep.scale_b == "tensor":
                fb[kk, j] = sb
            elif ep.scale_b == "column":
                fb[kk, j] = sb[0, j]
            elif ep.scale_b == "block":
                fb[kk, j] = sb[kk // p, j // ep.block_n]
            else:
                fb[kk, j] = sb[kk // p, j]
    return fa, fb


@pytest.mark.parametrize("name", list(EPILOGUES))
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_expand_scales_gives_each_element_its_scale(name, m, k, n):
    ep = EPILOGUES[name]
    p = 128
    want_a, want_b = ep.scale_shapes(m, k, n, p)
    rng = np.random.default_rng(m * k + n)
    sa = rng.uniform(0.5, 2, want_a).astype(np.float32)
    sb = rng.uniform(0.5, 2, want_b).astype(np.float32)
    fa, fb = ep.expand_scales(sa, sb, m, k, n, p)
    ra, rb = _per_element(ep, sa, sb, m, k, n, p)
    np.testing.assert_array_equal(fa.view(np.uint32), ra.view(np.uint32))
    np.testing.assert_array_equal(fb.view(np.uint32), rb.view(np.uint32))
    with pytest.raises(ValueError, match="^scale_a: expected shape"):
        ep.expand_scales(np.ones((m + 1, 3), np.float32), sb, m, k, n, p)


def _cast_scales(shape, block, rng):
    bm, bk = (max(1, min(b, s)) for b, s in zip(block, shape, strict=True))
    return rng.uniform(0.5, 2, (-(-shape[0] // bm), -(-shape[1] // bk))).astype(np.float32)


def _full(s, block, shape):
    bm, bk = (max(1, min(b, n)) for b, n in zip(block, shape, strict=True))
    return np.repeat(np.repeat(s, bm, 0), bk, 1)[: shape[0], : shape[1]]


CASES = [  # (epilogue, A block, B block)
    (GROUP, (1, 128), (128, 128)), (GROUP, (2, 256), (128, 256)),
    (GROUP_COLUMN, (1, 128), (128, 1)), (GROUP_COLUMN, (1, 128), (128, 128)),
    (TENSOR, (10**6, 10**6), (10**6, 10**6)), (ROW, (1, 10**6), (10**6, 1)),
    (ROW, (10**6, 10**6), (10**6, 10**6)), (ROW, (4, 10**6), (10**6, 3)),
]


@pytest.mark.parametrize("ep,a_block,b_block", CASES)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_scales_from_blocks_keeps_every_elements_cast_scale(ep, a_block, b_block, m, k, n):
    rng = np.random.default_rng(k)
    sa = _cast_scales((m, k), a_block, rng)
    sb = _cast_scales((k, n), b_block, rng)
    la, lb = ep.scales_from_blocks(sa, a_block, sb, b_block, m, k, n, 128)
    assert (np.shape(la), np.shape(lb)) == ep.scale_shapes(m, k, n, 128)
    fa, fb = ep.expand_scales(la, lb, m, k, n, 128)
    np.testing.assert_array_equal(fa, _full(sa, a_block, (m, k)))
    np.testing.assert_array_equal(fb, _full(sb, b_block, (k, n)))


def test_scales_from_blocks_refuses_blocks_that_do_not_fit():
    m, k, n = 4, 256, 256
    one = np.ones
    with pytest.raises(ValueError, match="^a_block: the row epilogue takes one scale per row"):
        ROW.scales_from_blocks(one((4, 2)), (1, 128), one((1, n)), (k, 1), m, k, n, 0)
    with pytest.raises(ValueError, match="^b_block: .*blocks of 64 along K split a group"):
        GROUP.scales_from_blocks(one((4, 2)), (1, 128), one((4, 2)), (64, 128), m, k, n, 128)
    with pytest.raises(ValueError, match="^b_block: .*per 128 columns; blocks of 32"):
        GROUP.scales_from_blocks(one((4, 2)), (1, 128), one((2, 8)), (128, 32), m, k, n, 128)
    with pytest.raises(ValueError, match="^a_block: the tensor epilogue takes one scale"):
        TENSOR.scales_from_blocks(one((4, 1)), (1, k), one((1, 1)), (k, n), m, k, n, 0)
    with pytest.raises(ValueError, match="^promote:"):
        GROUP.scales_from_blocks(one((4, 2)), (1, 128), one((2, 2)), (128, 128), m, k, n, 0)
    with pytest.raises(ValueError, match=r"^a_block: scales of shape \(4, 3\)"):
        GROUP.scales_from_blocks(one((4, 3)), (1, 128), one((2, 2)), (128, 128), m, k, n, 128)
