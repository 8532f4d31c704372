"""Shared by the quantization tests: scalar encoding memoized, and test data with the
edge cases every cast must survive (outliers, zero bands, negative zeros, tiny blocks)."""

from __future__ import annotations

import functools
import math

import numpy as np

from fp8sim.engine.reference import encode_scalar


def _enc(v: float, fmt: str, saturate: bool = False) -> int:
    """encode_scalar, memoized (the key keeps the sign of zero: 0.0 == -0.0 in a dict)."""
    return _enc_cached(v, math.copysign(1.0, v), fmt, saturate)


@functools.cache
def _enc_cached(v: float, sign: float, fmt: str, saturate: bool) -> int:
    return encode_scalar(v, fmt, saturate=saturate)


def _data(rng: np.random.Generator, shape, *, log2_range=(-3, 3)) -> np.ndarray:
    """Normal values with outliers, an all-zero row band, a tiny block and negative zeros."""
    x = rng.standard_normal(shape) * 2.0 ** rng.uniform(*log2_range)
    outliers = rng.random(shape) < 0.01
    x[outliers] *= 10.0 ** rng.uniform(1, 4, size=np.count_nonzero(outliers))
    m, k = shape
    if m > 2:
        x[1] = 0.0
    if k > 8:
        x[:, : k // 8] = -0.0
        x[m // 2:, -min(k, 40):] *= 1e-7  # amax below the 1e-4 clamp
    return x.astype(np.float32)
