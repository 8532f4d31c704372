"""The numba engine runs on several threads for real, with the same bits at every count.

Results must not depend on the thread count (the quality bar): one thread and all of
numba's threads give the same bits, on adversarial inputs (test_engine_properties' case
makers), and an output of few tiles runs on few threads.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from test_engine_properties import TILE_M, TILE_N, _make_scales, bits, c_values, codes

from fp8sim import gemm
from fp8sim.engine import _gemm_kernels as _k
from fp8sim.formats.info import E4M3, E5M2


def _spy_on_threads(monkeypatch) -> list[int]:
    """Records numba's thread count at each launch of the engine kernel."""
    seen: list[int] = []
    real = _k.gemm_tiles

    def spy(*args):
        seen.append(numba.get_num_threads())
        return real(*args)

    monkeypatch.setattr(_k, "gemm_tiles", spy)
    return seen


@numba.njit(parallel=True, cache=False)
def _thread_ids(n):
    """The numba thread id that ran each iteration of a parallel loop."""
    out = np.empty(n, np.int64)
    for i in numba.prange(n):
        acc = 0.0
        for t in range(20_000):  # enough work that every thread takes iterations
            acc += np.sqrt(t + i)
        out[i] = numba.get_thread_id() + (0 if acc > -1 else 1)
    return out


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has a single thread")
@pytest.mark.parametrize("kind", ["finite", "special"])
def test_several_threads_same_bits(monkeypatch, kind):
    """One thread and every thread numba has: the engine launches with each count (up to
    the output's 4 tiles of 128 x 128: `_threads_for` runs no more threads than tiles) and
    returns the same bits."""
    seen = _spy_on_threads(monkeypatch)
    rng = np.random.default_rng(5)
    a = codes(rng, (150, 300), kind, E4M3, 0)
    b = codes(rng, (300, 140), kind, E5M2, 1)
    c = c_values(rng, (150, 140), "edge")
    sa, sb = _make_scales("group", rng, 150, 300, 140, 128, "random")
    many = numba.config.NUMBA_NUM_THREADS
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, many):
            numba.set_num_threads(threads)
            results.append(gemm(a, b, b_format="e5m2", promote=128, c=c, scale_a=sa,
                                scale_b=sb, scaling="group"))
            numba.set_num_threads(threads)
            assert len(set(_thread_ids(4 * threads).tolist())) == threads
    finally:
        numba.set_num_threads(before)
    tiles = -(-150 // TILE_M) * -(-140 // TILE_N)
    assert seen == [1, min(many, tiles)]
    assert np.array_equal(bits(results[0]), bits(results[1]))


def test_few_tiles_use_few_threads(monkeypatch):
    """One output tile runs on one thread (idle threads only cost time); the bits agree."""
    seen = _spy_on_threads(monkeypatch)
    rng = np.random.default_rng(6)
    a = codes(rng, (64, 96), "finite", E4M3, 0)
    b = codes(rng, (96, 64), "finite", E4M3, 1)
    gemm(a, b)
    assert seen == [1]
