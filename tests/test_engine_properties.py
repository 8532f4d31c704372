"""The numba GEMM engine against the pure-Python reference on shapes that cross tiles.

`tests/test_gemm_engine.py` holds the engine to `fp8sim.engine.reference` on small
shapes; here M and N run past two tiles of 128 (the CPU engine's tiles are 128 x 128,
`fp8sim.engine._gemm_kernels.IB` and `JB`), up to 300, with the tile edges 127/128/129,
255/256/257 drawn often, so rows and columns of the second and third tile, and the second
and third 128-column block of scale_b, are read through the tile offsets. K is ragged up to
600 (across MMA steps of 32 and promotion boundaries; M * N * K is capped so that the
largest outputs take no longer than the old 160 x 160 x 600), and the inputs are
adversarial: large same-sign codes near overflow (the int32 guard of wide what-if
accumulators), subnormals, NaN/Inf, zero rows and columns of +-0, C from -0 through
subnormal to FLT_MAX. Every preset runs, most examples on "hopper"; every scaling runs.

The reference is slow (about 14 us per product), so each example compares a sample of
outputs that always includes the first and last row and column of its tiles, at most 10,000
products in all. Every example is also checked for *tile invariance* on all outputs: the
rows from r0 on (the columns from c0 on) computed alone give the bits of the whole GEMM,
for shifts of one tile, two tiles and a random amount, so every output is computed again
in another tile at another place. That check is cheap, needs no reference, and catches
any read through a tile-local index.

`make test-all` (FP8SIM_EXAMPLES_SCALE=10) runs ten times the examples.
"""

from __future__ import annotations

import os

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fp8sim import gemm
from fp8sim.engine import _gemm_kernels as _k
from fp8sim.engine import reference
from fp8sim.engine.gemm import SCALINGS
from fp8sim.engine.mma import HOPPER, PRESETS, MMAStep
from fp8sim.formats.info import E4M3, E5M2, FormatInfo

SCALE = int(os.environ.get("FP8SIM_EXAMPLES_SCALE", "1"))
TILE_M, TILE_N = _k.IB, _k.JB
MAX_M = MAX_N = 300  # past two tiles of 128: a third, partial tile in each direction
MAX_K = 600
MAX_MNK = 160 * 160 * 600  # engine work per example: at most the old largest shape
REFERENCE_PRODUCTS = 10_000  # per example: at most about 0.15 s of the pure-Python reference

# "hopper" takes 8 of 14 draws; the others once each (frac_bits 25 and 28 use int64 sums)
STEPS = [PRESETS["hopper"]] * 8 + [
    PRESETS["ideal"], PRESETS["exact"], PRESETS["ada"], PRESETS["blackwell"],
    HOPPER.replace(frac_bits=16), HOPPER.replace(frac_bits=28, terms=64)]

KINDS = ["all", "finite", "bigsame", "nearmax", "tiny", "special", "zerolines", "sparse"]
C_KINDS = [None, "normal", "bits", "edge", "negzero"]


def bits(x: np.ndarray) -> np.ndarray:
    """Raw bits of a float32 (uint32) or 16-bit float (uint16) array."""
    x = np.asarray(x)
    return x.view(np.uint32 if x.dtype.itemsize == 4 else np.uint16)


def codes(rng: np.random.Generator, shape, kind: str, fmt: FormatInfo, axis: int) -> np.ndarray:
    """FP8 codes of one adversarial kind; `axis` is the one whose lines "zerolines" zeroes
    (0: rows of A, 1: columns of B)."""
    top = fmt.max_code
    finite = np.array([c for c in range(256) if (c & 0x7F) <= top], np.uint8)
    if kind == "all":  # every code, NaN and Inf included
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == "finite":
        return finite[rng.integers(0, finite.size, shape)]
    if kind == "bigsame":  # the top three codes, one sign: 32 products near 2**(F+2) each
        sign = np.uint8(0x80 * rng.integers(0, 2))
        return (top - rng.integers(0, 3, shape)).astype(np.uint8) | sign
    if kind == "nearmax":  # the top binade, random signs
        mant = (1 << fmt.mantissa_bits) - 1
        out = (top - rng.integers(0, mant + 1, shape)).astype(np.uint8)
        return out | (rng.integers(0, 2, shape) << 7).astype(np.uint8)
    if kind == "tiny":  # zeros and subnormals, a few normal codes
        sub = rng.integers(0, 1 << fmt.mantissa_bits, shape)
        out = np.where(rng.random(shape) < 0.1, finite[rng.integers(0, finite.size, shape)], sub)
        return (out | (rng.integers(0, 2, shape) << 7)).astype(np.uint8)
    if kind == "special":  # finite codes with a few NaN and Inf
        out = finite[rng.integers(0, finite.size, shape)]
        specials = np.array(fmt.nan_codes + ((fmt.inf_code, fmt.inf_code | 0x80)
                                             if fmt.has_inf else ()), np.uint8)
        hit = rng.random(shape) < 0.03
        return np.where(hit, specials[rng.integers(0, specials.size, shape)], out).astype(
            np.uint8)
    if kind == "zerolines":  # whole rows (of A) or columns (of B) of +0 or -0
        out = finite[rng.integers(0, finite.size, shape)]
        lines = rng.random(shape[axis]) < 0.4
        zero = np.where(rng.random(shape) < 0.5, 0x80, 0x00).astype(np.uint8)
        mask = lines[:, None] if axis == 0 else lines[None, :]
        return np.where(mask, zero, out).astype(np.uint8)
    assert kind == "sparse"
    out = finite[rng.integers(0, finite.size, shape)]
    return np.where(rng.random(shape) < 0.7, 0, out).astype(np.uint8)


def c_values(rng: np.random.Generator, shape, kind: str) -> np.ndarray:
    """Accumulator inputs: normal at a random scale, random bits, edge values, all -0."""
    if kind == "normal":
        return (rng.standard_normal(shape) * 2.0 ** rng.integers(-10, 20)).astype(np.float32)
    if kind == "bits":
        return rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32).view(np.float32)
    if kind == "negzero":
        return np.full(shape, -0.0, np.float32)
    pool = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-40, -3e-39, 1.1754944e-38, 3.4e38, -3.4e38,
                     np.inf, -np.inf, np.nan, 1.0, -1.5, 65504.0, 2.0**-20, 3.0e5, -7.7e4],
                    dtype=np.float32)
    return pool[rng.integers(0, pool.size, shape)]


def scale_values(rng: np.random.Generator, shape, kind: str) -> np.ndarray:
    """float32 scales: full 24-bit significands (so the epilogue's roundings matter), powers
    of two, or edge values (0, subnormal, huge)."""
    if kind == "pow2":
        return np.ldexp(np.float32(1.0), rng.integers(-20, 20, shape)).astype(np.float32)
    out = np.ldexp(rng.random(shape) + 0.5, rng.integers(-20, 20, shape)).astype(np.float32)
    if kind == "edge":
        pool = np.array([0.0, 1e-40, 3.0e38, 2.0**-126, 1.0], np.float32)
        hit = rng.random(shape) < 0.2
        out = np.where(hit, pool[rng.integers(0, pool.size, shape)], out).astype(np.float32)
    return out


# --- scalings. Each is described by *granularities* (what one scale covers) and the
# reference applies it by its definition. With `fp8sim.engine.epilogue` (epilogues as data)
# every named epilogue is drawn with the granularities and reference arithmetic it
# declares; without it, the three built-in scalings below. A scaling that is neither
# fails test_every_scaling_is_covered: that is the hook for new epilogues.

try:
    from fp8sim.engine.epilogue import EPILOGUES as _EPILOGUES
except ImportError:  # before epilogues as data: the three scalings of the contract
    _EPILOGUES = {}

# (granularity of scale_a, of scale_b, columns per scale_b block, applied at promotion)
_BUILTIN = {"group": ("group", "block", 128, True), "tensor": ("tensor", "tensor", 1, False),
            "row": ("row", "column", 1, False)}


def _granularity(scaling: str) -> tuple[str, str, int, bool]:
    """(scale_a granularity, scale_b granularity, block_n, at promotion) of a scaling."""
    if scaling in _EPILOGUES:
        ep = _EPILOGUES[scaling]
        return ep.scale_a, ep.scale_b, ep.block_n, ep.when == "promotion"
    return _BUILTIN[scaling]


def _make_scales(scaling: str, rng, m: int, k: int, n: int, promote: int, kind: str):
    """(scale_a, scale_b) of the shapes the scaling takes (None where it has none)."""
    ga, gb, block_n, _ = _granularity(scaling)
    g = -(-k // promote) if promote else 1
    shape_a = {"none": None, "tensor": (), "row": (m, 1), "group": (m, g)}[ga]
    shape_b = {"none": None, "tensor": (), "column": (1, n), "block": (g, -(-n // block_n)),
               "group-column": (g, n)}[gb]
    return tuple(None if s is None else scale_values(rng, s, kind)[()] if s == () else
                 scale_values(rng, s, kind) for s in (shape_a, shape_b))


def _rows_of(scaling, sa, rows):
    """scale_a for a subset (list or slice) of the rows."""
    ga = _granularity(scaling)[0]
    return sa if ga in ("none", "tensor") else np.ascontiguousarray(sa[rows])


def _cols_of(scaling, sb, lo, hi):
    """scale_b for columns lo:hi computed alone (for blocks: lo on a block edge or one
    column), so that their local column indices find the same scales."""
    _, gb, block_n, _ = _granularity(scaling)
    if gb in ("none", "tensor"):
        return sb
    if gb == "block":
        return np.ascontiguousarray(sb[:, lo // block_n:(hi - 1) // block_n + 1])
    return np.ascontiguousarray(sb[:, lo:hi])


def _reference(a, b, af, bf, step, promote, c, scaling, sa, sb, rows, cols) -> np.ndarray:
    """The reference's float32 outputs at rows x cols (the scaling epilogue included), one
    column at a time so that column scales keep their global column's block."""
    out = np.empty((len(rows), len(cols)), np.float32)
    for jj, j in enumerate(cols):
        col_c = None if c is None else np.ascontiguousarray(c[np.ix_(rows, [j])])
        kw = {"promote": promote, "c": col_c}
        if scaling is None:
            pass
        elif _EPILOGUES:
            kw |= {"epilogue": _EPILOGUES[scaling], "scale_a": _rows_of(scaling, sa, rows),
                   "scale_b": _cols_of(scaling, sb, j, j + 1)}
        elif scaling == "group":
            kw["group_scale"] = (sa[rows], _cols_of(scaling, sb, j, j + 1))
        out[:, jj:jj + 1] = reference.gemm(a[rows], b[:, [j]], af, bf, step, **kw)
    if not _EPILOGUES and scaling in ("tensor", "row"):  # the contract's end epilogues
        with np.errstate(over="ignore", invalid="ignore"):
            if scaling == "tensor":  # fl(acc * fl(scale_a * scale_b))
                out = out * np.float32(sa * sb)
            else:  # fl(fl(acc * scale_b[j]) * scale_a[i])
                out = (out * sb[:, cols]) * sa[rows]
    out = out.astype(np.float32)
    out.view(np.uint32)[np.isnan(out)] = 0x7FFFFFFF
    return out


def test_every_scaling_is_covered():
    """The hook for new epilogues: every scaling `fp8sim.gemm` accepts is drawn by the
    property test, with its scale shapes and reference arithmetic."""
    missing = [s for s in SCALINGS if s not in _EPILOGUES and s not in _BUILTIN]
    assert not missing, (f"scalings {missing} have no property test: describe them in "
                         "_BUILTIN (or as fp8sim.engine.epilogue epilogues) and in _reference")
    if _EPILOGUES:
        assert "epilogue" in reference.gemm.__code__.co_varnames


def _sample(size: int, tile: int, rng: np.random.Generator, budget: int) -> list[int]:
    """The first and last index of every tile (and the ends), plus random ones up to budget."""
    keep = {0, size - 1}
    for edge in range(tile, size, tile):
        keep |= {edge - 1, edge}
    keep = sorted(keep)
    if len(keep) > budget:  # always the first and last, plus a random choice of the rest
        inner = rng.choice(keep[1:-1], size=max(budget - 2, 0), replace=False)
        keep = sorted({keep[0], keep[-1], *inner.tolist()})
    extra = [int(i) for i in rng.integers(0, size, max(budget - len(keep), 0))]
    return sorted(set(keep) | set(extra))


def _dims(lo: int, hi: int, edges: list[int], share: int = 3):
    """Integers in [lo, hi], one in `share` of them at tile and step edges."""
    return st.one_of(*[st.integers(lo, hi)] * (share - 1),
                     st.sampled_from([e for e in edges if lo <= e <= hi]))


MN_EDGES = [1, 2, 63, 64, 65, 127, 128, 129, 130, 200, 255, 256, 257, 300]
K_EDGES = [1, 2, 3, 4, 5, 31, 32, 33, 63, 64, 65, 95, 96, 97, 127, 128, 129, 255, 256, 257,
           383, 384, 385, 511, 512, 513, 600]


def _check_tile_invariance(a, b, kw, c, scaling, sa, sb, out, rng) -> None:
    """The GEMM of rows r0: (columns c0:) alone gives the bits of those rows (columns) of the
    whole GEMM, for shifts r0, c0 of a tile, two tiles and a random amount: every output then
    sits in another tile, at another place in its tile."""
    m, n = out.shape
    for r0 in sorted({TILE_M, 2 * TILE_M, int(rng.integers(1, max(m, 2)))}):
        if r0 >= m:
            continue
        scales = {} if scaling is None else {
            "scale_a": _rows_of(scaling, sa, slice(r0, None)), "scale_b": sb}
        part = gemm(a[r0:], b, **kw, c=None if c is None else c[r0:], **scales)
        assert np.array_equal(bits(part), bits(out[r0:])), f"rows {r0}: differ when alone"
    for c0 in sorted({TILE_N, 2 * TILE_N, int(rng.integers(1, max(n, 2)))}):
        if c0 >= n:
            continue
        cols = range(c0, n)
        if scaling is not None and _granularity(scaling)[1] == "block" and \
                c0 % _granularity(scaling)[2]:  # scale_b's blocks move: one column at a time
            cols = sorted({c0, n - 1, int(rng.integers(c0, n))})
        for lo, hi in ([(c0, n)] if len(cols) == n - c0 else [(j, j + 1) for j in cols]):
            scales = {} if scaling is None else {"scale_a": sa, "scale_b": _cols_of(
                scaling, sb, lo, hi)}
            part = gemm(a, np.ascontiguousarray(b[:, lo:hi]), **kw,
                        c=None if c is None else np.ascontiguousarray(c[:, lo:hi]), **scales)
            assert np.array_equal(bits(part), bits(out[:, lo:hi])), (
                f"columns {lo}:{hi} differ when alone")


@settings(max_examples=200 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    seed=st.integers(0, 2**32 - 1),
    m=_dims(1, MAX_M, MN_EDGES, share=2),
    n=_dims(1, MAX_N, MN_EDGES, share=2),
    k=_dims(1, MAX_K, K_EDGES),
    fmts=st.sampled_from([(E4M3, E4M3), (E4M3, E5M2), (E5M2, E4M3), (E5M2, E5M2)]),
    kinds=st.tuples(st.sampled_from(KINDS), st.sampled_from(KINDS)),
    promote=st.sampled_from([0, 0, 32, 64, 128, 128, 256]),
    c_kind=st.sampled_from(C_KINDS),
    scaling=st.sampled_from([None, None, "group", *SCALINGS]),
    scale_kind=st.sampled_from(["random", "random", "pow2", "edge"]),
    out_dtype=st.sampled_from(["float32", "float32", "float32", "bfloat16", "float16"]),
    step=st.sampled_from(STEPS),
)
def test_engine_matches_reference_across_tiles(seed, m, n, k, fmts, kinds, promote, c_kind,
                                                scaling, scale_kind, out_dtype, step):
    rng = np.random.default_rng(seed)
    k = min(k, max(1, MAX_MNK // (m * n)))  # 300 x 300: K up to 170
    af, bf = fmts
    a = codes(rng, (m, k), kinds[0], af, 0)
    b = codes(rng, (k, n), kinds[1], bf, 1)
    c = None if c_kind is None else c_values(rng, (m, n), c_kind)
    if promote % step.terms:
        promote = 0
    if scaling is not None and _granularity(scaling)[3] and (promote == 0 or step.exact):
        scaling = None  # scales applied at each promotion need one
    sa = sb = None
    if scaling is not None:
        sa, sb = _make_scales(scaling, rng, m, k, n, promote, scale_kind)
    kw = {"a_format": af, "b_format": bf, "promote": promote, "preset": step,
          "scaling": scaling}
    with np.errstate(over="ignore", invalid="ignore"):
        out32 = gemm(a, b, **kw, c=c, scale_a=sa, scale_b=sb)
        out = gemm(a, b, **kw, c=c, scale_a=sa, scale_b=sb, out_dtype=out_dtype)

    per_output = max(k * (2 if step.sequential else 1), 1)
    budget = max(2, int(np.sqrt(REFERENCE_PRODUCTS / per_output)))
    rows = _sample(m, TILE_M, rng, budget)
    cols = _sample(n, TILE_N, rng, budget)
    with np.errstate(over="ignore", invalid="ignore"):
        want = _reference(a, b, af, bf, step, promote, c, scaling, sa, sb, rows, cols)
    got = out32[np.ix_(rows, cols)]
    assert np.array_equal(bits(got), bits(want)), (
        f"{np.count_nonzero(bits(got) != bits(want))} of {got.size} sampled outputs differ, "
        f"first at {[(rows[i], cols[j]) for i, j in np.argwhere(bits(got) != bits(want))[:3]]}")
    if out_dtype != "float32":  # the float32 result rounded to nearest even, NaN 0x7FFF
        dt = ml_dtypes.bfloat16 if out_dtype == "bfloat16" else np.float16
        with np.errstate(over="ignore"):
            want16 = out32.astype(dt)
        want16.view(np.uint16)[np.isnan(out32)] = 0x7FFF
        assert np.array_equal(bits(out), bits(want16))

    with np.errstate(over="ignore", invalid="ignore"):
        _check_tile_invariance(a, b, kw, c, scaling, sa, sb, out32, rng)


# --- hand-picked cases that must always run (hypothesis may not draw them)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("frac_bits", [24, 25, 28])
def test_wide_accumulator_does_not_overflow_int32(fmt, frac_bits):
    """32 largest same-sign products with F >= 24 fractional bits sum past 2**31: the
    engine must add them in int64 (blackwell: 1.2845e7 on all-0x7E E4M3 codes)."""
    step = PRESETS["blackwell"].replace(frac_bits=frac_bits)
    top = E4M3.max_code if fmt == "e4m3" else E5M2.max_code
    a = np.full((3, 64), top, np.uint8)
    a[1] |= 0x80  # negative row
    a[2, ::2] = top - 1
    b = np.full((64, 2), top, np.uint8)
    got = gemm(a, b, a_format=fmt, b_format=fmt, preset=step)
    want = reference.gemm(a, b, fmt, fmt, step)
    assert np.array_equal(bits(got), bits(want))
    if fmt == "e4m3" and frac_bits == 25:
        assert got[0, 0] == np.float32(12845056.0)


def test_second_and_third_tile_read_their_own_scales_and_c():
    """Row and column tiles 1 and 2 (M = 300, N = 290: tiles of 128, the third partial):
    group scales (scale_b's third 128-column block), C and B through the tile offsets."""
    rng = np.random.default_rng(13)
    m, n = 300, 290
    k = 200
    a = codes(rng, (m, k), "finite", E4M3, 0)
    b = codes(rng, (k, n), "finite", E4M3, 1)
    c = c_values(rng, (m, n), "normal")
    sa, sb = _make_scales("group", rng, m, k, n, 64, "random")
    out = gemm(a, b, promote=64, c=c, scale_a=sa, scale_b=sb, scaling="group")
    rows = [0, 127, 128, 255, 256, 257, 299]
    cols = [0, 127, 128, 255, 256, 289]
    want = _reference(a, b, E4M3, E4M3, HOPPER, 64, c, "group", sa, sb, rows, cols)
    assert np.array_equal(bits(out[np.ix_(rows, cols)]), bits(want))
    _check_tile_invariance(a, b, {"promote": 64, "scaling": "group"}, c, "group", sa, sb, out,
                           rng)


def test_presets_have_fast_kernels_or_refuse():
    """Every preset drawn above has an engine kernel (a preset without one raises)."""
    for step in STEPS:
        assert isinstance(step, MMAStep)
        gemm(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8), preset=step)


UNIQUE_STEPS = list({s.name: s for s in STEPS}.values())


@pytest.mark.parametrize("step", UNIQUE_STEPS, ids=lambda s: s.name)
@pytest.mark.parametrize("k", [1, 3, 5, 33, 70])
def test_signed_zeros_through_every_preset(step, k):
    """C = +-0 with rows of +0 and -0 codes, K not a multiple of 4 (zero padding): the sign
    of every zero result is the reference's, for every preset (the fused step gives +0,
    plain float32 keeps -0 + -0 = -0)."""
    a = np.zeros((4, k), np.uint8)
    a[1] = 0x80  # -0
    a[2, ::2] = 0x80
    a[3, 0] = 0x38  # 1.0 and zeros
    b = np.full((k, 3), 0x38, np.uint8)
    b[:, 1] = 0xB8  # -1.0
    b[:, 2] = 0x00
    c = np.array([[-0.0, 0.0, -0.0]] * 4, np.float32)
    for promote in (0, 64) if 64 % step.terms == 0 else (0,):
        got = gemm(a, b, c=c, preset=step, promote=promote)
        want = reference.gemm(a, b, E4M3, E4M3, step, promote=promote, c=c)
        assert np.array_equal(bits(got), bits(want)), (promote, bits(got), bits(want))
