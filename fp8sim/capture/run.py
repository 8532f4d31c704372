"""Hardware capture: run FP8 GEMMs and conversions on an NVIDIA GPU and save every bit.

`capture` writes ``.npz`` files in the layout of `fp8sim.golden` (and of
``../shared/golden``): GEMM cases under ``<fa>_<fb>/<dist>/<tag>/<name>`` with inputs
``A`` (M, K uint8), ``B`` (K, N uint8), optional ``C``, ``scale_a``/``scale_b``
(group scales; ``scale_b`` is (ceil(N/128), groups)), ``tensor_scale_a/b``,
``row_scale_a/b``, a ``meta`` string (what failed to run and why), and one array per
kernel output:

- ``triton_p<N>``: a Triton kernel, one program per 64 x 64 tile, BLOCK_K = 32,
  ``part = tl.dot(a, b, part)`` and ``acc += part; part = 0`` every N elements (0: never);
  loads are masked, so any M, N, K run; C (when given) is the first partial's start.
- ``triton_scaled_p128``: DeepGEMM-style, ``acc = tl.fma(part, sa[i, g] * sb[j // 128, g],
  acc)`` every 128.
- ``cublas_{fast,slow}_{f32,bf16,f16}[_scaled]``: ``torch._scaled_mm`` (column-major B),
  ``use_fast_accum`` True/False, unit or per-tensor scales; bf16/f16 as uint16 bits.
- ``rowwise_{fast,slow}_bf16``: ``torch._scaled_mm`` with row-wise scales.

Conversions sit at the top level as in ``convert_public.npz``: ``x`` (float32) and
``torch_<fmt>``, ``cuda_<fmt>_nosat``, ``cuda_<fmt>_sat`` (uint8 codes); a top-level
``meta`` string (JSON) names the device, torch/triton/CUDA versions, group and seed.

The inputs come from `build_cases` (numpy only, deterministic); only running them needs
torch, triton, cupy and a GPU (`fp8sim.capture._kernels`).

Groups of real FP8 training stacks (`STACK_GROUPS`: torchao's blockwise GEMMs through
cuBLASLt and Triton, torchao's casts and Linear recipes, DeepGEMM) draw and cast their
inputs on the GPU with the stack's own code (`fp8sim.capture._stacks`); their files are
described in `fp8sim.capture.golden` (`STACK_ARRAYS`). They need torchao there (carry its
wheel) and, for ``deepgemm``, DeepGEMM's source tree (commit fcd1dcd, the JIT era, with
CUTLASS's ``include/cute`` and ``include/cutlass`` copied into ``deep_gemm/include`` and, for
CUDA 13, ``typedef PFN_cuTensorMapEncodeTiled_v12000 PFN_cuTensorMapEncodeTiled;`` in
``tma_utils.cuh``) passed as ``deepgemm_src``.
"""

from __future__ import annotations

import json
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fp8sim.formats.convert import encode
from fp8sim.formats.info import format_info

__all__ = ["CaseSpec", "GROUPS", "STACK_GROUPS", "StackFamily", "build_cases",
           "conversion_inputs", "gpu_available", "stacks_available", "capture",
           "NO_GPU_MESSAGE", "family"]

NO_GPU_MESSAGE = "no CUDA GPU with torch and triton: nothing captured"
_PAIRS = (("e4m3", "e4m3"), ("e4m3", "e5m2"), ("e5m2", "e4m3"), ("e5m2", "e5m2"))
_OUTS = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}
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


@dataclass(frozen=True)
class StackFamily:
    """A capture group of a real FP8 stack: its inputs are drawn and cast on the GPU by the
    stack itself (`fp8sim.capture._stacks`), so it has no numpy CaseSpecs."""

    name: str
    description: str
    needs: tuple[str, ...] = ("torch", "triton", "torchao")
    """Python modules the GPU machine must have."""
    limit_mib: float = 15.5
    """Largest file written (MiB); cases past it are dropped and listed in ``failures``."""

    def __call__(self, rng: np.random.Generator) -> Iterator[CaseSpec]:
        """No CaseSpecs: the stack makes its inputs on the GPU."""
        return iter(())


STACK_GROUPS: dict[str, StackFamily] = {f.name: f for f in (
    StackFamily("blockwise", "torchao blockwise GEMMs, cuBLASLt (F.scaled_mm BlockWise "
                "scaling) and Triton, forward 1x128 x 128x128 and Wgrad 1x128 x 128x1, "
                "float32 and bf16 out, whole, with the Triton config check", limit_mib=11.5),
    StackFamily("blockwise-long", "the same at long K: M = N = 128, K = 4096 .. 65536 "
                "(cuBLASLt's split-K), and 512 x 512; cropped", limit_mib=10.0),
    StackFamily("blockwise-ds", "the same at DeepSeek-V3's layer shapes (hidden 7168, K up "
                "to 18432, M = 64 .. 4096 tokens); cropped", limit_mib=11.5),
    StackFamily("casts", "torchao's blockwise casts (1x128, 128x1, 128x128, transposed), "
                "torchao Float8 tensorwise / rowwise / colwise casts, DeepGEMM's test casts",
                limit_mib=7.0),
    StackFamily("layers", "one bf16 nn.Linear under torchao Float8BlockwiseLinear (cuBLASLt, "
                "Triton) and Float8LinearConfig tensorwise, rowwise, rowwise_with_gw_hp: "
                "y, grad_x, grad_w", limit_mib=12.0),
    StackFamily("deepgemm", "DeepGEMM's gemm_fp8_fp8_bf16_nt (JIT, nvcc) with its own test "
                "casts, small and DeepSeek-V3 shapes (cropped)", needs=("torch", "deep_gemm"),
                limit_mib=10.0),
)}
"""Real-FP8-stack groups (issue 10), one output file each."""

GROUPS: dict[str, Callable[[np.random.Generator], Iterator[CaseSpec]]] = {
    "ragged": _ragged_cases,
    "mn": _mn_cases,
    "large": _large_cases,
    "special": _special_cases,
    "edge": _edge_cases,
    "longk": lambda rng: _longk_cases(rng, "longk"),
    "longk256": lambda rng: _longk_cases(rng, "longk256"),
    **STACK_GROUPS,
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
        vals = np.array([_decode1(info, c) for c in range(info.max_code + 1)], np.float64)
        top = info.max + (vals[-1] - vals[-2])  # the next value past max
        vals = np.append(vals, top)
        mids = ((vals[1:] + vals[:-1]) / 2).astype(np.float32)
        for m in (mids, -mids):
            xs += [m, np.nextafter(m, np.float32(np.inf)), np.nextafter(m, np.float32(-np.inf))]
    xs.append(np.array([np.inf, -np.inf, np.nan, -np.nan, FLT_MAX, -FLT_MAX, 1e30, -1e30],
                       np.float32))
    return np.concatenate(xs).astype(np.float32)


def _decode1(info, code: int) -> float:
    from fp8sim.formats.info import decode_code
    return decode_code(info, code)


def gpu_available() -> bool:
    """True where torch, triton and a CUDA GPU are all there."""
    try:
        import torch
        import triton  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def stacks_available(group: str, deepgemm_src: str | None = None) -> str | None:
    """None where `group` of `STACK_GROUPS` can run here, else why not (one line)."""
    import importlib.util
    needs = STACK_GROUPS[group].needs
    missing = [m for m in needs if m != "deep_gemm" and importlib.util.find_spec(m) is None]
    if "deep_gemm" in needs and not deepgemm_src and importlib.util.find_spec("deep_gemm") is None:
        missing.append("deep_gemm (or deepgemm_src)")
    if missing:
        return f"{group}: not captured, missing {', '.join(missing)}"
    return None


def _run_case(spec: CaseSpec, kern) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every output of one case, and a line for each kernel that could not run."""
    out: dict[str, np.ndarray] = {"A": spec.a, "B": spec.b}
    errors: list[str] = []

    def attempt(name: str, fn: Callable[[], np.ndarray]) -> None:
        try:
            out[name] = fn()
        except Exception as e:  # noqa: BLE001 - a kernel the GPU or torch refuses is recorded
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                          if str(e) else f"{name}: {type(e).__name__}")

    fa, fb, a, b = spec.a_format, spec.b_format, spec.a, spec.b
    if spec.c is not None:
        out["C"] = spec.c
    for p in spec.promotes:
        attempt(f"triton_p{p}", lambda p=p: kern.triton_gemm(a, b, fa, fb, p, spec.c))
    if spec.scaled:
        sa, sb = spec.group_scales
        out["scale_a"], out["scale_b"] = sa, sb
        attempt("triton_scaled_p128", lambda: kern.triton_scaled_gemm(a, b, fa, fb, sa, sb))
    cublas_ok = spec.cublas and (fa, fb) != ("e5m2", "e5m2")
    if cublas_ok:
        for speed in ("fast", "slow"):
            for o, dt in _OUTS.items():
                attempt(f"cublas_{speed}_{o}", lambda s=speed, dt=dt: kern.scaled_mm(
                    a, b, fa, fb, fast=s == "fast", out_dtype=dt))
        if spec.tensor_scales is not None:
            ta = np.float32(spec.tensor_scales[0])
            tb = np.float32(spec.tensor_scales[1])
            out["tensor_scale_a"], out["tensor_scale_b"] = np.array(ta), np.array(tb)
            for speed in ("fast", "slow"):
                for o, dt in _OUTS.items():
                    attempt(f"cublas_{speed}_{o}_scaled", lambda s=speed, dt=dt: kern.scaled_mm(
                        a, b, fa, fb, fast=s == "fast", out_dtype=dt, scale_a=ta, scale_b=tb))
        if spec.row_scales:
            ra = spec.extra.get("row_scale_a")
            rb = spec.extra.get("row_scale_b")
            if ra is None:
                rng = np.random.default_rng(zlib.crc32(spec.key.encode()))
                ra = (2.0 ** rng.uniform(-6, 6, (a.shape[0], 1))).astype(np.float32)
                rb = (2.0 ** rng.uniform(-6, 6, (1, b.shape[1]))).astype(np.float32)
            out["row_scale_a"], out["row_scale_b"] = ra, rb
            for speed in ("fast", "slow"):
                attempt(f"rowwise_{speed}_bf16", lambda s=speed: kern.scaled_mm(
                    a, b, fa, fb, fast=s == "fast", out_dtype="bfloat16", scale_a=ra,
                    scale_b=rb))
    out["meta"] = np.array(json.dumps({"errors": errors}))
    return out, errors


def _conversions(kern) -> tuple[dict[str, np.ndarray], list[str]]:
    x = conversion_inputs()
    out = {"x": x}
    errors = []
    for fmt in ("e4m3", "e5m2"):
        try:
            out[f"torch_{fmt}"] = kern.convert_torch(x, fmt)
        except Exception as e:  # noqa: BLE001
            errors.append(f"torch_{fmt}: {e}")
        for sat in (False, True):
            name = f"cuda_{fmt}_{'sat' if sat else 'nosat'}"
            try:
                out[name] = kern.convert_cuda(x, fmt, sat)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{name}: {str(e)[:300]}")
    return out, errors


def capture(out_dir: str | Path, groups: list[str] | None = None, *, seed: int = 7,
            conversions: bool = True, log: Callable[[str], None] = print,
            deepgemm_src: str | None = None) -> list[Path]:
    """Runs every case of `groups` on the GPU and writes ``capture_<group>.npz`` files.

    Args:
        out_dir: folder for the files (created if missing).
        groups: names from `GROUPS` (default: all of them).
        seed: seed of the random inputs.
        conversions: also capture torch and CUDA float32 -> FP8 conversions (into the
            "special" file, or "main" if special is not captured).
        log: receives one line per case and per failure.
        deepgemm_src: DeepGEMM's source tree (the ``deepgemm`` group and DeepGEMM's casts
            in ``casts``); without it, an installed ``deep_gemm`` is used if there is one.

    Returns:
        The paths written; [] without a GPU (after logging NO_GPU_MESSAGE).
    """
    if not gpu_available():
        log(NO_GPU_MESSAGE)
        return []
    from fp8sim.capture import _kernels as kern
    groups = list(GROUPS) if groups is None else groups
    for g in groups:
        if g not in GROUPS:
            raise ValueError(f"groups: expected names from {', '.join(GROUPS)}, got {g!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"device: {kern.device_name()}")
    numpy_groups = [g for g in groups if g not in STACK_GROUPS]
    conv_group = "special" if "special" in groups else (numpy_groups or [None])[0]
    written = []
    for g in groups:
        if g in STACK_GROUPS:
            why = stacks_available(g, deepgemm_src)
            if why:
                log(why)
                continue
            from fp8sim.capture import _stacks
            try:
                written.append(_stacks.run_family(
                    g, out_dir / f"capture_{g}.npz", log=log,
                    limit_mib=STACK_GROUPS[g].limit_mib, deepgemm_src=deepgemm_src))
            except Exception:  # noqa: BLE001 - one family failing keeps the others
                log(f"{g}: FAILED\n{traceback.format_exc()}")
            continue
        arrays: dict[str, np.ndarray] = {}
        for spec in build_cases(g, seed):
            try:
                res, errors = _run_case(spec, kern)
            except Exception:  # noqa: BLE001
                log(f"{spec.key}: FAILED\n{traceback.format_exc()}")
                continue
            for name, v in res.items():
                arrays[f"{spec.key}/{name}"] = v
            n_out = len([n for n in res if n not in ("A", "B", "C", "meta") and "scale" not in n])
            log(f"{spec.key}: {n_out} outputs" + (f"; not run: {'; '.join(errors)}"
                                                    if errors else ""))
        if conversions and g == conv_group:
            conv, errors = _conversions(kern)
            arrays.update(conv)
            log(f"conversions: {len(conv) - 1} outputs" + (f"; failed: {errors}" if errors
                                                           else ""))
        arrays["meta"] = np.array(json.dumps({"device": kern.device_name(), "group": g,
                                              "seed": seed}))
        path = out_dir / f"capture_{g}.npz"
        np.savez_compressed(path, **arrays)
        log(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        written.append(path)
    return written


def family(name: str) -> str:
    """The family an output is counted in: 'triton_p128', 'triton_scaled',
    'cublas_fast_f16_scaled', 'rowwise_slow_bf16', ..."""
    if name.startswith("triton_scaled"):
        return "triton_scaled"
    if name.startswith("triton_p"):
        return name
    parts = name.split("_")
    if parts[0] == "cublas":
        return "cublas_" + parts[1] + "_" + parts[2] + ("_scaled" if name.endswith("scaled")
                                                      else "")
    return name


@dataclass
class FamilyStats:
    """Agreement of one output family (e.g. "cublas_fast_f16") over a capture."""

    outputs: int = 0
    exact: int = 0
    matched: int = 0
    total: int = 0
    expected_mismatch: int = 0
    mismatching: list[str] = field(default_factory=list)
    """Keys of outputs that should match and do not."""


def _conversion_results(arrays: dict[str, np.ndarray]) -> Iterator[tuple[str, int, int]]:
    """(name, matched, total) of each captured conversion against `fp8sim.encode`.

    NaN results compare as "any NaN code" (torch keeps the sign; the CUDA intrinsic
    returns 0x7F for E5M2 and for E4M3 with SATFINITE)."""
    x = arrays["x"]
    for name, got in arrays.items():
        if name == "x" or not (name.startswith("torch_") or name.startswith("cuda_")):
            continue
        parts = name.split("_")
        fmt = parts[1]
        sat = len(parts) > 2 and parts[2] == "sat"
        want = encode(x, fmt, saturate=sat)
        info = format_info(fmt)
        nan_codes = np.array(info.nan_codes, np.uint8)
        both_nan = np.isin(want, nan_codes) & np.isin(got, nan_codes)
        ok = (want == got) | both_nan
        yield name, int(ok.sum()), int(ok.size)


def verify(path: str | Path, *, gemm: Callable | None = None
           ) -> tuple[dict[str, FamilyStats], list]:
    """Replays a capture through `fp8sim.capture.golden.replay`; agreement per output family.

    Returns:
        ({family: FamilyStats}, [ReplayResult of every output]). Conversions (top-level
        ``x``, ``torch_*``, ``cuda_*``) count as families "convert_torch", "convert_cuda".
    """
    from fp8sim.capture.golden import Case, load_cases, replay
    cases = load_cases(path)
    gemm_cases: list[Case] = []
    stats: dict[str, FamilyStats] = {}
    results = []
    for case in cases:
        if "A" in case.arrays and "B" in case.arrays:
            gemm_cases.append(case)
        elif "x" in case.arrays:
            for name, matched, total in _conversion_results(case.arrays):
                fam = stats.setdefault("convert_" + name.split("_")[0], FamilyStats())
                fam.outputs += 1
                fam.exact += matched == total
                fam.matched += matched
                fam.total += total
                if matched != total:
                    fam.mismatching.append(f"{case.key + '/' if case.key else ''}{name}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow cases are on purpose
        replayed = list(replay(gemm_cases, gemm=gemm))
    for r in replayed:
        results.append(r)
        fam = stats.setdefault(family(r.output), FamilyStats())
        fam.outputs += 1
        fam.exact += r.exact
        fam.matched += r.matched
        fam.total += r.total
        if r.expected_mismatch:
            fam.expected_mismatch += 1
        elif not r.exact:
            fam.mismatching.append(f"{r.case}/{r.output}")
    return stats, results

