"""Hardware captures (`.npz`): what each array means, and replaying them through fp8sim.

A capture file holds GEMM cases under keys ``<fa>_<fb>/<dist>/<tag>/<name>``:
``A`` (M, K) and ``B`` (K, N) uint8 codes, optionally ``C`` (M, N) float32, scales, and
one array per kernel output. `output_spec` says, for each output name, which
`fp8sim.gemm` call should reproduce it; `replay` runs them all and counts the bits that
agree. The same format is written by `fp8sim.capture` and read by `fp8sim verify`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fp8sim.engine.kernel import KERNELS, Kernel

__all__ = ["Case", "load_cases", "output_kernel", "output_spec", "replay", "ReplayResult",
           "known_unexplained"]

_INPUTS = {"A", "B", "C", "scale_a", "scale_b", "tensor_scale_a", "tensor_scale_b",
           "row_scale_a", "row_scale_b", "meta", "orig_shape"}


@dataclass
class Case:
    """One set of inputs and every kernel output captured for them."""

    key: str
    """The key prefix, e.g. "e4m3_e4m3/normal/K4096"."""
    a_format: str
    b_format: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def a(self) -> np.ndarray:
        return self.arrays["A"]

    @property
    def b(self) -> np.ndarray:
        return self.arrays["B"]

    @property
    def k(self) -> int:
        return int(self.a.shape[1])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(M, N, K) of the captured GEMM; a cropped copy records the original M, N."""
        if "orig_shape" in self.arrays:
            m, n = (int(v) for v in self.arrays["orig_shape"])
        else:
            m, n = int(self.a.shape[0]), int(self.b.shape[1])
        return m, n, self.k

    @property
    def outputs(self) -> list[str]:
        """Names of the captured outputs (everything that is not an input)."""
        return [n for n in self.arrays if n not in _INPUTS]


def load_cases(path: str | Path) -> list[Case]:
    """Reads every case of a capture file, in file order."""
    cases: dict[str, Case] = {}
    with np.load(path) as z:
        for key in z.files:
            prefix, _, name = key.rpartition("/")
            if prefix not in cases:
                fa, _, fb = prefix.split("/")[0].partition("_")
                cases[prefix] = Case(prefix, fa, fb)
            cases[prefix].arrays[name] = z[key]
    return list(cases.values())


_TRITON = re.compile(r"^triton_p(\d+)$")
_CUBLAS = re.compile(r"^cublas_(fast|slow)_(f32|bf16|f16)(_scaled)?$")
_ROWWISE = re.compile(r"^rowwise_(fast|slow)_(bf16|f32|f16)$")
_SCALED = re.compile(r"^triton_scaled_p(\d+)$")
_OUT = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def output_kernel(case: Case, name: str) -> tuple[Kernel, dict] | None:
    """The named kernel (`fp8sim.engine.kernel.KERNELS`) that should reproduce output `name`,
    and the keyword arguments to call it with on the case's A and B; None for outputs that
    are not GEMMs.

    cuBLASLt "fast" accumulation is "cublaslt-fast" (never promotes, splits long K by its
    own table), "slow" is "cublaslt" (promotes every 128), as verified on the H100; Triton
    outputs are "triton" with the captured promotion. The arguments carry the case's C,
    scales and output type, and for a cropped copy the shape of the captured GEMM.
    """
    kw: dict = {"a_format": case.a_format, "b_format": case.b_format}
    if "C" in case.arrays:
        kw["c"] = case.arrays["C"]
    if m := _TRITON.match(name):
        return KERNELS["triton"], kw | {"promote": int(m.group(1))}
    if m := _SCALED.match(name):
        # captured with scale_b as (ceil(N/128), K/128); the contract's is its transpose
        return KERNELS["deepgemm"], kw | {
            "promote": int(m.group(1)), "scale_a": case.arrays["scale_a"],
            "scale_b": np.ascontiguousarray(case.arrays["scale_b"].T)}
    if m := _CUBLAS.match(name):
        fast = m.group(1) == "fast"
        kern = KERNELS["cublaslt-fast" if fast else "cublaslt"]
        kw["out_dtype"] = _OUT[m.group(2)]
        if fast and "orig_shape" in case.arrays:  # a crop: the split follows the whole GEMM
            kw["problem_shape"] = case.shape
        if m.group(3):
            return kern, kw | {"scale_a": case.arrays["tensor_scale_a"],
                               "scale_b": case.arrays["tensor_scale_b"]}
        return kern, kw | {"scaling": None}  # unit scales: alpha = 1 changes nothing
    if m := _ROWWISE.match(name):
        kern = KERNELS["torch-rowwise-fast" if m.group(1) == "fast" else "torch-rowwise"]
        return kern, kw | {"out_dtype": _OUT[m.group(2)], "scale_a": case.arrays["row_scale_a"],
                           "scale_b": case.arrays["row_scale_b"]}
    return None


def output_spec(case: Case, name: str) -> dict | None:
    """The `fp8sim.gemm` keyword arguments that should reproduce output `name`, or None.

    These are the settings of the kernel `output_kernel` names, resolved for this case (a
    splitting kernel's promotion included). For an output no model explains
    (`known_unexplained`) the promotion is 0, one chain through K.
    """
    found = output_kernel(case, name)
    if found is None:
        return None
    kern, kw = found
    if known_unexplained(case, name):
        kw = {k: v for k, v in kw.items() if k != "problem_shape"}
        return kern.gemm_kwargs(case.a, case.b, slices=1, **kw)
    return kern.gemm_kwargs(case.a, case.b, **kw)


def known_unexplained(case: Case, name: str) -> bool:
    """True for outputs no model explains: cuBLASLt fast accumulation at long K for a
    shape whose split-K slice count has not been captured (the kernel refuses them)."""
    m = _CUBLAS.match(name)
    split = KERNELS["cublaslt-fast"].split
    return bool(m and m.group(1) == "fast"
                and split.slices(*case.shape, _OUT[m.group(2)]) is None)


def as_bits(x: np.ndarray) -> np.ndarray:
    """The raw bits of a float32/bf16/f16 array (uint16 arrays are taken as bits already)."""
    x = np.asarray(x)
    if x.dtype == np.uint16 or x.dtype == np.uint32:
        return x
    return x.view(np.uint32 if x.dtype.itemsize == 4 else np.uint16)


@dataclass
class ReplayResult:
    """Agreement of one captured output with the simulator."""

    case: str
    output: str
    matched: int
    total: int
    expected_mismatch: bool = False

    @property
    def exact(self) -> bool:
        return self.matched == self.total


def replay(path_or_cases: str | Path | list[Case], *,
           gemm: Callable | None = None) -> Iterator[ReplayResult]:
    """Runs every reproducible output of a capture through `gemm` and yields the agreement."""
    if gemm is None:
        from fp8sim.engine.gemm import gemm
    cases = path_or_cases if isinstance(path_or_cases, list) else load_cases(path_or_cases)
    for case in cases:
        for name in case.outputs:
            kw = output_spec(case, name)
            if kw is None:
                continue
            got = as_bits(gemm(case.a, case.b, **kw))
            want = as_bits(case.arrays[name])
            yield ReplayResult(case.key, name, int(np.count_nonzero(got == want)), want.size,
                               known_unexplained(case, name))
