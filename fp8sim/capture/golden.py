"""Hardware captures (`.npz`): what each array means, and replaying them through fp8sim.

A capture file holds GEMM cases under keys ``<fa>_<fb>/<dist>/<tag>/<name>``:
``A`` (M, K) and ``B`` (K, N) uint8 codes, optionally ``C`` (M, N) float32, scales, and
one array per kernel output. `output_spec` says, for each output name, which
`fp8sim.gemm` call should reproduce it; `replay` runs them all and counts the bits that
agree. The same format is written by `fp8sim.capture` and read by `fp8sim verify`.

Files of real FP8 training stacks (the `fp8sim.capture.stacks.STACK_GROUPS` groups; on an
H200 with torch 2.11+cu130, Triton 3.6, torchao 0.18, cuBLASLt 13.1, DeepGEMM fcd1dcd:
``h200_*.npz``) follow the public ``thirdparty_public_a.npz`` and ``deepgemm_public.npz``:

- ``gemm/<M>x<N>x<K>/<dist>/`` (forward, 1x128 x 128x128), ``gemm/<M>x<N>x<K>/wgrad`` and
  ``.../wgrad_<dist>`` (Wgrad, 1x128 x 128x1); DeepGEMM files: ``<M>x<N>x<K>/<dist>/``;
- ``quant/<M>x<N>x<K>/<dist>/``: the bf16 inputs the case's codes were cast from;
- ``cast/<input>/``: one bf16 input and every cast of it;
- ``layer/<M>x<IN>x<OUT>/<dist>/`` (inputs) and ``.../<recipe>/`` (outputs);
- top level: ``env``, ``failures`` and, in the blockwise file, ``config_check``.

`STACK_ARRAYS` says what every array name in them means. A cropped case (large shapes are
run whole on the GPU, saved in part) has ``orig_shape`` (M, N), ``rows`` and ``cols``: its
``A`` rows, ``B`` columns, scales and outputs are those rows and columns of the full GEMM,
whose shape decided what the kernel did (split-K); the scales of the kept columns are
those of their 128-column block (forward) or of the columns themselves (Wgrad).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fp8sim.engine.kernel import KERNELS, Kernel

__all__ = ["Case", "load_cases", "output_kernel", "output_spec", "replay", "ReplayResult",
           "known_unexplained", "STACK_ARRAYS", "CAST_OPS", "stack_array_doc",
           "check_stack_file"]

_INPUTS = {"A", "B", "C", "scale_a", "scale_b", "tensor_scale_a", "tensor_scale_b",
           "row_scale_a", "row_scale_b", "meta", "orig_shape", "rows", "cols", "x", "w", "y",
           "gy"}

STACK_ARRAYS: dict[str, str] = {
    # top level
    "env": "JSON: torch, cuda, triton, torchao, gpu, sm_count, cublaslt_version, driver; "
           "triton_pinned (the one autotune config used for torchao's Triton kernels)",
    "failures": "JSON list: cases that raised or were dropped to keep the file small",
    "config_check": "JSON: torchao's Triton GEMMs (6 configs, f32 and bf16, forward and "
                    "Wgrad) and its 1x128 cast (4 configs): 'identical' bits to the first",
    "env_deepgemm": "JSON: env of the DeepGEMM capture, where a file mixes captures",
    "build_error": "DeepGEMM only, when it could not be built or run: the traceback",
    # GEMM cases (gemm/... and DeepGEMM's <M>x<N>x<K>/...)
    "A": "(M, K) uint8 E4M3 codes of the first operand, row-major (cropped: the kept rows)",
    "B": "(K, N) uint8 E4M3 codes of the second operand (cropped: the kept columns)",
    "scale_a": "(M, K/128) float32: A's 1x128 scales (what the kernel multiplies by, the "
               "reciprocal of the cast's multiplier)",
    "scale_b": "float32: (K/128, ceil(N/128)) 128x128 block scales of B (forward, DeepGEMM) "
               "or (K/128, N) 128x1 scales (Wgrad); cropped forward cases keep the one block "
               "of the kept columns, (K/128, 1)",
    "cublas_f32": "(M, N) uint32 bits: torch.nn.functional.scaled_mm with BlockWise1x128 "
                  "scale_a and BlockWise128x128 (forward) or BlockWise1x128-on-B^T (Wgrad) "
                  "scale_b, through torchao's _scaled_mm (cuBLASLt), float32 out",
    "cublas_bf16": "(M, N) uint16 bits: the same with bfloat16 out",
    "triton_f32": "(M, N) uint32 bits: torchao triton_fp8_gemm_1x128_128x128 (forward) or "
                  "triton_fp8_gemm_1x128_128x1 (Wgrad), float32 out",
    "triton_bf16": "(M, N) uint16 bits: the same with bfloat16 out",
    "out": "(M, N) uint16 bits: DeepGEMM gemm_fp8_fp8_bf16_nt((A, scale_a), (B^T, "
           "scale_b^T)), bfloat16 out",
    "orig_shape": "(2,) int64: M, N of the full GEMM a cropped case was cut from",
    "rows": "int64: the full GEMM's rows (of A and the output) a cropped case keeps; in "
            "quant/ and cast/: the rows of the full bf16 input kept",
    "cols": "int64: the full GEMM's columns (of B and the output) a cropped case keeps; in "
            "cast/: the columns of the full bf16 input kept (only the blockwise casts then)",
    "meta": "JSON: kind (fwd / wgrad), seed, dist, full shape [M, N, K], what did not run "
            "and why, the Triton config, crop rule; DeepGEMM: its block_m, block_n, stages, "
            "TMA multicast; layers: seed, M, IN, OUT",
    # bf16 inputs (uint16 bits)
    "x": "uint16 bf16 bits: quant/ forward: (M, K), cast 1x128 into A; quant/ Wgrad: (K, N), "
         "cast 128x1 into B; DeepGEMM: (M, K), per_token_cast_to_fp8 into A; cast/: the "
         "input of every cast; layer/: the Linear's input (M, IN)",
    "w": "uint16 bf16 bits: quant/ forward: (N, K) weight, cast 128x128 (transposed) into B; "
         "layer/: the Linear's weight (OUT, IN)",
    "gy": "uint16 bf16 bits: quant/ Wgrad: (K, M) output gradient, cast 1x128 along K "
          "(transposed) into A; layer/: the output gradient (M, OUT)",
    "y": "uint16 bf16 bits: DeepGEMM: (N, K), per_block_cast_to_fp8 into B^T; layer/<recipe>/: "
         "the Linear's output (M, OUT)",
    "gx": "uint16 bf16 bits: layer/<recipe>/: grad of the input (M, IN)",
    "gw": "uint16 bf16 bits: layer/<recipe>/: grad of the weight (OUT, IN); for "
          "rowwise_with_gw_hp a bf16 matmul, not FP8",
}
"""What every array of a real-stack capture file holds (cast outputs: `CAST_OPS`)."""

CAST_OPS: dict[str, str] = {
    "blockwise_1x128": "torchao triton_fp8_blockwise_act_quant_lhs: codes (M, K), scale "
                       "(M, K/128)",
    "blockwise_128x1": "torchao triton_fp8_blockwise_act_quant_rhs: codes (M, K), scale "
                       "(ceil(M/128), K)",
    "blockwise_1x128_t": "torchao triton_fp8_blockwise_act_quant_transposed_lhs: codes "
                         "(K, M) of x^T, scale (K, M/128)",
    "blockwise_128x128": "torchao triton_fp8_blockwise_weight_quant_rhs: codes (M, K), scale "
                         "(M/128, K/128)",
    "blockwise_128x128_t": "torchao triton_fp8_blockwise_weight_quant_transposed_rhs: codes "
                           "(K, M) of x^T, scale (K/128, M/128)",
    "tensorwise": "torchao hp_tensor_to_float8_dynamic, TENSORWISE: codes (M, K), scale ()",
    "rowwise": "the same, AXISWISE over dim -1: scale (M, 1)",
    "colwise": "the same, AXISWISE over dim 0: scale (1, K)",
    "deepgemm_1x128": "DeepGEMM tests/test_core.py per_token_cast_to_fp8: codes (M, K), "
                      "scale (M, K/128)",
    "deepgemm_128x128": "DeepGEMM per_block_cast_to_fp8: codes (M, K), scale "
                        "(ceil(M/128), ceil(K/128))",
}
"""Cast outputs ``cast/<input>/<op>_codes`` (uint8) and ``<op>_scale`` (float32; torchao
blockwise and DeepGEMM: the reciprocal of the multiplier applied, torchao Float8: the
multiplier itself, its ``_scale``); Float8 ops carry ``_<fmt>`` (e4m3, e5m2) and
``_pow2`` (round_scales_to_power_of_2) suffixes, e.g. ``rowwise_e4m3_pow2_codes``."""


def stack_array_doc(name: str) -> str | None:
    """The documentation of an array name of a real-stack capture, None if it has none."""
    if name in STACK_ARRAYS:
        return STACK_ARRAYS[name]
    for suffix in ("_codes", "_scale"):
        if name.endswith(suffix):
            op = name[: -len(suffix)]
            for fmt in ("_e4m3", "_e5m2"):
                if fmt in op:
                    op = op.split(fmt)[0]
            if op in CAST_OPS:
                return CAST_OPS[op] + (" (uint8 codes)" if suffix == "_codes"
                                       else " (float32 scale)")
    return None


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


def open_npz(path: str | Path) -> np.lib.npyio.NpzFile:
    """An .npz archive of named arrays (no pickles), or a ValueError saying what the file is."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            magic = f.read(6)
        what = "a single array (.npy)" if magic == b"\x93NUMPY" else "not a numpy file"
        raise ValueError(f"{Path(path).name} is {what}, not an .npz archive of named arrays "
                         "(np.savez writes one)")
    return np.load(path, allow_pickle=False)


def load_cases(path: str | Path) -> list[Case]:
    """Reads every case of a capture file, in file order."""
    cases: dict[str, Case] = {}
    with open_npz(path) as z:
        for key in z.files:
            prefix, _, name = key.rpartition("/")
            if prefix not in cases:
                fa, _, fb = prefix.split("/")[0].partition("_")
                if fa not in ("e4m3", "e5m2") or fb not in ("e4m3", "e5m2"):
                    fa = fb = "e4m3"  # real-stack files (gemm/..., DeepGEMM): E4M3 only
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

    cuBLASLt "fast" accumulation is "cublaslt-fast" (never promotes), "slow" is "cublaslt"
    (promotes every 128), both splitting long K as cuBLASLt does on the H100
    (`fp8sim.engine.cublaslt_splits`); Triton
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
        if "orig_shape" in case.arrays:  # a crop: the split follows the whole GEMM
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
    one_chain = {k: v for k, v in kw.items() if k != "problem_shape"}
    if known_unexplained(case, name):
        return kern.gemm_kwargs(case.a, case.b, slices=1, **one_chain)
    if kern.slices_for(case.a, case.b, **kw) > 1:
        # cuBLASLt's split with promotion inside each slice is no one gemm: the settings
        # of one slice (C, scales, out_dtype); `replay` runs the kernel itself
        return kern.gemm_kwargs(case.a, case.b, slices=1, **one_chain)
    return kern.gemm_kwargs(case.a, case.b, **kw)


def known_unexplained(case: Case, name: str) -> bool:
    """True for outputs no model explains: cuBLASLt fast accumulation at long K for a
    shape whose split-K slice count has not been captured (the kernel refuses them)."""
    m = _CUBLAS.match(name)
    (split,) = KERNELS["cublaslt-fast"].split
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
    cases = path_or_cases if isinstance(path_or_cases, list) else load_cases(path_or_cases)
    for case in cases:
        for name in case.outputs:
            kw = output_spec(case, name)
            if kw is None:
                continue
            if gemm is None:  # the kernel itself, its split of K included
                kern, kern_kw = output_kernel(case, name)
                if known_unexplained(case, name):
                    kern_kw = {k: v for k, v in kern_kw.items() if k != "problem_shape"}
                    kern_kw["slices"] = 1
                got = as_bits(kern(case.a, case.b, **kern_kw))
            else:
                got = as_bits(gemm(case.a, case.b, **kw))
            want = as_bits(case.arrays[name])
            yield ReplayResult(case.key, name, int(np.count_nonzero(got == want)), want.size,
                               known_unexplained(case, name))


_F32_OUT = ("cublas_f32", "triton_f32")
_BF16_OUT = ("cublas_bf16", "triton_bf16", "out")
_LAYER_RECIPES = ("blockwise_cublas", "blockwise_triton", "tensorwise", "rowwise",
                  "rowwise_with_gw_hp")


def _expect(problems: list[str], ok: bool, what: str) -> None:
    if not ok:
        problems.append(what)


def _check_gemm(key: str, d: dict, problems: list[str]) -> None:
    """Shapes, dtypes and crop bookkeeping of one real-stack GEMM case."""
    a, b, sa, sb = d["A"], d["B"], d.get("scale_a"), d.get("scale_b")
    meta = json.loads(str(d.get("meta", "{}")))
    m, k = a.shape
    n = b.shape[1]
    g = -(-k // 128)
    _expect(problems, a.dtype == np.uint8 and b.dtype == np.uint8 and b.shape[0] == k,
            f"{key}: A (M, K) and B (K, N) must be uint8 with one K")
    nan = {0x7F, 0xFF}
    _expect(problems, not (np.isin(a, list(nan)).any() or np.isin(b, list(nan)).any()),
            f"{key}: E4M3 NaN codes in A or B (inputs were finite)")
    _expect(problems, sa is not None and sa.dtype == np.float32 and sa.shape == (m, g),
            f"{key}: scale_a must be float32 (M, ceil(K/128))")
    wgrad = meta.get("kind") == "wgrad"
    full_n = int(d["orig_shape"][1]) if "orig_shape" in d else n
    want_sb = [(g, n)] if wgrad else [(g, -(-n // 128)), (g, 1)]
    _expect(problems, sb is not None and sb.dtype == np.float32 and sb.shape in want_sb,
            f"{key}: scale_b must be float32 {want_sb}, got {getattr(sb, 'shape', None)}")
    for s in (sa, sb):
        if s is not None:
            _expect(problems, bool(np.all(np.isfinite(s)) and np.all(s > 0)),
                    f"{key}: scales must be finite and positive")
    outs = [o for o in _F32_OUT + _BF16_OUT if o in d]
    _expect(problems, bool(outs), f"{key}: no outputs")
    for o in outs:
        dt = np.uint32 if o in _F32_OUT else np.uint16
        _expect(problems, d[o].dtype == dt and d[o].shape == (m, n),
                f"{key}/{o}: expected {np.dtype(dt).name} ({m}, {n}), got "
                f"{d[o].dtype} {d[o].shape}")
    if "shape" in meta:
        _expect(problems, int(meta["shape"][2]) == k, f"{key}: meta shape's K is not A's")
    crop_keys = {"orig_shape", "rows", "cols"} & set(d)
    _expect(problems, len(crop_keys) in (0, 3),
            f"{key}: orig_shape, rows and cols come together")
    if len(crop_keys) == 3:
        fm, fn = (int(v) for v in d["orig_shape"])
        rows, cols = d["rows"], d["cols"]
        _expect(problems, rows.shape == (m,) and cols.shape == (n,),
                f"{key}: rows/cols must have one entry per kept row/column")
        _expect(problems, bool(np.all(np.diff(rows) > 0) and rows.min() >= 0
                               and rows.max() < fm and np.all(np.diff(cols) > 0)
                               and cols.min() >= 0 and cols.max() < fn),
                f"{key}: rows/cols must be increasing indices into the full ({fm}, {fn})")
        if "shape" in meta:
            _expect(problems, [fm, fn] == [int(v) for v in meta["shape"][:2]],
                    f"{key}: orig_shape differs from meta's shape")
        if not wgrad:
            _expect(problems, np.unique(cols // 128).size == 1 and sb.shape[1] == 1,
                    f"{key}: a cropped forward case keeps one 128-column block")
    elif not crop_keys:
        _expect(problems, full_n == n, f"{key}: N mismatch")


def _check_cast(key: str, d: dict, problems: list[str]) -> None:
    """Every cast of one input: uint8 codes and float32 scales of the right shapes."""
    x = d["x"]
    _expect(problems, x.dtype == np.uint16 and x.ndim == 2, f"{key}/x: bf16 bits (M, K)")
    m, k = x.shape
    for name in d:
        if not name.endswith("_codes"):
            continue
        op = name[: -len("_codes")]
        codes, scale = d[name], d.get(op + "_scale")
        _expect(problems, stack_array_doc(name) is not None, f"{key}/{name}: unknown cast")
        want = (k, m) if op.endswith("_t") else (m, k)
        _expect(problems, codes.dtype == np.uint8 and codes.shape == want,
                f"{key}/{name}: expected uint8 {want}, got {codes.dtype} {codes.shape}")
        _expect(problems, scale is not None and scale.dtype == np.float32,
                f"{key}/{op}_scale: float32 scale missing")


def check_stack_file(path: str | Path) -> list[str]:
    """What is wrong with the layout of a real-stack capture file ([] if nothing): every
    array documented (`STACK_ARRAYS`, `CAST_OPS`), shapes and dtypes as documented, crops
    consistent, layers complete."""
    problems: list[str] = []
    with np.load(path) as z:
        files = list(z.files)
        groups: dict[str, dict] = {}
        for key in files:
            prefix, _, name = key.rpartition("/")
            _expect(problems, stack_array_doc(name) is not None,
                    f"{key}: array name not documented in STACK_ARRAYS / CAST_OPS")
            groups.setdefault(prefix, {})[name] = z[key]
    _expect(problems, "env" in groups.get("", {}), "no top-level env")
    if "env" in groups.get("", {}):
        env = json.loads(str(groups[""]["env"]))
        _expect(problems, {"torch", "cuda", "gpu"} <= set(env), "env lacks torch/cuda/gpu")
    for prefix, d in groups.items():
        head = prefix.split("/")[0]
        if "A" in d and "B" in d:
            _check_gemm(prefix, d, problems)
        elif head == "cast":
            _check_cast(prefix, d, problems)
        elif head == "layer" and "x" in d:
            x, w, gy = d["x"], d["w"], d["gy"]
            m, i = x.shape
            o = w.shape[0]
            _expect(problems, w.shape == (o, i) and gy.shape == (m, o),
                    f"{prefix}: x (M, IN), w (OUT, IN), gy (M, OUT)")
            for r in _LAYER_RECIPES:
                out = groups.get(f"{prefix}/{r}")
                if out is None:
                    problems.append(f"{prefix}/{r}: missing")
                    continue
                for name, shape in (("y", (m, o)), ("gx", (m, i)), ("gw", (o, i))):
                    _expect(problems, name in out and out[name].dtype == np.uint16
                            and out[name].shape == shape,
                            f"{prefix}/{r}/{name}: expected bf16 bits {shape}")
        elif head == "quant":
            gemm = groups.get("gemm/" + prefix[len("quant/"):])
            _expect(problems, gemm is not None, f"{prefix}: no matching gemm case")
            _expect(problems, all(v.dtype == np.uint16 for n, v in d.items()
                                  if n in ("x", "w", "gy")), f"{prefix}: bf16 bits")
    return problems
