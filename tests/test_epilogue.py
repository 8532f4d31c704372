"""Scaling epilogues as data: every variant in the engine against the pure-Python reference.

Shapes cross the engine's 64 x 64 output tiles and the K groups and 128-column blocks of
the scales; scales span the float32 range (subnormals, overflow of fl(sa * sb), zeros,
signs, the odd Inf/NaN). The reference is slow, so each example checks a sample of the
outputs that always includes the tile and block edges.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fp8sim import gemm
from fp8sim.engine import reference
from fp8sim.engine.epilogue import (
    A_GRANULARITIES,
    B_GRANULARITIES,
    EPILOGUES,
    GROUP,
    ORDERS,
    Epilogue,
    epilogue,
    variants,
)
from fp8sim.engine.mma import HOPPER, PRESETS
from fp8sim.formats.info import E4M3, E5M2

SCALE = int(os.environ.get("FP8SIM_EXAMPLES_SCALE", "1"))


def _all_epilogues() -> list[Epilogue]:
    """Every valid combination of timing, granularities, order and fusion."""
    out = []
    for sa, sb, order in itertools.product(A_GRANULARITIES, B_GRANULARITIES, ORDERS):
        for fused in (True, False):
            out.append(Epilogue(name="v", when="promotion", scale_a=sa, scale_b=sb,
                                order=order, fused=fused, block_n=128))
        if sa != "group" and sb not in ("block", "group-column"):
            out.append(Epilogue(name="v", when="end", scale_a=sa, scale_b=sb, order=order,
                                fused=False))
    return out


ALL = _all_epilogues()


def bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).view(np.uint32)


def _scales(rng: np.random.Generator, shape, kind: str) -> np.ndarray | np.float32:
    """float32 scales: moderate, wide (subnormal to overflow when multiplied), or with specials."""
    if shape == ():
        shape1 = (1,)
    else:
        shape1 = shape
    if kind == "moderate":
        v = np.ldexp(rng.random(shape1) + 0.5, rng.integers(-8, 8, shape1))
    else:
        v = np.ldexp(rng.random(shape1) + 0.5, rng.integers(-140, 120, shape1))
        v *= rng.choice([-1.0, 1.0], shape1)
        if kind == "special":
            pool = np.array([0.0, -0.0, np.inf, np.nan, 1e-45, 3.4e38])
            pick = rng.random(shape1) < 0.1
            v = np.where(pick, pool[rng.integers(0, pool.size, shape1)], v)
    v = v.astype(np.float32)
    return v.reshape(()) if shape == () else v


def _sample(rng: np.random.Generator, m: int, n: int, count: int) -> list[tuple[int, int]]:
    """Output elements to check: the edges of tiles and column blocks, and random ones."""
    rows = {0, m - 1} | {r for r in (63, 64, 127, 128) if r < m}
    cols = {0, n - 1} | {c for c in (63, 64, 127, 128) if c < n}
    picked = {(r, c) for r in rows for c in cols}
    while len(picked) < min(count, m * n):
        picked.add((int(rng.integers(0, m)), int(rng.integers(0, n))))
    return sorted(picked)


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 160),
    n=st.integers(1, 160),
    k=st.integers(1, 300),
    promote=st.sampled_from([32, 64, 128]),
    ep=st.sampled_from(ALL),
    kind=st.sampled_from(["moderate", "wide", "special"]),
    fmts=st.sampled_from([(E4M3, E4M3), (E4M3, E5M2), (E5M2, E5M2)]),
    with_c=st.booleans(),
)
def test_every_epilogue_matches_the_reference(seed, m, n, k, promote, ep, kind, fmts, with_c):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    b = rng.integers(0, 256, (k, n), dtype=np.uint8)
    finite = rng.random() < 0.8  # mostly finite codes: NaN/Inf would hide the scaling
    if finite:
        a = np.where((a & 0x7F) >= 0x7B, a & 0x8F, a).astype(np.uint8)
        b = np.where((b & 0x7F) >= 0x7B, b & 0x8F, b).astype(np.uint8)
    c = rng.standard_normal((m, n)).astype(np.float32) if with_c else None
    if ep.when == "end" and rng.random() < 0.5:
        promote = 0  # scales at the end apply to an unpromoted chain too
    want_a, want_b = ep.scale_shapes(m, k, n, promote)
    sa = None if want_a is None else _scales(rng, want_a, kind)
    sb = None if want_b is None else _scales(rng, want_b, kind)
    got = gemm(a, b, a_format=fmts[0], b_format=fmts[1], promote=promote, c=c, scale_a=sa,
               scale_b=sb, scaling=ep)
    picked = _sample(rng, m, n, 24)
    want = reference.gemm(a, b, fmts[0], fmts[1], HOPPER, promote=promote, c=c, epilogue=ep,
                          scale_a=sa, scale_b=sb, elements=picked)
    idx = tuple(np.array(picked).T)
    assert np.array_equal(bits(got)[idx], bits(want)[idx]), ep.formula


@pytest.mark.parametrize("ep", ALL, ids=lambda e: "-".join(str(v) for v in e.key[:5]))
def test_each_epilogue_on_tile_and_block_edges(ep):
    """Every variant once, deterministically: 70 x 140 outputs (two row tiles, three column
    tiles, two 128-column blocks), three K groups, wide scales; sampled outputs."""
    rng = np.random.default_rng(ALL.index(ep))
    m, k, n, promote = 70, 260, 140, 128
    a = rng.integers(0, 0x7B, (m, k), dtype=np.uint8) | (rng.integers(0, 2, (m, k)) << 7)
    b = rng.integers(0, 0x7B, (k, n), dtype=np.uint8) | (rng.integers(0, 2, (k, n)) << 7)
    a, b = a.astype(np.uint8), b.astype(np.uint8)
    want_a, want_b = ep.scale_shapes(m, k, n, promote)
    sa = None if want_a is None else _scales(rng, want_a, "wide")
    sb = None if want_b is None else _scales(rng, want_b, "wide")
    got = gemm(a, b, promote=promote, scale_a=sa, scale_b=sb, scaling=ep)
    picked = _sample(rng, m, n, 24)
    want = reference.gemm(a, b, E4M3, E4M3, HOPPER, promote=promote, epilogue=ep, scale_a=sa,
                          scale_b=sb, elements=picked)
    idx = tuple(np.array(picked).T)
    assert np.array_equal(bits(got)[idx], bits(want)[idx]), ep.formula


@pytest.mark.parametrize("ep", [e for e in ALL if e.when == "end"][:9])
def test_end_epilogues_with_the_ideal_and_exact_steps(ep):
    """Scales at the end apply to whatever the step model accumulated."""
    rng = np.random.default_rng(11)
    a = rng.integers(0, 0x70, (5, 70), dtype=np.uint8)
    b = rng.integers(0, 0x70, (70, 7), dtype=np.uint8)
    want_a, want_b = ep.scale_shapes(5, 70, 7, 0)
    sa = None if want_a is None else _scales(rng, want_a, "wide")
    sb = None if want_b is None else _scales(rng, want_b, "wide")
    for step in (PRESETS["ideal"], PRESETS["exact"]):
        got = gemm(a, b, scale_a=sa, scale_b=sb, scaling=ep, preset=step)
        want = reference.gemm(a, b, E4M3, E4M3, step, epilogue=ep, scale_a=sa, scale_b=sb)
        assert np.array_equal(bits(got), bits(want))


def test_named_epilogues_keep_the_old_bits():
    """"group", "tensor" and "row" are Epilogue instances with the formulas they always had."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 0x70, (16, 256), dtype=np.uint8)
    b = rng.integers(0, 0x70, (256, 130), dtype=np.uint8)
    sa = _scales(rng, (16, 2), "moderate")
    sb = _scales(rng, (2, 2), "moderate")
    got = gemm(a, b, promote=128, scale_a=sa, scale_b=sb, scaling="group")
    parts = [gemm(a[:, g * 128:(g + 1) * 128].copy(), b[g * 128:(g + 1) * 128].copy())
             for g in range(2)]
    acc = np.zeros((16, 130), np.float32)
    for g, p in enumerate(parts):
        s = (sa[:, g:g + 1] * np.repeat(sb[g], 128)[:130][None, :]).astype(np.float32)
        acc = np.array([[reference.fma_float32(p[i, j], s[i, j], acc[i, j]) for j in range(130)]
                        for i in range(16)], np.float32)
    assert np.array_equal(bits(got), bits(acc))
    plain = gemm(a, b, promote=128)
    ta, tb = np.float32(3.0), np.float32(0.1)
    with np.errstate(over="ignore"):
        assert np.array_equal(bits(gemm(a, b, promote=128, scale_a=ta, scale_b=tb)),
                              bits(plain * np.float32(ta * tb)))
        ra, rb = _scales(rng, (16, 1), "wide"), _scales(rng, (1, 130), "wide")
        assert np.array_equal(bits(gemm(a, b, promote=128, scale_a=ra, scale_b=rb)),
                              bits((plain * rb) * ra))
    assert epilogue("group") is GROUP and set(EPILOGUES) >= {"group", "tensor", "row"}


def test_variants_name_the_captured_ones():
    names = [v.name for v in variants(GROUP)]
    assert names[0] == "group" and "group-a-first" in names and len(names) == 6
    assert len({v.key for v in variants(GROUP)}) == 6
    assert len(variants(EPILOGUES["row"])) == 3  # no fma at the end
    assert EPILOGUES["group-a-first"].formula == "acc = fma(fl(p*sa), sb, acc) at each promotion"
    assert EPILOGUES["row"].formula == "out = fl(fl(acc*sb) * sa) at the end"


@pytest.mark.parametrize(("fields", "start"), [
    ({"when": "sometimes"}, "when:"),
    ({"scale_a": "column"}, "scale_a:"),
    ({"scale_b": "row"}, "scale_b:"),
    ({"order": "random"}, "order:"),
    ({"fused": 1}, "fused:"),
    ({"block_n": 0}, "block_n:"),
    ({"when": "end", "scale_a": "group", "scale_b": "tensor", "fused": False}, "scale_a:"),
    ({"when": "end", "scale_a": "tensor", "scale_b": "group-column", "fused": False},
     "scale_b:"),
    ({"when": "end", "scale_a": "tensor", "scale_b": "tensor", "fused": True}, "fused:"),
])
def test_impossible_epilogues_are_refused(fields, start):
    with pytest.raises((ValueError, TypeError)) as info:
        Epilogue(name="x", **fields)
    assert str(info.value).startswith(start)
