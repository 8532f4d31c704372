"""encode/decode: ml_dtypes, the H100 golden conversions and the Python reference, bit for bit.

NaN codes, the one documented difference from ml_dtypes: for E5M2 ml_dtypes keeps NaN
payload bits (a quiet float32 NaN gives 0x7E), while fp8sim, like torch and the golden
H100 data, gives 0x7F / 0xFF by sign (0x7F always with ``saturate=True``).
"""

from __future__ import annotations

import math
from pathlib import Path

import ml_dtypes
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive_convert import encode_naive, ml_encode

from fp8sim.engine.reference import encode_scalar
from fp8sim.formats.convert import decode, encode, encode_e8m0
from fp8sim.formats.info import FORMATS, decode_table
from fp8sim.formats.rounding import RoundMode

SIGNED = [f for f in FORMATS.values() if f.signed]
OCP = [FORMATS["e4m3"], FORMATS["e5m2"]]
F32_MAX = float(np.finfo(np.float32).max)


def _assert_equals_ml_dtypes(x: np.ndarray, fmt) -> None:
    """encode(x) == ml_dtypes bit for bit, except E5M2 NaN codes (see the module docstring)."""
    got, ml = encode(x, fmt), ml_encode(x, fmt)
    nan = np.isnan(x)
    if fmt.name == "e5m2":
        assert np.all(np.isin(ml[nan], fmt.nan_codes))
        sign = np.where(np.signbit(x[nan]), 0x80, 0)
        assert np.array_equal(got[nan], 0x7F | sign)
        got, ml = got[~nan], ml[~nan]
    assert np.array_equal(got, ml)


# ---------------------------------------------------------------------------- ml_dtypes


@pytest.mark.parametrize("fmt", SIGNED, ids=lambda f: f.name)
def test_all_float16_values_equal_ml_dtypes(fmt):
    """All 65,536 float16 values, as float16 (widened exactly) and as float32."""
    x16 = np.arange(2**16, dtype=np.uint16).view(np.float16)
    _assert_equals_ml_dtypes(x16, fmt)
    _assert_equals_ml_dtypes(x16.astype(np.float32), fmt)
    assert np.array_equal(encode(x16, fmt), encode(x16.astype(np.float32), fmt))


@pytest.mark.parametrize("fmt", SIGNED, ids=lambda f: f.name)
def test_random_float32_bit_patterns_equal_ml_dtypes(fmt):
    """10**7 random float32 bit patterns: every exponent, NaN payloads, subnormals."""
    rng = np.random.default_rng(20261125)
    x = rng.integers(0, 2**32, size=10**7, dtype=np.uint32).view(np.float32)
    _assert_equals_ml_dtypes(x, fmt)


@pytest.mark.parametrize("fmt", OCP, ids=lambda f: f.name)
def test_e5m2_nan_payload_difference_is_deliberate(fmt):
    """Quiet and signalling NaNs with payloads: ml_dtypes keeps payload bits for E5M2, we don't."""
    bits = np.array([0x7FC00000, 0x7FA00000, 0x7F800001, 0x7FFFFFFF, 0xFFC00000, 0xFFE00000],
                    dtype=np.uint32)
    x = bits.view(np.float32)
    assert np.array_equal(encode(x, fmt), [0x7F, 0x7F, 0x7F, 0x7F, 0xFF, 0xFF])
    assert np.array_equal(encode(x, fmt, saturate=True), [0x7F] * 6)
    if fmt.name == "e5m2":
        assert ml_encode(x, fmt)[0] == 0x7E  # ml_dtypes: the payload's top bits survive


def _double_rounding_points(x: np.ndarray, fmt) -> np.ndarray:
    """Where rounding float64 -> float32 -> fmt differs from rounding once: float32(x) is an
    FP8 midpoint (or the overflow tie) that x itself is not."""
    grid = decode_table(fmt)[: fmt.max_code + 1].astype(np.float64)
    mids = np.concatenate([(grid[1:] + grid[:-1]) / 2, [fmt.max + (grid[-1] - grid[-2]) / 2]])
    with np.errstate(over="ignore", invalid="ignore"):  # NaN payloads, overflow to Inf
        x32 = x.astype(np.float32).astype(np.float64)
    return np.isin(np.abs(x32), mids) & (x32 != x)


def _ml_dtypes_rounds_float64_once() -> bool:
    """Which float64 cast this ml_dtypes has, from a probe just above an E4M3 midpoint.

    1.0625 + 2**-40 lies above the midpoint of 1.0 (0x38) and 1.125 (0x39); float32 drops
    the 2**-40, so a cast through float32 ties to even (0x38: ml_dtypes <= 0.5) and a cast
    straight from float64 rounds up (0x39: ml_dtypes >= 0.6). Nothing else may come out.
    """
    code = int(ml_encode(np.array([1.0625 + 2.0**-40]), FORMATS["e4m3"])[0])
    assert code in (0x38, 0x39), hex(code)
    return code == 0x39


def test_float64_equals_ml_dtypes_and_naive_reference():
    """Random float64 patterns and values near the grid round once, straight from float64.

    fp8sim always rounds float64 once (the naive reference says so, in every mode). ml_dtypes
    changed: up to 0.5 it casts float64 through float32, rounding twice, and then differs
    from us exactly where float32(x) lands on an FP8 midpoint that x is not on; from 0.6 on
    it rounds once and equals us everywhere (E5M2 NaN codes aside). The probe tells which.
    """
    once = _ml_dtypes_rounds_float64_once()
    rng = np.random.default_rng(7)
    n = 200_000
    raw = rng.integers(0, 2**64, size=n, dtype=np.uint64).view(np.float64)
    scaled = rng.standard_normal(n) * np.exp2(rng.integers(-20, 18, size=n))
    grid = np.concatenate([decode_table(f)[:f.max_code + 1] for f in SIGNED]).astype(np.float64)
    mids = np.repeat((grid[1:] + grid[:-1]) / 2, 4)  # FP8 midpoints nudged below float32's ulp
    nudged = mids + np.ldexp(rng.uniform(-1, 1, mids.size), np.frexp(mids)[1] - 30)
    for fmt in SIGNED:
        for x in (raw, scaled, nudged):
            twice = _double_rounding_points(x, fmt)
            _assert_equals_ml_dtypes(x if once else x[~twice], fmt)
            for mode in RoundMode:
                bits = rng.integers(0, 2**32, size=x.size, dtype=np.uint32)
                for saturate in (False, True):
                    with np.errstate(invalid="ignore"):
                        want = encode_naive(x, fmt, rounding=mode, saturate=saturate,
                                            random_bits=bits)
                    got = encode(x, fmt, rounding=mode, saturate=saturate,
                                 random_bits=bits if mode == RoundMode.Stochastic else None)
                    assert np.array_equal(got, want), (fmt.name, mode, saturate)
        twice = nudged[_double_rounding_points(nudged, fmt)]
        assert twice.size > 10
        via32 = encode(twice.astype(np.float32), fmt)  # what rounding twice gives
        assert np.count_nonzero(encode(twice, fmt) != via32) > 10
        assert np.array_equal(ml_encode(twice, fmt), encode(twice, fmt) if once else via32)
        for v in twice[:20]:  # and the scalar reference
            assert encode(v, fmt) == encode_scalar(float(v), fmt)


def test_float64_no_double_rounding():
    """Just above a midpoint: float64 input rounds up; via float32 it would tie to even."""
    mid = 1.0625  # halfway between E4M3 1.0 (0x38) and 1.125 (0x39)
    above = np.float64(mid + 2.0**-40)
    assert np.float32(above) == mid
    assert encode(above, "e4m3") == 0x39
    assert encode(np.float32(above), "e4m3") == 0x38
    assert encode(np.float64(mid - 2.0**-40), "e4m3", rounding="up") == 0x39


# ---------------------------------------------------------------------------- golden H100 data


def _golden_files() -> list:
    """The committed copy, and ../shared/golden beside the checkout when it exists."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "golden" / "convert_public.npz"
    return [
        pytest.param(Path(__file__).parent / "data" / "convert_public.npz", id="committed"),
        pytest.param(shared, id="shared", marks=pytest.mark.skipif(
            not shared.exists(), reason=f"{shared} not present")),
    ]


@pytest.mark.parametrize("path", _golden_files())
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_golden_h100_conversions(path, fmt):
    """torch (saturate=False) and CUDA __NV_SATFINITE (saturate=True), NaN codes included."""
    data = np.load(path)
    x = data["x"]
    assert x.dtype == np.float32 and np.isnan(x).any()
    nosat, sat = encode(x, fmt), encode(x, fmt, saturate=True)
    assert np.array_equal(nosat, data[f"torch_{fmt}"])
    assert np.array_equal(sat, data[f"cuda_{fmt}_sat"])
    # CUDA's __NV_NOSAT differs from torch only in the sign of NaN: always 0x7F
    cuda = data[f"cuda_{fmt}_nosat"]
    differ = nosat != cuda
    assert np.all(np.isnan(x[differ]) & np.signbit(x[differ]))
    assert np.all(cuda[differ] == 0x7F) and np.all(nosat[differ] == 0xFF)


# ------------------------------------------------------------------------ reference (hypothesis)


def _anchors(fmt, dtype) -> np.ndarray:
    """Where conversions go wrong: grid values, midpoints, the overflow edge, subnormal edges."""
    grid = decode_table(fmt)[: fmt.max_code + 1].astype(np.float64)
    gap = grid[-1] - grid[-2]
    mids = (grid[1:] + grid[:-1]) / 2
    info = np.finfo(dtype)
    edges = [
        fmt.max + gap / 2, fmt.max + gap, 2 * fmt.max,  # overflow boundary and beyond
        fmt.smallest_subnormal / 2, fmt.smallest_subnormal / 4, fmt.smallest_normal,
        fmt.smallest_normal - fmt.smallest_subnormal / 2,  # subnormal/normal boundary
        float(info.smallest_subnormal), float(info.smallest_normal), 1e-30,  # tiny
        float(info.max), F32_MAX, 1e30, math.inf, math.nan, 0.0,  # huge, specials
    ]
    return np.concatenate([grid, mids, edges]).astype(dtype)


@st.composite
def _cases(draw, fmt, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(values, random words): anchors nudged by a few ulps, with random signs, or raw bits."""
    anchors = _anchors(fmt, dtype)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    n = draw(st.integers(1, 24))
    values = []
    for _ in range(n):
        if draw(st.integers(0, 4)) == 0:  # raw bit pattern
            bits = draw(st.integers(0, int(np.iinfo(uint).max)))
            values.append(np.array(bits, dtype=uint).view(dtype))
            continue
        v = anchors[draw(st.integers(0, anchors.size - 1))]
        for _ in range(abs(ulps := draw(st.integers(-3, 3)))):
            with np.errstate(over="ignore"):  # max + 1 ulp is Inf
                v = np.nextafter(v, dtype(math.copysign(math.inf, ulps)), dtype=dtype)
        values.append(-v if draw(st.booleans()) else v)
    words = draw(st.lists(st.one_of(st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1]),
                                    st.integers(0, 2**32 - 1)), min_size=n, max_size=n))
    return np.array(values, dtype=dtype), np.array(words, dtype=np.uint32)


def _hypothesis_test(fmt, mode, dtype):
    """One hypothesis test: kernel == fp8sim.engine.reference.encode_scalar for fmt/mode/dtype."""
    @settings(max_examples=25, deadline=None)
    @given(case=_cases(fmt, dtype))
    def check(case):
        x, words = case
        for saturate in (False, True):
            got = encode(x, fmt, rounding=mode, saturate=saturate,
                         random_bits=words if mode == RoundMode.Stochastic else None)
            want = [encode_scalar(float(v), fmt, saturate=saturate, rounding=mode, rnd32=int(w))
                    for v, w in zip(x, words, strict=True)]
            assert got.tolist() == want, (x.tolist(), saturate)
    check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mode", list(RoundMode), ids=lambda m: m.name)
@pytest.mark.parametrize("fmt", SIGNED, ids=lambda f: f.name)
def test_kernel_matches_reference(fmt, mode, dtype):
    """Every rounding mode, both saturation modes, all signed formats, float32 and float64."""
    _hypothesis_test(fmt, mode, dtype)


@pytest.mark.parametrize("fmt", SIGNED, ids=lambda f: f.name)
def test_every_anchor_matches_reference(fmt):
    """Every anchor +-1 ulp, both signs, once, deterministically (hypothesis samples them)."""
    base = _anchors(fmt, np.float32)
    with np.errstate(over="ignore"):  # FLT_MAX + 1 ulp is Inf
        x = np.concatenate([base, np.nextafter(base, np.float32(np.inf)),
                            np.nextafter(base, np.float32(0))])
    x = np.concatenate([x, -x])
    for mode in list(RoundMode)[:4]:
        for saturate in (False, True):
            got = encode(x, fmt, rounding=mode, saturate=saturate)
            want = [encode_scalar(float(v), fmt, saturate=saturate, rounding=mode) for v in x]
            assert got.tolist() == want, (mode, saturate)


# ---------------------------------------------------------------------------- semantics


@pytest.mark.parametrize(
    ("x", "fmt", "saturate", "code"),
    [
        (464.0, "e4m3", False, 0x7E),  # the tie above 448 goes to the even code 0x7E
        (464.0001, "e4m3", False, 0x7F), (464.0001, "e4m3", True, 0x7E),
        (-1e6, "e4m3", False, 0xFF), (-1e6, "e4m3", True, 0xFE),
        (61440.0, "e5m2", False, 0x7C),  # the tie above 57344 goes to Inf (even)
        (61439.99, "e5m2", False, 0x7B), (-np.inf, "e5m2", False, 0xFC),
        (-np.inf, "e5m2", True, 0xFB), (np.inf, "e4m3", False, 0x7F),
        (-0.0, "e4m3", False, 0x80), (-0.0, "e4m3fnuz", False, 0x00),
        (-1e-10, "e5m2", False, 0x80), (-1e-10, "e5m2fnuz", False, 0x00),
        (2.0**-10, "e4m3", False, 0x00), (2.0**-10 * 1.0001, "e4m3", False, 0x01),
        (1e9, "e4m3fnuz", True, 0x7F), (1e9, "e4m3fnuz", False, 0x80),
    ],
)
def test_documented_edges(x, fmt, saturate, code):
    """Overflow ties, saturation, signed zeros and NaN codes, as torch/CUDA produce them."""
    for dtype in (np.float32, np.float64):
        assert encode(dtype(x), fmt, saturate=saturate) == code


@pytest.mark.parametrize(
    ("mode", "codes"),
    [
        ("zero", [0x7E, 0xFE, 0x7E, 0xFE]),  # toward zero never overflows
        ("up", [0x7F, 0xFE, 0x7E, 0xFE]),  # +overflow rounds to NaN, -overflow to -max
        ("down", [0x7E, 0xFF, 0x7E, 0xFE]),
        ("stochastic", [0x7F, 0xFF, 0x7E, 0xFE]),  # always up above 480
    ],
)
def test_directed_overflow_follows_ieee(mode, codes):
    """Directed modes: overflow toward zero gives +-max (E4M3), away gives NaN (or max if sat)."""
    x = np.float32([500.0, -500.0])
    got = encode(x, "e4m3", rounding=mode, rng=0)
    got_sat = encode(x, "e4m3", rounding=mode, saturate=True, rng=0)
    assert np.concatenate([got, got_sat]).tolist() == codes


def test_shapes_dtypes_and_layouts():
    """Scalars, empty and strided arrays, 2-D arrays, float16 and bfloat16 inputs."""
    assert encode(1.0, "e4m3").shape == () and encode(1.0, "e4m3").dtype == np.uint8
    assert encode(np.zeros(0, np.float32)).shape == (0,)
    x = np.random.default_rng(1).standard_normal((64, 33)).astype(np.float32)
    assert np.array_equal(encode(x[:, ::3], "e5m2"), encode(np.ascontiguousarray(x[:, ::3]),
                                                            "e5m2"))
    assert np.array_equal(encode(x.T, "e4m3"), encode(x, "e4m3").T)
    for swapped in (x.astype(">f4"), x.astype(">f8"), x.astype(">f2")):  # byte order
        assert np.array_equal(encode(swapped, "e4m3"), encode(x.astype(swapped.dtype.type),
                                                              "e4m3"))
    bf = x.astype(ml_dtypes.bfloat16)
    assert np.array_equal(encode(bf, "e4m3"), encode(bf.astype(np.float32), "e4m3"))
    assert np.array_equal(decode(encode(x, "e4m3"), "e4m3"),
                          x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32))


def test_result_does_not_depend_on_thread_count():
    """Elementwise kernels: one thread and all threads give the same codes, every mode."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2**32, size=300_000, dtype=np.uint32).view(np.float32)
    words = rng.integers(0, 2**32, size=x.size, dtype=np.uint32)
    before = numba.get_num_threads()
    results = []
    for threads in (1, before):
        numba.set_num_threads(threads)
        try:
            results.append([encode(x, "e5m2", rounding=m, random_bits=words if m == 4 else None)
                            for m in RoundMode])
        finally:
            numba.set_num_threads(before)
    assert all(np.array_equal(a, b) for a, b in zip(*results, strict=True))


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: encode(np.ones(3, np.float32), "e4m4"), ValueError, r"^fmt: unknown FP8"),
        (lambda: encode(np.ones(3, np.int32), "e4m3"), TypeError, r"^x: expected a float32"),
        (lambda: encode(np.ones(3, bool)), TypeError, r"^x: "),
        (lambda: encode(3), TypeError, r"^x: "),
        (lambda: encode(np.ones(3, np.complex64)), TypeError, r"^x: "),
        (lambda: encode(np.ones(3), rounding="bankers"), ValueError, r"^rounding: unknown"),
        (lambda: encode(np.ones(3), rounding=0), ValueError, r"^rounding: unknown"),
        (lambda: encode(np.ones(3), rounding="sr", rng="seed"), TypeError, r"^rng: "),
        (lambda: encode(np.ones(3), rounding="sr", random_bits=np.ones(3, np.int64)),
         TypeError, r"^random_bits: expected a uint32"),
        (lambda: encode(np.ones(3), rounding="sr", random_bits=np.ones(4, np.uint32)),
         ValueError, r"^random_bits: shape"),
        (lambda: encode(np.ones(3), rounding="sr", rng=1, random_bits=np.ones(3, np.uint32)),
         ValueError, r"^random_bits: give either"),
        (lambda: encode(np.ones(3), random_bits=np.ones(3, np.uint32)), ValueError,
         r"^random_bits: only used"),
        (lambda: encode(np.ones(3), "e8m0", rounding="sr"), ValueError, r"^rounding: "),
        (lambda: encode(np.ones(3), "e8m0", random_bits=np.ones(3, np.uint32)), ValueError,
         r"^random_bits: "),
        (lambda: encode_e8m0(np.ones(3, np.int8)), TypeError, r"^x: "),
        (lambda: encode(np.ones(3), saturate="no"), TypeError, r"^saturate: expected True"),
        (lambda: encode(np.ones(3), saturate=None), TypeError, r"^saturate: "),
        (lambda: encode(np.ones(3), "e8m0", saturate="no"), TypeError, r"^saturate: "),
        (lambda: encode_e8m0(np.ones(3), saturate=1), TypeError, r"^saturate: "),
        (lambda: decode(np.ones(3, np.int8), "e4m3"), TypeError, r"^codes: expected uint8"),
        (lambda: decode(np.ones(3, np.int64)), TypeError, r"^codes: "),
        (lambda: decode(np.ones(3, np.float32)), TypeError, r"^codes: "),
        (lambda: decode(np.ones(3, np.uint8), "e3m4"), ValueError, r"^fmt: unknown"),
        (lambda: decode(np.ones(3, np.uint8).view(ml_dtypes.float8_e5m2), "e4m3fnuz"),
         ValueError, r"^codes: array dtype"),
    ],
)
def test_bad_input_names_the_argument(call, error, pattern):
    """Bad input raises ValueError/TypeError whose message starts with the argument's name."""
    with pytest.raises(error, match=pattern):
        call()
