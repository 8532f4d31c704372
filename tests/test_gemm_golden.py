"""The named kernels against H100 captures, bit for bit.

Every captured output is computed by the public kernel that claims to be that library
(`fp8sim.engine.kernel.KERNELS`, chosen by `fp8sim.capture.golden.output_kernel`), not by
a harness: cuBLASLt's fast accumulation at K = 16384 and 65536 goes through
`KERNELS["cublaslt-fast"]`, which applies its own split-K table. The committed subset
(tests/data/golden, every case cropped to a few outputs) always runs; the full captures in
../shared/golden run too when they are there.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, SHARED_GOLDEN

from fp8sim import gemm
from fp8sim.capture.golden import as_bits, known_unexplained, load_cases, output_kernel
from fp8sim.engine.kernel import KERNELS

FILES = ["gemm_public0", "gemm_public1", "special", "extra_public", "longk_public0",
         "longk_public1"]


def _outputs(directory):
    """(test id, case, output name) for every reproducible output in the files."""
    params = []
    for f in FILES:
        path = directory / f"{f}.npz"
        if not path.exists():
            continue
        for case in load_cases(path):
            for name in case.outputs:
                if output_kernel(case, name) is not None:
                    params.append(pytest.param(case, name, id=f"{f}:{case.key}/{name}"))
    return params


COMMITTED = _outputs(DATA / "golden")


def _check(case, name):
    kern, kw = output_kernel(case, name)
    want = as_bits(case.arrays[name])
    if known_unexplained(case, name):
        # a cuBLASLt split-K not captured: the kernel refuses rather than guess
        with pytest.raises(ValueError, match="^slices:"):
            kern(case.a, case.b, **kw)
        return
    got = as_bits(kern(case.a, case.b, **kw))
    mismatches = int(np.count_nonzero(got != want))
    assert mismatches == 0, f"{case.key}/{name}: {mismatches} of {want.size} outputs differ"
    if kern.split and case.k > min(sp.unsplit_max_k for sp in kern.split):
        # the split is real: one unpromoted chain through K does not give these bits
        single = as_bits(kern(case.a, case.b, **kw, slices=1))
        assert np.count_nonzero(single != want) > 0


@pytest.mark.parametrize(("case", "name"), COMMITTED)
def test_committed_subset(case, name):
    _check(case, name)


def test_committed_subset_is_complete():
    """Every golden file has its cropped copy, and every kernel family is in it (the
    long-K split-K outputs included), so a fresh clone tests all of them."""
    for f in FILES:
        assert (DATA / "golden" / f"{f}.npz").exists(), f
    kernels = {}
    for p in COMMITTED:
        case, name = p.values
        kern = output_kernel(case, name)[0].name
        kernels.setdefault(kern, []).append(case.k)
    assert set(kernels) == {"triton", "deepgemm", "cublaslt-fast", "cublaslt",
                            "torch-rowwise-fast", "torch-rowwise"}, sorted(kernels)
    assert sum(k > 4096 for k in kernels["cublaslt-fast"]) >= 4  # split-K at 16384 and 65536


def test_unknown_split_is_refused_and_slices_are_taken():
    """A shape cuBLASLt's split was not captured for: the kernel raises, naming `slices`;
    given the slice count it reproduces the capture (cropped 64 x 64 x 16384: 6 slices)."""
    case = next(c for c in load_cases(DATA / "golden" / "longk_public0.npz") if c.k == 16384)
    want = as_bits(case.arrays["cublas_fast_f32"])
    fast = KERNELS["cublaslt-fast"]
    kw = {"a_format": case.a_format, "b_format": case.b_format, "scaling": None}
    with pytest.raises(ValueError, match=r"^slices: cuBLASLt's split of \(4, 4, 16384\)"):
        fast(case.a, case.b, **kw)  # the crop's own shape, 4 x 4 x 16384, is unknown
    with pytest.raises(ValueError, match="^slices:"):
        fast(case.a, case.b, **kw, problem_shape=(100, 100, 16384))  # never recorded
    assert np.array_equal(as_bits(fast(case.a, case.b, **kw, slices=6)), want)
    assert np.array_equal(as_bits(fast(case.a, case.b, **kw, problem_shape=(64, 64, 16384))),
                          want)
    assert not np.array_equal(as_bits(fast(case.a, case.b, **kw, slices=5)), want)
    # the kernel's split is gemm with promotion every slice length (2816 here)
    assert np.array_equal(as_bits(gemm(case.a, case.b, a_format=case.a_format,
                                       b_format=case.b_format, promote=2816)), want)


@pytest.mark.golden
@pytest.mark.parametrize(("case", "name"), _outputs(SHARED_GOLDEN) if SHARED_GOLDEN.is_dir()
                         else [])
def test_full_golden(case, name):
    _check(case, name)
