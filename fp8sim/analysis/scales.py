"""The exact product of a scaled GEMM, its scales laid out by the kernel's epilogue.

The epilogue owns the scale layout (`fp8sim.engine.epilogue.Epilogue.expand_scales`:
tensor, row, 1x128 groups, 128x128 blocks, 128x1 tiles); the CLI, the studies and the
experiments measure scaled GEMMs against `scaled_exact`.
"""

from __future__ import annotations

import numpy as np

from fp8sim.analysis.stats import exact_product
from fp8sim.engine.gemm import resolve_scaling
from fp8sim.formats.convert import decode

__all__ = ["scaled_exact"]


def scaled_exact(a: np.ndarray, b: np.ndarray, scale_a=None, scale_b=None, *,
                 promote: int | None = None, scaling=None, a_format: str | None = None,
                 b_format: str | None = None, c: np.ndarray | None = None) -> np.ndarray:
    """The exact (float64) product of the decoded, scaled FP8 inputs (plus C).

    The scales' layout is the epilogue's (`Epilogue.expand_scales`): `scaling` as
    `fp8sim.gemm` takes it (a name, an Epilogue, candidates, or None to infer it from the
    shapes), groups along K `promote` elements long. FP8 values times float32 scales are
    exact in float64, so each operand is scaled element by element before the sum.

    Raises:
        ValueError: scales that fit no epilogue, or fit several (pass scaling=).
    """
    av = decode(a, a_format).astype(np.float64)
    bv = decode(b, b_format).astype(np.float64)
    m, k = av.shape
    n = bv.shape[1]
    if scale_a is not None or scale_b is not None:
        ep = resolve_scaling(scaling, scale_a, scale_b, m, k, n, int(promote or 0))
        fa, fb = ep.expand_scales(scale_a, scale_b, m, k, n, int(promote or 0))
        with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf scales, as the API
            if fa is not None:
                av *= fa
            if fb is not None:
                bv *= fb
    return exact_product(av, bv, c)
