"""What to capture: the numpy case groups, drawn deterministically from a seed.

`build_cases(group, seed)` gives the inputs (FP8 codes, C, scales) of one group and which
kernels `fp8sim.capture.run` runs on them; `conversion_inputs` the float32 inputs of the
float32 -> FP8 conversions. Numpy only: the same cases on any machine for a given seed.
The real-stack groups (`fp8sim.capture.stacks.STACK_GROUPS`) are listed in `GROUPS` too,
with no cases here: their stacks draw their inputs on the GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from fp8sim.capture.stacks import STACK_GROUPS
from fp8sim.formats.convert import encode
from fp8sim.formats.info import decode_code, format_info

__all__ = ["CaseSpec", "GROUPS", "build_cases", "conversion_inputs", "FLT_MAX"]

_PAIRS = (("e4m3", "e4m3"), ("e4m3", "e5m2"), ("e5m2", "e4m3"), ("e5m2", "e5m2"))
FLT_MAX = np.float32(np.finfo(np.float32).max)


@dataclass
class CaseSpec:
    """The inputs of one GEMM case and which kernels to run on them."""

    key: str
    a_format: str
    b_format: str
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray | None = None
    promotes: tuple[int, ...] = (0,)
    """Triton promotion intervals (0: never)."""
    scaled: bool = False
    """Also the DeepGEMM-style kernel (with random group scales unless given)."""
    cublas: bool = True
    """torch._scaled_mm with unit scales, f32/bf16/f16 out, fast and slow."""
    tensor_scales: tuple[float, float] | None = None
    row_scales: bool = False
    group_scales: tuple[np.ndarray, np.ndarray] | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _draw(dist: str, shape: tuple[int, int], fmt: str, rng: np.random.Generator) -> np.ndarray:
    """Random FP8 codes: 'normal', 'codes' (every finite code alike), 'wide' (log-uniform)."""
    info = format_info(fmt)
    if dist == "normal":
        return encode(rng.standard_normal(shape).astype(np.float32), fmt)
    if dist == "wide":
        mag = 2.0 ** rng.uniform(-12, 4, shape)
        return encode((mag * rng.choice([-1.0, 1.0], shape)).astype(np.float32), fmt)
    if dist == "codes":
        finite = np.array([c for c in range(256) if (c & 0x7F) <= info.max_code], np.uint8)
        return rng.choice(finite, shape)
    raise ValueError(f"dist: unknown distribution {dist!r}")


def _naninf(shape: tuple[int, int], fmt: str, rng: np.random.Generator) -> np.ndarray:
    """Normal codes with NaN (and, in E5M2, +-Inf) sprinkled in, and some zero lines."""
    x = _draw("normal", shape, fmt, rng)
    special = [0x7F, 0xFF] if fmt == "e4m3" else [0x7C, 0xFC, 0x7C, 0xFC, 0x7E, 0xFD]
    hit = rng.random(shape) < 1.0 / 96
    x[hit] = rng.choice(np.array(special, np.uint8), int(hit.sum()))
    return x


def _tag(m: int, n: int, k: int) -> str:
    return f"K{k}" if m == n == 64 else f"M{m}N{n}K{k}"


def _group_scales(m: int, n: int, k: int, rng: np.random.Generator, lo: float = -8,
                  hi: float = 8) -> tuple[np.ndarray, np.ndarray]:
    g = -(-k // 128)
    sa = (2.0 ** rng.uniform(lo, hi, (m, g))).astype(np.float32)
    sb = (2.0 ** rng.uniform(lo, hi, (-(-n // 128), g))).astype(np.float32)
    return sa, sb


def _ragged_cases(rng: np.random.Generator) -> Iterator[CaseSpec]:
    """64 x 64 outputs with K not a multiple of 32 (and 48, a multiple of 16), fp16 outputs."""
    shapes = [(64, 64, 40, (0, 32)), (64, 64, 100, (0, 32, 64)),
              (64, 64, 1000, (0, 32, 128, 256)), (64, 64, 48, (0, 32))]
    yield from _shape_cases(rng, shapes, f16=True)


def _mn_cases(rng: np.random.Generator) -> Iterator[CaseSpec]:
    """M and N not multiples of 64 (200 x 136; 208 x 144, multiples of 16, for cuBLASLt)."""
    shapes = [(200, 136, 256, (0, 128)), (200, 136, 1000, (0, 128)), (208, 144, 1008, (0, 128))]
    yield from _shape_cases(rng, shapes, f16=False)


def _shape_cases(rng: np.random.Generator, shapes: list, f16: bool) -> Iterator[CaseSpec]:
    for fa, fb in _PAIRS:
        for m, n, k, promotes in shapes:
            for dist in ("normal", "codes"):
                if dist == "codes" and (not f16 or k not in (256, 1000)):
                    continue
                a = _draw(dist, (m, k), fa, rng)
                b = _draw(dist, (k, n), fb, rng)
                yield CaseSpec(f"{fa}_{fb}/{dist}/{_tag(m, n, k)}", fa, fb, a, b,
                               promotes=promotes, scaled=True,
                               group_scales=_group_scales(m, n, k, rng),
                               tensor_scales=(float(rng.uniform(0.5, 4)),
                                              float(rng.uniform(0.01, 1))),
                               row_scales=True)
        # fp16 outputs past 65504 and wide dynamic range, 64x64
        for dist in ("wide", "codes") if f16 else ():
            a = _draw(dist, (64, 256), fa, rng)
            b = _draw(dist, (256, 64), fb, rng)
            yield CaseSpec(f"{fa}_{fb}/{dist}f16/K256", fa, fb, a, b, promotes=(0, 128),
                           tensor_scales=(0.25, 3.0), row_scales=True)


def _large_cases(rng: np.random.Generator) -> Iterator[CaseSpec]:
    """256 x 384 outputs (several 64 x 64 tiles and cuBLASLt tiles) at K = 1024."""
    m, n, k = 256, 384, 1024
    for fa, fb in (("e4m3", "e4m3"), ("e4m3", "e5m2"), ("e5m2", "e5m2")):
        yield CaseSpec(f"{fa}_{fb}/normal/{_tag(m, n, k)}", fa, fb,
                       _draw("normal", (m, k), fa, rng),
                       _draw("normal", (k, n), fb, rng), promotes=(0, 128), scaled=True,
                       group_scales=_group_scales(m, n, k, rng), tensor_scales=(1.5, 0.375),
                       row_scales=True)


def _special_cases(rng: np.random.Generator) -> Iterator[CaseSpec]:
    """NaN/Inf mixes, signed zeros with C = -0.0, C near FLT_MAX, overflow in epilogues."""
    for fa, fb in _PAIRS:
        p = f"{fa}_{fb}"
        for k in (64, 256):
            yield CaseSpec(f"{p}/naninf/K{k}", fa, fb, _naninf((64, k), fa, rng),
                           _naninf((k, 64), fb, rng), promotes=(0, 32, 128),
                           tensor_scales=(2.0, 0.5), row_scales=True)
        # signed zeros: rows 0-15 A = +0, 16-31 A = -0, 32-47 cancel inside one MMA step
        # (k = 0, 1), 48-63 cancel across steps (k = 0 and k = 32)
        a, b = _zero_cancel(fa, fb, rng)
        for cname, cval in (("cneg", -0.0), ("cpos", 0.0)):
            c = np.full((64, 64), cval, np.float32)
            yield CaseSpec(f"{p}/negzero{cname}/K64", fa, fb, a, b, c=c, promotes=(0, 32),
                           cublas=False)
        yield CaseSpec(f"{p}/negzero/K64", fa, fb, a, b, promotes=(0, 32),
                       tensor_scales=(1.0, 1.0), row_scales=True)
        # C near FLT_MAX with the largest products of either sign
        yield _cmax(fa, fb, rng)
        # epilogue overflow: per-tensor alpha 2^100 (and 2^128 = Inf), group scales that
        # overflow in the fma, row scales past FLT_MAX
        a = _draw("codes", (64, 256), fa, rng)
        b = _draw("codes", (256, 64), fb, rng)
        sa, sb = _group_scales(64, 64, 256, rng, 100, 127)
        yield CaseSpec(f"{p}/overflow/K256", fa, fb, a, b, promotes=(0, 128), scaled=True,
                       group_scales=(sa, np.clip(sb, 0, 2.0 ** 20)),
                       tensor_scales=(2.0 ** 50, 2.0 ** 50), row_scales=True,
                       extra={"row_scale_a": (2.0 ** rng.uniform(60, 120, (64, 1))
                                              ).astype(np.float32),
                              "row_scale_b": (2.0 ** rng.uniform(0, 30, (1, 64))
                                              ).astype(np.float32)})
        yield CaseSpec(f"{p}/alphainf/K256", fa, fb, a, b, promotes=(),
                       tensor_scales=(2.0 ** 70, 2.0 ** 70))


def _edge_cases(rng: np.random.Generator) -> Iterator[CaseSpec]:
    """Epilogue results next to FLT_MAX: one product per output (K = 32, A[:, 0] and
    B[0, :] hold 1.0 .. 1.875 or 2.0), scales near 2^126 so that acc * scale lands below
    the BF16 maximum, in (BF16 max, FLT_MAX] or past FLT_MAX."""
    for fa, fb in (("e4m3", "e4m3"), ("e4m3", "e5m2")):
        one = {"e4m3": 0x38, "e5m2": 0x3C}
        steps = {"e4m3": 8, "e5m2": 4}
        a = np.zeros((64, 32), np.uint8)
        b = np.zeros((32, 64), np.uint8)
        a[:, 0] = one[fa] + np.arange(64) % (steps[fa] + 1)
        b[0, :] = one[fb] + (np.arange(64) // 8) % (steps[fb] + 1)
        for n in range(4):
            sa = np.float32(2.0 ** 63 * rng.uniform(1.0, 1.2))
            sb = np.float32(2.0 ** 63)
            ra = (2.0 ** 63 * rng.uniform(1.0, 1.2, (64, 1))).astype(np.float32)
            rb = (2.0 ** 63 * rng.uniform(0.95, 1.05, (1, 64))).astype(np.float32)
            ga = (2.0 ** 63 * rng.uniform(0.9, 1.1, (64, 1))).astype(np.float32)
            gb = (2.0 ** 63 * rng.uniform(0.95, 1.05, (1, 1))).astype(np.float32)
            yield CaseSpec(f"{fa}_{fb}/edge{n}/K32", fa, fb, a, b, promotes=(0,),
                           scaled=True, group_scales=(ga, gb), tensor_scales=(sa, sb),
                           row_scales=True, extra={"row_scale_a": ra, "row_scale_b": rb})


def _zero_cancel(fa: str, fb: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros((64, 64), np.uint8)
    a[16:32] = 0x80
    x = _draw("normal", (64, 1), fa, rng)
    x[(x & 0x7F) == 0] = 0x38
    y = _draw("normal", (1, 64), fb, rng)
    y[(y & 0x7F) == 0] = 0x38
    b = np.zeros((64, 64), np.uint8)
    b[0] = y[0]
    b[1] = y[0] ^ 0x80
    b[32] = y[0] ^ 0x80
    a[32:48, 0] = x[32:48, 0]
    a[32:48, 1] = x[32:48, 0]
    a[48:64, 0] = x[48:64, 0]
    a[48:64, 32] = x[48:64, 0]
    return a, b


def _cmax(fa: str, fb: str, rng: np.random.Generator) -> CaseSpec:
    """C at FLT_MAX, -FLT_MAX, FLT_MAX with 13 bits, and 2^127; products of max size."""
    ia, ib = format_info(fa), format_info(fb)
    a = np.full((64, 32), ia.max_code, np.uint8)
    a[:, ::2] |= 0x80 * (rng.random((64, 16)) < 0.5).astype(np.uint8)
    b = np.full((32, 64), ib.max_code, np.uint8)
    b[:, 32:] |= 0x80
    big = np.array([FLT_MAX, -FLT_MAX, np.float32((2 - 2.0 ** -13) * 2.0 ** 127),
                    np.float32(2.0 ** 127), np.float32(2.0 ** 114),
                    np.float32(-(2 - 2.0 ** -13) * 2.0 ** 127)], np.float32)
    c = big[rng.integers(0, big.size, (64, 64))]
    a[:8] = ia.max_code  # all-positive products on rows 0-7
    return CaseSpec(f"{fa}_{fb}/cmax/K32", fa, fb, a, b, c=c, promotes=(0, 32), cublas=False)


def _longk_cases(rng: np.random.Generator, group: str) -> Iterator[CaseSpec]:
    """cuBLASLt fast accumulation at long K for other shapes (split-K search)."""
    shapes = {"longk": [(128, 128, 16384), (64, 64, 32768)],
              "longk256": [(256, 256, 16384)]}[group]
    for m, n, k in shapes:
        for fa, fb in (("e4m3", "e4m3"),):
            yield CaseSpec(f"{fa}_{fb}/normal/{_tag(m, n, k)}", fa, fb,
                           _draw("normal", (m, k), fa, rng), _draw("normal", (k, n), fb, rng),
                           promotes=(0, 128))


def _made_on_gpu(rng: np.random.Generator) -> Iterator[CaseSpec]:
    """No CaseSpecs: a real stack makes its inputs on the GPU."""
    return iter(())


GROUPS: dict[str, Callable[[np.random.Generator], Iterator[CaseSpec]]] = {
    "ragged": _ragged_cases,
    "mn": _mn_cases,
    "large": _large_cases,
    "special": _special_cases,
    "edge": _edge_cases,
    "longk": lambda rng: _longk_cases(rng, "longk"),
    "longk256": lambda rng: _longk_cases(rng, "longk256"),
    **{name: _made_on_gpu for name in STACK_GROUPS},
}
"""Case groups, one output file each (each well below 16 MiB)."""


def build_cases(group: str, seed: int = 7) -> list[CaseSpec]:
    """The inputs of one group, the same for a given seed ([] for `STACK_GROUPS`, whose
    inputs the stacks make on the GPU)."""
    if group not in GROUPS:
        raise ValueError(f"group: expected one of {', '.join(GROUPS)}, got {group!r}")
    return list(GROUPS[group](np.random.default_rng(seed)))


def conversion_inputs() -> np.ndarray:
    """float32 inputs for the conversions: every float16 value, both formats' midpoints
    and their float32 neighbours, overflow thresholds, Inf, NaN, FLT_MAX."""
    xs = [np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)]
    for fmt in ("e4m3", "e5m2"):
        info = format_info(fmt)
        vals = np.array([decode_code(info, c) for c in range(info.max_code + 1)], np.float64)
        top = info.max + (vals[-1] - vals[-2])  # the next value past max
        vals = np.append(vals, top)
        mids = ((vals[1:] + vals[:-1]) / 2).astype(np.float32)
        for m in (mids, -mids):
            xs += [m, np.nextafter(m, np.float32(np.inf)), np.nextafter(m, np.float32(-np.inf))]
    xs.append(np.array([np.inf, -np.inf, np.nan, -np.nan, FLT_MAX, -FLT_MAX, 1e30, -1e30],
                       np.float32))
    return np.concatenate(xs).astype(np.float32)

