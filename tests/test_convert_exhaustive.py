"""Every float32 input, every rounding mode and saturation, E4M3 and E5M2 (slow: make test-all).

Two independent references: ml_dtypes for round-to-nearest-even without saturation
(modulo the documented E5M2 NaN code), and for everything else the runs of
consecutive float32 patterns that round to one code (`naive_convert.magnitude_runs`),
built from the decoded grid, with float64 arithmetic for stochastic rounding. The
fast test at the end holds those runs to the float64 `encode_naive` on random input.
"""

from __future__ import annotations

import numpy as np
import pytest
from naive_convert import (
    classes_at,
    code_table,
    encode_naive,
    expand_runs,
    magnitude_runs,
    stochastic_tables,
    stochastic_up,
)

from fp8sim.formats.convert import encode
from fp8sim.formats.info import format_info
from fp8sim.formats.rounding import RoundMode

CHUNK = 1 << 20
"""Patterns per step: the temporaries stay in the CPU cache."""

# magnitude rounding by mode, for (positive, negative) inputs
KINDS = {
    RoundMode.TiesToEven: ("nearest", "nearest"),
    RoundMode.TowardZero: ("trunc", "trunc"),
    RoundMode.TowardPositive: ("away", "trunc"),
    RoundMode.TowardNegative: ("trunc", "away"),
    RoundMode.Stochastic: ("trunc", "trunc"),  # then up by the random word
}


def _mismatch(x: np.ndarray, got: np.ndarray, want: np.ndarray) -> str:
    """A readable description of the first disagreement."""
    i = int(np.flatnonzero(got != want)[0])
    bits = int(x[i : i + 1].view(np.uint32)[0])
    return f"x = {x[i]!r} (0x{bits:08X}): got 0x{got[i]:02X}, want 0x{want[i]:02X}"


def _check_ml_dtypes(x: np.ndarray, got: np.ndarray, fmt) -> None:
    """Round to nearest even, no saturation: ml_dtypes, except E5M2 NaN codes (0x7F/0xFF)."""
    with np.errstate(invalid="ignore", over="ignore"):
        ml = x.astype(fmt.ml_dtype).view(np.uint8)
    if fmt.name == "e5m2":
        nan = np.isnan(x)
        if nan.any():
            assert np.all(np.isin(ml[nan], fmt.nan_codes))
            ml = np.where(nan, 0x7F | (x.view(np.uint32) >> 24 & 0x80), ml).astype(np.uint8)
    assert np.array_equal(got, ml), _mismatch(x, got, ml)


def _words_at_thresholds(magnitudes: np.ndarray, low: np.ndarray, scale: np.ndarray,
                         raw: np.ndarray) -> np.ndarray:
    """Random words for stochastic rounding: a quarter uniform, the rest right at each value's
    threshold T = floor((|x| - low) * scale) (T - 1 rounds up, T does not), so that every
    element tests the strict `<` (uniform words alone hit it once in 2**32). `raw`: random
    uint64, one per element; its top two bits pick the kind of word."""
    with np.errstate(invalid="ignore", over="ignore"):  # Inf/NaN lanes: any word will do
        # T, capped just below 2**32 (a step up is certain there, whatever the word)
        t = np.minimum((magnitudes - low) * scale, np.float32(2**32 - 256)).astype(np.uint32)
    pick = (raw >> 62).astype(np.uint8)  # 0: uniform, 1 and 3: T - 1, 2: T
    below = t - ((pick & 1 == 1) & (t > 0))
    uniform = np.uint32(0) - (pick == 0).astype(np.uint32)  # all ones where uniform
    return (raw.astype(np.uint32) & uniform) | (below & ~uniform)  # a branch-free select


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(RoundMode), ids=lambda m: m.name)
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_every_float32_input(fmt, mode):
    """All 2**32 float32 patterns, both saturation modes, against the references."""
    info = format_info(fmt)
    runs = {kind: magnitude_runs(info, kind) for kind in set(KINDS[mode])}
    tables = {(sat, neg): code_table(info, saturate=sat, negative=neg)
              for sat in (False, True) for neg in (False, True)}
    low, scale, step_up = stochastic_tables(info)
    rng = np.random.default_rng(2**32 + int(mode))
    block = rng.bit_generator.random_raw(CHUNK)
    offsets = np.arange(CHUNK, dtype=np.uint32)
    patterns = np.empty(CHUNK, dtype=np.uint32)
    signed = np.empty(CHUNK, dtype=np.uint32)
    for p0 in range(0, 2**31, CHUNK):
        np.add(offsets, p0, out=patterns)
        words = None
        if mode == RoundMode.Stochastic:  # per run: the grid value, its gap, the step up
            magnitudes, labels = patterns.view(np.float32), runs["trunc"][1]
            lo = expand_runs(runs["trunc"], p0, p0 + CHUNK, low[labels])
            sc = expand_runs(runs["trunc"], p0, p0 + CHUNK, scale[labels])
            raw = block ^ rng.bit_generator.random_raw()  # one fresh 64-bit salt per step
            words = _words_at_thresholds(magnitudes, lo, sc, raw)
            up = stochastic_up(magnitudes, lo, sc, words)  # the same for -x: SR is symmetric
        for negative, kind in zip((False, True), KINDS[mode], strict=True):
            np.bitwise_or(patterns, 0x80000000 if negative else 0, out=signed)
            x = signed.view(np.float32)
            labels = runs[kind][1]
            for saturate in (False, True):
                got = encode(x, info, rounding=mode, saturate=saturate, random_bits=words)
                table = tables[(saturate, negative)]
                want = expand_runs(runs[kind], p0, p0 + CHUNK, table[labels])
                if mode == RoundMode.Stochastic:  # want + up * (code above - want), mod 256
                    above = expand_runs(runs[kind], p0, p0 + CHUNK, table[step_up[labels]])
                    want += up * (above - want)
                assert np.array_equal(got, want), _mismatch(x, got, want)
                if mode == RoundMode.TiesToEven and not saturate:
                    _check_ml_dtypes(x, got, info)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz"])
def test_runs_reference_matches_float64_reference(fmt):
    """The runs (and their stochastic step) agree with the float64 `encode_naive`."""
    info = format_info(fmt)
    rng = np.random.default_rng(11)
    edges = np.concatenate([magnitude_runs(info, kind)[0] for kind in ("trunc", "away",
                                                                        "nearest")])
    edges = np.concatenate([edges - 2, edges - 1, edges, edges + 1])  # every run's ends
    patterns = np.concatenate([rng.integers(0, 2**31, size=200_000), edges])
    patterns = np.clip(patterns, 0, 2**31 - 1).astype(np.uint32)
    for negative in (False, True):
        x = (patterns | np.uint32(0x80000000 if negative else 0)).view(np.float32)
        words = rng.integers(0, 2**32, size=x.size, dtype=np.uint32)
        for mode, kinds in KINDS.items():
            runs = magnitude_runs(info, kinds[negative])
            classes = classes_at(runs, patterns)
            if mode == RoundMode.Stochastic:
                low, scale, step_up = stochastic_tables(info)
                up = stochastic_up(patterns.view(np.float32), low[classes], scale[classes], words)
                classes = np.where(up, step_up[classes], classes)
            for saturate in (False, True):
                want = code_table(info, saturate=saturate, negative=negative)[classes]
                with np.errstate(invalid="ignore"):
                    naive = encode_naive(x, info, rounding=mode, saturate=saturate,
                                         random_bits=words)
                assert np.array_equal(naive, want), (mode, saturate, _mismatch(x, naive, want))


# ---------------------------------------------------------------------------- reduced (CI)
# What `make test` runs of the above (not marked slow; about 15 s here): every float16 and
# bfloat16 value, and float32 and float64 patterns built to hit every rounding decision:
# exponent fields x mantissas at the boundaries of every possible number of dropped bits x
# both signs, 1.8 million inputs x 5 modes x 2 saturations x 4 formats.


def _structured(mant_bits: int, exp_bits: int, exponents: np.ndarray) -> np.ndarray:
    """Bit patterns (uint64): the exponent fields x boundary mantissas x both signs.

    For each count d of dropped mantissa bits (1..mant_bits: normal targets drop
    mant_bits - m, subnormal ones more), the low d bits are 0, 1, 2, half - 2 .. half + 2,
    all ones but one and all ones, the bit above them (the kept last bit: ties to even) is
    0 or 1, and the bits above that are all zeros, all ones or one of four fixed random
    patterns.
    """
    rng = np.random.default_rng(23)
    full = (1 << mant_bits) - 1
    highs = [0, full, *(int(v) for v in rng.integers(0, 1 << min(mant_bits, 62), 4))]
    mants = set()
    for d in range(1, mant_bits + 1):
        half = 1 << (d - 1)
        above = full >> (d + 1) << (d + 1)
        for low in (0, 1, 2, half - 2, half - 1, half, half + 1, half + 2, (1 << d) - 2,
                    (1 << d) - 1):
            for last in (0, 1):
                for high in highs:
                    mants.add((high & above | (last << d) | low % (1 << d)) & full)
    mant = np.array(sorted(mants), np.uint64)
    sign = np.uint64(1) << np.uint64(mant_bits + exp_bits)
    pos = ((exponents.astype(np.uint64)[:, None] << np.uint64(mant_bits)) | mant[None, :]).ravel()
    return np.concatenate([pos, pos | sign])


def _structured_float32() -> np.ndarray:
    """Every float32 exponent field x boundary mantissas x both signs (535,552 values)."""
    return _structured(23, 8, np.arange(256)).astype(np.uint32).view(np.float32)


def _structured_float64() -> np.ndarray:
    """float64 exponent fields from far below to far above the FP8 range (2**-160 ..
    2**40, and 0, 1, 2046, 2047) x boundary mantissas x both signs: rounded once."""
    fields = np.concatenate([[0, 1, 2046], np.arange(1023 - 160, 1023 + 41), [2047]])
    return _structured(52, 11, fields).view(np.float64)


def _reduced_inputs() -> np.ndarray:
    """float16 and bfloat16 values (widened exactly) and the structured float32 patterns."""
    f16 = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)
    bf16 = (np.arange(2**16, dtype=np.uint32) << 16).view(np.float32)
    return np.concatenate([f16, bf16, _structured_float32()])


def _threshold_words(x: np.ndarray, info, rng: np.random.Generator) -> np.ndarray:
    """Random words for stochastic rounding, most at a value's threshold T or T - 1 (the
    first 32 bits of its dropped fraction), so that the strict `<` is tested everywhere."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # signalling NaNs
        ax = np.abs(x.astype(np.float64))
        _, e = np.frexp(np.where(np.isfinite(ax), ax, 0.0))
        q = np.maximum(e - 1, info.emin) - info.mantissa_bits
        n = np.ldexp(np.where(np.isfinite(ax), ax, 0.0), -q)
        t = np.floor(np.ldexp(n - np.floor(n), 32))
    t = np.clip(t, 0, 2**32 - 1).astype(np.uint64)
    pick = rng.integers(0, 3, x.size)
    uniform = rng.integers(0, 2**32, x.size, dtype=np.uint64)
    words = np.where(pick == 0, uniform, np.where(pick == 1, t, np.maximum(t, 1) - 1))
    return words.astype(np.uint32)


@pytest.mark.parametrize("source", ["float32", "float64"])
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz"])
def test_reduced_exhaustive(fmt, source):
    """The kernel equals the naive float64 reference on every reduced input, every rounding
    mode, with and without saturation; and ml_dtypes for nearest-even without saturation
    (float32 inputs: ml_dtypes rounds float64 through float32, twice)."""
    info = format_info(fmt)
    x = _reduced_inputs() if source == "float32" else _structured_float64()
    rng = np.random.default_rng(17)
    for mode in RoundMode:
        words = _threshold_words(x, info, rng) if mode == RoundMode.Stochastic else None
        for saturate in (False, True):
            got = encode(x, info, rounding=mode, saturate=saturate, random_bits=words)
            with np.errstate(invalid="ignore"):
                want = encode_naive(x, info, rounding=mode, saturate=saturate,
                                    random_bits=words)
            assert np.array_equal(got, want), (mode.name, saturate, _mismatch(x, got, want))
            if (mode == RoundMode.TiesToEven and not saturate and source == "float32"
                    and info.name in ("e4m3", "e5m2")):
                _check_ml_dtypes(x, got, info)


def test_reduced_inputs_cover_every_exponent_and_tie():
    """The structured patterns include, for every exponent field, exact ties at every
    dropped-bit count with an even and an odd kept bit."""
    bits = _structured_float32().view(np.uint32)
    assert bits.size > 500_000
    assert np.unique(bits >> 23 & 0xFF).size == 256
    mant = bits & 0x7FFFFF
    for d in range(1, 23):  # (at d = 23 the kept bit is the exponent's)
        ties = (mant & ((1 << d) - 1)) == (1 << (d - 1))
        assert (ties & ((mant >> d) & 1 == 0)).any() and (ties & ((mant >> d) & 1 == 1)).any()
