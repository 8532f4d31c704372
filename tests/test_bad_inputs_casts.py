"""Bad input to the conversions, casts and torch wrappers: one clear error naming the argument.

Each case of the audit: a request too large for the memory is refused before anything is
allocated (never numpy's "Unable to allocate"), and a malformed argument raises a
ValueError or TypeError whose message starts with the argument's name.
"""

from __future__ import annotations

import time
import tracemalloc

import ml_dtypes
import numpy as np
import pytest

import fp8sim
from fp8sim import _memory
from fp8sim.casts import cast as cast_module
from fp8sim.casts import cast_scaled, delayed_scale, torchao_float8_cast
from fp8sim.casts import delayed as delayed_module
from fp8sim.formats import convert

BIG = (1_000_000, 1_000_000)  # views of one element: no memory behind them
X_BIG = np.broadcast_to(np.float32(1), BIG)
CODES_BIG = np.broadcast_to(np.uint8(0x38), BIG)
NEEDS = r".* needs about [\d.]+ [kMGTP]?B of memory, [\d.]+ [kMGTP]?B is available; "


# --------------------------------------------------------------------------- 1. memory

@pytest.mark.parametrize("call, message", [
    (lambda: fp8sim.encode(X_BIG), r"^x: encoding shape \(1000000, 1000000\)"),
    (lambda: fp8sim.encode(X_BIG, "e8m0"), r"^x: encoding shape"),
    (lambda: fp8sim.encode_e8m0(X_BIG), r"^x: encoding shape"),
    (lambda: fp8sim.encode(X_BIG, rounding="stochastic", rng=1), r"^x: encoding shape"),
    (lambda: fp8sim.decode(CODES_BIG), r"^codes: decoding shape \(1000000, 1000000\)"),
])
def test_conversions_refuse_before_allocating(call, message):
    """formats/ checks the memory guard every floor shares (`fp8sim._memory`): the
    engine's InsufficientMemory, a MemoryError."""
    t0 = time.perf_counter()
    with pytest.raises(_memory.InsufficientMemory, match=message + NEEDS):
        call()
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("call, message", [
    (lambda: fp8sim.quantize(X_BIG),
     r"^x: quantizing shape \(1000000, 1000000\) in blocks \(1, 128\)"),
    (lambda: fp8sim.quantize_mx(X_BIG), r"^x: quantizing shape .* in blocks \(1, 32\)"),
    (lambda: torchao_float8_cast(X_BIG, axiswise_dim=-1), r"^x: quantizing shape"),
    (lambda: fp8sim.dequantize(CODES_BIG, np.broadcast_to(np.float32(1), (10**6, 7813))),
     r"^codes: dequantizing shape \(1000000, 1000000\)"),
    (lambda: fp8sim.dequantize(CODES_BIG, np.broadcast_to(np.uint8(127), BIG), block=(1, 1)),
     r"^codes: dequantizing shape"),
    (lambda: fp8sim.retile(CODES_BIG, X_BIG, from_block=(1, 1)), r"^codes: dequantizing"),
    (lambda: cast_scaled(X_BIG, 2.0), r"^x: casting shape \(1000000, 1000000\)"),
])
def test_casts_refuse_before_allocating(call, message):
    """The casts use the same guard (`fp8sim._memory.check_large`)."""
    t0 = time.perf_counter()
    with pytest.raises(_memory.InsufficientMemory, match=message + NEEDS):
        call()
    assert time.perf_counter() - t0 < 1.0


def test_refusal_messages_read_as_the_engines(monkeypatch):
    monkeypatch.setattr(_memory, "available_memory", lambda: 8_000_000_000)
    with pytest.raises(MemoryError, match=r"^x: encoding shape \(1000000, 1000000\) needs "
                                          r"about 5\.0 TB of memory, 8\.0 GB is available; "
                                          r"encode it in pieces$"):
        fp8sim.encode(X_BIG)
    with pytest.raises(MemoryError, match=r"^x: quantizing .* needs about 18\.4 TB of memory, "
                                          r"8\.0 GB is available; quantize a few blocks"):
        fp8sim.quantize(X_BIG)


def test_unknown_memory_or_small_requests_are_not_refused(monkeypatch):
    monkeypatch.setattr(_memory, "available_memory", lambda: 0)
    x = np.ones((64, 256), np.float32)  # below SMALL_BYTES: nothing is read
    codes, scales = fp8sim.quantize(x)
    np.testing.assert_array_equal(fp8sim.dequantize(codes, scales), x)
    np.testing.assert_array_equal(fp8sim.decode(fp8sim.encode(x)), x)


def test_bad_input_errors_come_before_the_memory_estimate():
    with pytest.raises(TypeError, match=r"^x: expected a float32 or float64 array"):
        fp8sim.encode(np.broadcast_to(np.int32(1), BIG))
    with pytest.raises(TypeError, match=r"^x: expected a float32 or float64 array"):
        fp8sim.quantize(np.broadcast_to(np.int32(1), BIG))
    with pytest.raises(ValueError, match=r"^scale_format: "):
        fp8sim.quantize(X_BIG, scale_format="e8m0")
    with pytest.raises(TypeError, match=r"^scales: expected float32 scales or uint8 E8M0"):
        fp8sim.dequantize(CODES_BIG, np.broadcast_to(np.int32(1), BIG), block=(1, 1))


def _peak_and_need(monkeypatch, call) -> tuple[int, int]:
    """(tracemalloc peak of call(), the largest estimate it checked), estimates never refused."""
    needs = [0]

    def record(need, *args, **kwargs) -> None:
        needs.append(need)

    for module in (convert, cast_module, delayed_module):
        monkeypatch.setattr(module, "check_large", record)
    call()  # compile and warm up outside the measurement
    tracemalloc.start()
    try:
        call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, max(needs)


@pytest.mark.parametrize("name", ["encode", "encode-f64-T", "encode-f16", "stochastic", "e8m0",
                                  "decode", "quantize", "quantize-1x1-e8m0", "quantize-f64",
                                  "mx", "mx-1x1", "dequantize", "dequantize-f64-1x1",
                                  "cast_scaled"])
def test_the_estimates_bound_what_is_allocated(monkeypatch, name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 512), dtype=np.float32)
    x64t, x16 = x.astype(np.float64).T, x.astype(np.float16)
    codes, scales = fp8sim.quantize(x)
    codes11, scales11 = fp8sim.quantize(x, block=(1, 1), pow2_scale=True, scale_format="e8m0")
    codes11t = codes11.T.copy().T
    calls = {
        "encode": lambda: fp8sim.encode(x),
        "encode-f64-T": lambda: fp8sim.encode(x64t),
        "encode-f16": lambda: fp8sim.encode(x16),
        "stochastic": lambda: fp8sim.encode(x, rounding="stochastic", rng=3),
        "e8m0": lambda: fp8sim.encode_e8m0(x64t),
        "decode": lambda: fp8sim.decode(codes),
        "quantize": lambda: fp8sim.quantize(x, block=(128, 128)),
        "quantize-1x1-e8m0": lambda: fp8sim.quantize(x, block=(1, 1), pow2_scale=True,
                                                     scale_format="e8m0"),
        "quantize-f64": lambda: fp8sim.quantize(x64t, block=(3, 7)),
        "mx": lambda: fp8sim.quantize_mx(x64t, block=(3, 7)),
        "mx-1x1": lambda: fp8sim.quantize_mx(x, block=(1, 1)),
        "dequantize": lambda: fp8sim.dequantize(codes, scales),
        "dequantize-f64-1x1": lambda: fp8sim.dequantize(codes11t, scales11, block=(1, 1),
                                                        dtype=np.float64),
        "cast_scaled": lambda: cast_scaled(x64t, 2.0),
    }
    peak, need = _peak_and_need(monkeypatch, calls[name])
    assert peak <= need + 16384 and need <= 4 * peak, (peak, need)  # + Python's small objects


# --------------------------------------------------------------------------- 2, 3. dequantize

def test_dequantize_refuses_a_scale_format_as_element_format():
    codes, scales = fp8sim.quantize(np.ones((4, 256), np.float32))
    with pytest.raises(ValueError, match=r"^fmt: e8m0 is a scale format, not an element"):
        fp8sim.dequantize(codes, scales, "e8m0")
    with pytest.raises(ValueError, match=r"^fmt: e8m0 is a scale format"):
        fp8sim.retile(codes, scales, "e8m0")
    with pytest.raises(ValueError, match=r"^codes: float8_e8m0fnu holds e8m0 scale codes, not "
                                         r"element codes"):
        fp8sim.dequantize(codes.view(ml_dtypes.float8_e8m0fnu), scales)


@pytest.mark.parametrize("dtype", ["bogus", None, np.float16, 3, "int8"])
def test_dequantize_names_dtype(dtype):
    codes, scales = fp8sim.quantize(np.ones((4, 256), np.float32))
    with pytest.raises(ValueError, match=r"^dtype: expected float32 or float64 \(np\.float32, "
                                         r"np\.float64 or their names\), got "):
        fp8sim.dequantize(codes, scales, dtype=dtype)


def test_dequantize_still_takes_dtype_names():
    codes, scales = fp8sim.quantize(np.ones((4, 256), np.float32))
    assert fp8sim.dequantize(codes, scales, dtype="float64").dtype == np.float64
    assert fp8sim.dequantize(codes, scales, dtype=np.float32).dtype == np.float32


# --------------------------------------------------------------------------- 4. delayed_scale

@pytest.mark.parametrize("history, error, message", [
    (None, TypeError, r"^amax_history: expected a 1-D sequence or array of real amax values, "
                      r"got None"),
    (["a"], TypeError, r"^amax_history: expected .* got dtype <U1"),
    ([1.0, None], TypeError, r"^amax_history: expected .* got dtype object"),
    ([True], TypeError, r"^amax_history: expected .* got dtype bool"),
    ([1 + 2j], TypeError, r"^amax_history: expected .* got dtype complex128"),
    ([-1.0], ValueError, r"^amax_history: an amax is an absolute max, >= 0; got -1\.0 at index 0"),
    ([2.0, -np.inf], ValueError, r"^amax_history: an amax is an absolute max, >= 0; got -inf at "
                                 r"index 1"),
    ([[1.0, 2.0]], ValueError, r"^amax_history: expected a 1-D array .* got shape \(1, 2\)"),
    (3.0, ValueError, r"^amax_history: expected a 1-D array .* got shape \(\)"),
    ([], ValueError, r"^amax_history: expected at least one amax value"),
])
def test_delayed_scale_checks_the_history(history, error, message):
    with pytest.raises(error, match=message):
        delayed_scale(history)


@pytest.mark.parametrize("scale, error", [
    (-1.0, ValueError), (0.0, ValueError), (np.nan, ValueError), (np.inf, ValueError),
    (1e-50, ValueError), (1e39, ValueError), ("2", TypeError), (True, TypeError),
    (None, TypeError), (np.ones(2), TypeError),
])
def test_delayed_scale_checks_the_scale(scale, error):
    message = (r"^scale: expected a finite positive float32 scale, got " if error is ValueError
               else r"^scale: expected a finite positive float, got ")
    with pytest.raises(error, match=message):
        delayed_scale([1.0], scale=scale)
    with pytest.raises(error, match=message):
        cast_scaled(np.ones(4, np.float32), scale)


def test_delayed_scale_keeps_the_documented_behaviour():
    assert delayed_scale([np.nan, 2.0], scale=3.0, algo="most_recent") == np.float32(3.0)
    assert delayed_scale([np.inf], scale=np.float32(5.0)) == np.float32(5.0)
    assert delayed_scale([0, 0], scale=2) == np.float32(2.0)
    assert delayed_scale(np.array([3.5, 1.0])) == np.float32(128.0)
    assert delayed_scale((1, 2)) == np.float32(224.0)  # ints and tuples are fine


# --------------------------------------------------------------------------- 5. rng

@pytest.mark.parametrize("rng, error, message", [
    (-1, ValueError, r"^rng: expected a numpy Generator, a non-negative int seed or None, "
                     r"got -1"),
    (np.int64(-5), ValueError, r"^rng: expected .* got -5"),
    ("seed", TypeError, r"^rng: expected a numpy Generator, a non-negative int seed or None, "
                        r"got str"),
    (True, TypeError, r"^rng: expected .* got bool"),
    (np.random.RandomState(0), TypeError, r"^rng: expected .* got RandomState"),
])
def test_encode_names_rng(rng, error, message):
    with pytest.raises(error, match=message):
        fp8sim.encode(np.ones(3, np.float32), rounding="stochastic", rng=rng)


def test_encode_rng_still_takes_seeds_and_generators():
    x = np.linspace(0.1, 1.0, 50, dtype=np.float32)
    a = fp8sim.encode(x, rounding="stochastic", rng=7)
    b = fp8sim.encode(x, rounding="stochastic", rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    fp8sim.encode(x, rounding="stochastic", rng=None)
    fp8sim.encode(x, rounding="stochastic", rng=np.uint64(2**63))
    # byte-swapped and half-precision input is still widened exactly
    np.testing.assert_array_equal(fp8sim.encode(x.astype(">f4")), fp8sim.encode(x))
    np.testing.assert_array_equal(fp8sim.encode(x.astype(np.float16)),
                                  fp8sim.encode(x.astype(np.float16).astype(np.float32)))


# --------------------------------------------------------------------------- 6-9. torch

def _fp8_operands(torch):
    """(a (16, 32), b (32, 16) column-major, one) float8 operands for scaled_mm."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 32, generator=g).to(torch.float8_e4m3fn)
    b = torch.randn(16, 32, generator=g).to(torch.float8_e4m3fn).t()
    return a, b, torch.tensor(1.0)


@pytest.mark.parametrize("flag", ["yes", 1, None, 0.0])
def test_scaled_mm_requires_a_bool_use_fast_accum(flag):
    torch = pytest.importorskip("torch")
    import fp8sim.torch

    a, b, one = _fp8_operands(torch)
    with pytest.raises(TypeError, match=r"^use_fast_accum: expected True or False, got "):
        fp8sim.torch.scaled_mm(a, b, one, one, out_dtype=torch.float32, use_fast_accum=flag)
    fp8sim.torch.scaled_mm(a, b, one, one, out_dtype=torch.float32, use_fast_accum=True)


@pytest.mark.parametrize("sizes, error, message", [
    ((-1, 64), ValueError, r"^in_features: expected a positive int, got -1"),
    ((64, 0), ValueError, r"^out_features: expected a positive int, got 0"),
    ((2.5, 64), TypeError, r"^in_features: expected a positive int, got float 2\.5"),
    ((64, "8"), TypeError, r"^out_features: expected a positive int, got str '8'"),
    ((True, 64), TypeError, r"^in_features: expected a positive int, got bool True"),
])
def test_float8simlinear_checks_its_sizes(sizes, error, message):
    pytest.importorskip("torch")
    with pytest.raises(error, match=message):
        fp8sim.Float8SimLinear(*sizes, recipe="torchao-rowwise")


def test_float8simlinear_takes_numpy_ints():
    pytest.importorskip("torch")
    layer = fp8sim.Float8SimLinear(np.int64(32), 16, recipe="torchao-rowwise")
    assert (layer.in_features, layer.out_features) == (32, 16)
    assert type(layer.in_features) is int


def test_meta_tensors_are_named():
    torch = pytest.importorskip("torch")
    a, b, _ = _fp8_operands(torch)
    with pytest.raises(TypeError, match=r"^a: expected a tensor holding data, got one on the "
                                        r"meta device"):
        fp8sim.gemm(a.to("meta"), b.contiguous())
    with pytest.raises(TypeError, match=r"^b: expected a tensor holding data, .*meta"):
        fp8sim.gemm(a, b.contiguous().to("meta"))
    with pytest.raises(TypeError, match=r"^codes: expected a tensor holding data, .*meta"):
        fp8sim.decode(a.to("meta"))


def test_swap_linears_checks_module_filter_fn():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(32, 16))
    with pytest.raises(TypeError, match=r"^module_filter_fn: expected a callable "
                                        r"fn\(module, name\) -> bool or None, got int"):
        fp8sim.swap_linears(model, recipe="torchao-rowwise", module_filter_fn=3)
    assert isinstance(model[0], torch.nn.Linear) and not isinstance(model[0],
                                                                    fp8sim.Float8SimLinear)
    fp8sim.swap_linears(model, recipe="torchao-rowwise", module_filter_fn=lambda m, n: True)
    assert isinstance(model[0], fp8sim.Float8SimLinear)
