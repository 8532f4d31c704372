"""BF16 x BF16 -> FP32 GEMMs as Hopper's Tensor Cores compute them (cuBLAS bf16 matmul).

A high-precision GEMM is part of some FP8 training recipes: torchao's
``rowwise_with_gw_hp`` computes grad_weight as a plain bf16 ``torch.mm``. cuBLAS runs it
as a chain of wgmma BF16 steps of k = 16 along K with no promotion, and each step is
one fused sum like the FP8 one (`fp8sim.engine.mma`), only wider:

1. the 16 products are exact (8 x 8 significant bits), C is the FP32 accumulator;
2. emax = the largest exponent among the nonzero products and C;
3. every term, C included, is truncated toward zero to a multiple of 2**(emax - 25);
4. the terms are added exactly and the sum is truncated toward zero to FP32.

`HOPPER_BF16` says so as data. The model reproduced all 196,608 bf16 outputs of the
grad_weight GEMM (384 x 512, K = 256) that torchao's ``rowwise_with_gw_hp`` recipe
ran on an H200 (golden/thirdparty_public_a.npz); summing in float64 and rounding once
misses 23 of them, a float32 loop 26, 32-term steps 8, 24 fractional bits 9.
Unverified: other K (split-K at long K), NaN/Inf, subnormal and overflowing results.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numba as nb
import numpy as np

from fp8sim._torch_arrays import host_array, is_torch
from fp8sim.engine.mma import MMAStep

__all__ = ["HOPPER_BF16", "gemm_bf16", "gemm_bf16_reference"]

HOPPER_BF16 = MMAStep(
    name="hopper-bf16", terms=16, frac_bits=25, verified=True,
    description="H100/H200 wgmma BF16 (cuBLAS bf16 matmul, no promotion): 16 products and C "
                "in one fused sum aligned to the largest exponent with 25 fractional bits "
                "(truncated), the sum truncated to float32. Verified on 196,608 outputs of "
                "torchao's rowwise_with_gw_hp grad_weight GEMM (K = 256).",
)
_OUT = ("float32", "bfloat16")


def gemm_bf16(a, b, *, out_dtype: str = "bfloat16", step: MMAStep = HOPPER_BF16) -> np.ndarray:
    """D = A @ B for bfloat16 A (M, K) and B (K, N) as a Hopper bf16 matmul returns it, bit for bit.

    Args:
        a, b: bfloat16 arrays (ml_dtypes); float16/float32/float64 are rounded to bfloat16
            first (to nearest even), as ``tensor.to(torch.bfloat16)``: float64 goes through
            float32, rounding twice, as torch does (whatever ml_dtypes' own cast does).
        out_dtype: "bfloat16" (default: the float32 result rounded to nearest even, as
            cuBLAS writes a bf16 output) or "float32".
        step: a fused `MMAStep` (terms per step, fractional bits); `HOPPER_BF16` is the
            verified one.

    Returns:
        (M, N) array of out_dtype.

    Raises:
        ValueError, TypeError: malformed arguments; the message names the argument.
    """
    a16 = _as_bf16(a, "a")
    b16 = _as_bf16(b, "b")
    if a16.ndim != 2 or b16.ndim != 2 or a16.shape[1] != b16.shape[0]:
        raise ValueError(f"a, b: expected (M, K) and (K, N), got {a16.shape} and {b16.shape}")
    if out_dtype not in _OUT:
        raise ValueError(f"out_dtype: expected one of {', '.join(_OUT)}, got {out_dtype!r}")
    if not isinstance(step, MMAStep) or not step.fused or step.frac_bits is None:
        raise ValueError(f"step: expected a fused MMAStep with frac_bits, got {step!r}")
    if step.frac_bits > 40:
        raise ValueError(f"step: frac_bits above 40 would not sum exactly, got {step.frac_bits}")
    av = np.ascontiguousarray(a16.astype(np.float64))
    bv = np.ascontiguousarray(b16.astype(np.float64).T)
    out = _gemm_kernel(av, bv, step.terms, step.frac_bits)
    return out.astype(ml_dtypes.bfloat16) if out_dtype == "bfloat16" else out


def gemm_bf16_reference(a, b, *, step: MMAStep = HOPPER_BF16) -> np.ndarray:
    """The slow, obviously-correct `gemm_bf16` (float32 out): Fractions, one output at a time."""
    av = _as_bf16(a, "a").astype(np.float64)
    bv = _as_bf16(b, "b").astype(np.float64)
    m, k = av.shape
    n = bv.shape[1]
    out = np.zeros((m, n), np.float32)
    for i in range(m):
        for j in range(n):
            c = Fraction(0)
            for k0 in range(0, k, step.terms):
                terms = [Fraction(float(av[i, t])) * Fraction(float(bv[t, j]))
                         for t in range(k0, min(k0 + step.terms, k))] + [c]
                nonzero = [abs(t) for t in terms if t != 0]
                if not nonzero:
                    c = Fraction(0)
                    continue
                emax = max(_floor_log2(t) for t in nonzero)
                q = Fraction(2) ** (emax - step.frac_bits)
                total = sum((_trunc(t / q) for t in terms), 0) * q
                c = _truncate_to_float32(total)
            out[i, j] = np.float32(float(c))
    return out


def _as_bf16(x, arg: str) -> np.ndarray:
    """x as an ml_dtypes bfloat16 array; torch CPU tensors and other floats accepted."""
    if is_torch(x):
        import torch

        if not isinstance(x, torch.Tensor) or x.device.type != "cpu":
            raise TypeError(f"{arg}: expected a CPU tensor, got {x!r:.60}")
    arr = host_array(x, arg)
    if arr.dtype == ml_dtypes.bfloat16:
        return arr
    if arr.dtype.kind != "f":
        raise TypeError(f"{arg}: expected a bfloat16 (or float) array, got dtype {arr.dtype}")
    # torch's bfloat16 is built from a float, so float64 rounds to float32 first; ml_dtypes
    # did so up to 0.5 and rounds once since 0.6: go through float32 explicitly.
    return arr.astype(np.float32).astype(ml_dtypes.bfloat16)


def _floor_log2(v: Fraction) -> int:
    """floor(log2(v)) of a positive Fraction, exactly."""
    e = v.numerator.bit_length() - v.denominator.bit_length()
    if Fraction(2) ** e > v:
        e -= 1
    return e


def _trunc(v: Fraction) -> int:
    """v rounded toward zero to an integer."""
    return math.trunc(v)


def _truncate_to_float32(v: Fraction) -> Fraction:
    """v rounded toward zero to a float32 value (24 significant bits; 2**-149 subnormal step)."""
    if v == 0:
        return Fraction(0)
    e = max(_floor_log2(abs(v)), -126)
    q = Fraction(2) ** (e - 23)
    return _trunc(v / q) * q


@nb.njit(cache=True, parallel=True, error_model="numpy")
def _gemm_kernel(a, bt, terms, frac):  # pragma: no cover - compiled
    """float32 (M, N) = chained fused steps over rows of a (M, K) and bt (N, K), float64 values.

    Products of bfloat16 values are exact in float64; every term is a multiple of
    2**(emax - frac) below 2**(emax + 1), so at most terms + 1 of them sum exactly in
    float64 for frac <= 40. Parallel over rows of the output, never over K.
    """
    m, k = a.shape
    n = bt.shape[0]
    out = np.empty((m, n), np.float32)
    for i in nb.prange(m):
        for j in range(n):
            c = 0.0
            for k0 in range(0, k, terms):
                k1 = min(k0 + terms, k)
                special = False
                emax = -100000
                for t in range(k0, k1):
                    p = a[i, t] * bt[j, t]
                    if not np.isfinite(p):
                        special = True
                    elif p != 0.0:
                        e = math.frexp(p)[1] - 1
                        if e > emax:
                            emax = e
                if c != 0.0:
                    if not np.isfinite(c):
                        special = True
                    else:
                        e = math.frexp(c)[1] - 1
                        if e > emax:
                            emax = e
                if special:
                    s = c
                    for t in range(k0, k1):
                        s += a[i, t] * bt[j, t]
                    c = s
                    continue
                if emax == -100000:
                    c = 0.0
                    continue
                q = math.ldexp(1.0, emax - frac)
                s = np.trunc(c / q)
                for t in range(k0, k1):
                    s += np.trunc(a[i, t] * bt[j, t] / q)
                c = _rz_float32(s * q)
            out[i, j] = np.float32(c)
    return out


@nb.njit(cache=True, inline="always", error_model="numpy")
def _rz_float32(v):  # pragma: no cover - compiled
    """float64 v rounded toward zero to a float32 value (kept in float64)."""
    if v == 0.0:
        return 0.0
    e = max(math.frexp(v)[1] - 1, -126)
    q = math.ldexp(1.0, e - 23)
    return np.trunc(v / q) * q
