"""fp8sim's models against the committed H200 real-stack captures, bit for bit.

tests/data/h200_blockwise.npz and h200_stacks.npz (see tests/test_h200_captures.py):
cuBLASLt's blockwise GEMMs (``cublas_*``) through `KERNELS["cublaslt-blockwise"]`'s
epilogue with the captured split-K (`H200_BLOCKWISE_SPLITS`), torchao's Triton GEMMs
through `KERNELS["torchao-triton-blockwise"]`, DeepGEMM's own GEMM through
`KERNELS["deepgemm"]`, torchao's and DeepGEMM's blockwise casts through `quantize`.

The split counts are what the captures show (every cropped case of the H200 files was
searched over slice counts and slice-length roundings; one answer reproduces every bit):
cuBLASLt cuts K into S slices of ceil(K / S) rounded up to a multiple of 512 for the
forward kernel (1x128 x 128x128 scales) and of 128 for the Wgrad kernel (1x128 x 128x1),
each slice the group-scaled chain from +0, the slices' float32 results added in order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from conftest import DATA

from fp8sim.capture.golden import load_cases
from fp8sim.casts import quantize
from fp8sim.engine.kernel import KERNELS
from fp8sim.engine.splitk import gemm_split_k

BLOCKWISE = DATA / "h200_blockwise.npz"
STACKS = DATA / "h200_stacks.npz"

H200_BLOCKWISE_SPLITS: dict[tuple[str, int, int, int], int] = {
    # (kind, M, N, K): slices, captured on the H200 (cuBLASLt 13.1, CUDA 13.0)
    ("fwd", 128, 128, 6144): 2, ("fwd", 128, 128, 7168): 2, ("fwd", 128, 128, 8192): 3,
    ("fwd", 128, 128, 10240): 3, ("fwd", 128, 128, 12288): 4, ("fwd", 128, 128, 14336): 5,
    ("fwd", 128, 128, 16384): 6, ("fwd", 128, 128, 18432): 6, ("fwd", 128, 128, 20480): 7,
    ("fwd", 128, 128, 24576): 8, ("fwd", 128, 128, 32768): 11, ("fwd", 128, 128, 40960): 14,
    ("fwd", 128, 128, 49152): 14, ("fwd", 128, 128, 65536): 15,
    ("fwd", 64, 128, 8192): 3, ("fwd", 64, 128, 16384): 6, ("fwd", 64, 128, 32768): 11,
    ("fwd", 128, 256, 8192): 3, ("fwd", 128, 256, 16384): 6, ("fwd", 128, 256, 32768): 7,
    ("fwd", 256, 128, 8192): 3, ("fwd", 256, 128, 16384): 6, ("fwd", 256, 128, 32768): 7,
    ("fwd", 256, 256, 8192): 3, ("fwd", 256, 256, 16384): 3, ("fwd", 256, 256, 32768): 3,
    ("wgrad", 128, 128, 8192): 3, ("wgrad", 128, 128, 12288): 4,
    ("wgrad", 128, 128, 16384): 6, ("wgrad", 128, 128, 24576): 9,
    ("wgrad", 128, 128, 32768): 11, ("wgrad", 128, 128, 65536): 15,
    ("wgrad", 256, 256, 16384): 3, ("wgrad", 256, 256, 32768): 3,
}
"""Shapes cuBLASLt split (K > 4096 elsewhere captured unsplit: 128 x 128 at K = 5120,
384 x 384 and 512 x 512 up to K = 32768, and every DeepSeek-V3 shape: N >= 1536, K up to
18432, M = 64 .. 4096)."""

SPLIT_ALIGN = {"fwd": 512, "wgrad": 128}
"""Slice lengths are rounded up to a multiple of this, per kernel."""


def _u(x, od: str) -> np.ndarray:
    x = np.asarray(x)
    return x.view(np.uint32) if od == "float32" else x.view(np.uint16)


def cublas_blockwise(case, od: str, slices: int | None = None, align: int | None = None):
    """cuBLASLt's blockwise GEMM of a captured case: the kernel's epilogue, the captured split."""
    meta = json.loads(str(case.arrays["meta"]))
    m, n, k = case.shape
    kind = meta["kind"]
    s = slices or H200_BLOCKWISE_SPLITS.get((kind, m, n, k), 1)
    kern = KERNELS["cublaslt-blockwise"]
    return gemm_split_k(case.a, case.b, slices=s, align=align or SPLIT_ALIGN[kind],
                        promote=kern.promote, scaling=kern.scaling, preset=kern.step,
                        scale_a=case.arrays["scale_a"], scale_b=case.arrays["scale_b"],
                        out_dtype=od)


def _gemm_params():
    params = []
    for case in load_cases(BLOCKWISE):
        if "A" not in case.arrays:
            continue
        for name in ("cublas_f32", "cublas_bf16", "triton_f32", "triton_bf16"):
            params.append(pytest.param(case, name, id=f"{case.key}/{name}"))
    return params


@pytest.mark.parametrize("case,name", _gemm_params())
def test_blockwise_gemms_bit_exact(case, name):
    od = "float32" if name.endswith("f32") else "bfloat16"
    if name.startswith("cublas"):
        got = cublas_blockwise(case, od)
    else:
        got = KERNELS["torchao-triton-blockwise"](case.a, case.b, scale_a=case.arrays["scale_a"],
                                                  scale_b=case.arrays["scale_b"], out_dtype=od)
    want = case.arrays[name]
    bad = np.argwhere(_u(got, od) != want)
    assert bad.size == 0, f"{len(bad)} of {want.size} differ, first at {tuple(bad[0])}"


@pytest.mark.parametrize("key,wrong", [
    ("gemm/128x128x8192/normal", {"slices": 1}),                 # unsplit
    ("gemm/128x128x8192/normal", {"align": 128}),                # 2816-long slices
    ("gemm/128x128x10240/normal", {"align": 128}),               # 3456, not 3584
    ("gemm/256x256x32768/normal", {"align": 256}),               # 11008, not 11264
    ("gemm/128x128x16384/wgrad", {"align": 512}),                # 3072, not 2816
    ("gemm/256x256x32768/normal", {"slices": 11}),               # the 128 x 128 count
])
def test_the_captured_split_is_the_only_one_that_fits(key, wrong):
    case = {c.key: c for c in load_cases(BLOCKWISE)}[key]
    assert np.array_equal(_u(cublas_blockwise(case, "float32"), "float32"),
                          case.arrays["cublas_f32"])
    assert not np.array_equal(_u(cublas_blockwise(case, "float32", **wrong), "float32"),
                              case.arrays["cublas_f32"])


def test_triton_and_cublas_differ_where_the_epilogues_do():
    """Forward: cuBLASLt's fma(p, fl(sa * sb), acc) and Triton's fma(fl(p * sa), sb, acc)
    disagree on about half the outputs; Wgrad (128x1): both are fma(fl(p * sa), sb, acc),
    and the H200 gave the same bits (every whole Wgrad case of the capture)."""
    cases = {c.key: c for c in load_cases(BLOCKWISE)}
    fwd, wgrad = cases["gemm/128x128x512/normal"], cases["gemm/128x128x512/wgrad_outlier"]
    assert np.count_nonzero(fwd.arrays["cublas_f32"] != fwd.arrays["triton_f32"]) > 1000
    np.testing.assert_array_equal(wgrad.arrays["cublas_f32"], wgrad.arrays["triton_f32"])


def test_torchao_blockwise_casts_of_the_gemm_inputs():
    z = np.load(BLOCKWISE)
    p, q = "gemm/128x128x512/normal/", "quant/128x128x512/normal/"
    x, w = z[q + "x"].view(ml_dtypes.bfloat16), z[q + "w"].view(ml_dtypes.bfloat16)
    ca, sa = quantize(x, "e4m3", block=(1, 128), convention="torchao")
    cw, sw = quantize(w, "e4m3", block=(128, 128), convention="torchao")
    np.testing.assert_array_equal(ca, z[p + "A"])
    np.testing.assert_array_equal(sa.view(np.uint32), z[p + "scale_a"].view(np.uint32))
    np.testing.assert_array_equal(cw.T, z[p + "B"])
    np.testing.assert_array_equal(sw.T.view(np.uint32), z[p + "scale_b"].view(np.uint32))


_CAST_BLOCKS = {"blockwise_1x128": ((1, 128), False, "torchao"),
                "blockwise_128x1": ((128, 1), False, "torchao"),
                "blockwise_1x128_t": ((1, 128), True, "torchao"),
                "blockwise_128x128": ((128, 128), False, "torchao"),
                "blockwise_128x128_t": ((128, 128), True, "torchao"),
                "deepgemm_1x128": ((1, 128), False, "deepgemm"),
                "deepgemm_128x128": ((128, 128), False, "deepgemm")}


@pytest.mark.parametrize("op", list(_CAST_BLOCKS))
def test_blockwise_casts_of_an_edge_block(op):
    """Zero, subnormal-only, near-bf16-max and tiny 128-blocks, and a -0.0 row."""
    z = np.load(STACKS)
    p = "cast/edge_256x384/"
    x = z[p + "x"].view(ml_dtypes.bfloat16)
    block, transpose, conv = _CAST_BLOCKS[op]
    codes, scales = quantize(x.T.copy() if transpose else x, "e4m3", block=block,
                             convention=conv)
    np.testing.assert_array_equal(codes, z[p + op + "_codes"])
    np.testing.assert_array_equal(scales.view(np.uint32), z[p + op + "_scale"].view(np.uint32))


@pytest.mark.parametrize("key", ["128x7168x18432/normal", "128x256x1536/normal"])
def test_deepgemm_gemm_bit_exact(key):
    """DeepGEMM's own kernel (BLOCK_N = 56 at N = 7168, K = 18432: two scale_b columns per
    tile; BLOCK_N = 16 at 128 x 256 x 1536)."""
    case = {c.key: c for c in load_cases(STACKS)}[key]
    got = KERNELS["deepgemm"](case.a, case.b, scale_a=case.arrays["scale_a"],
                              scale_b=case.arrays["scale_b"], out_dtype="bfloat16")
    np.testing.assert_array_equal(_u(got, "bfloat16"), case.arrays["out"])


# --- the full H200 files, where they are (FP8SIM_H200_CAPTURES=<folder of h200_*.npz>) --

FULL = Path(os.environ.get("FP8SIM_H200_CAPTURES", "/nonexistent"))
GEMM_FILES = ["h200_blockwise.npz", "h200_blockwise_long.npz", "h200_blockwise_ds.npz",
              "h200_blockwise_sweep.npz"]


@pytest.mark.slow
@pytest.mark.parametrize("name", GEMM_FILES)
def test_full_h200_blockwise_files(name):
    path = FULL / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    for case in load_cases(path):
        if "A" not in case.arrays:
            continue
        for out in ("cublas_f32", "cublas_bf16", "triton_f32", "triton_bf16"):
            od = "float32" if out.endswith("f32") else "bfloat16"
            if out.startswith("cublas"):
                got = cublas_blockwise(case, od)
            else:
                got = KERNELS["torchao-triton-blockwise"](
                    case.a, case.b, scale_a=case.arrays["scale_a"],
                    scale_b=case.arrays["scale_b"], out_dtype=od)
            assert np.array_equal(_u(got, od), case.arrays[out]), f"{case.key}/{out}"


@pytest.mark.slow
def test_full_h200_deepgemm_file():
    path = FULL / "h200_deepgemm.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    for case in load_cases(path):
        if "A" in case.arrays:
            got = KERNELS["deepgemm"](case.a, case.b, scale_a=case.arrays["scale_a"],
                                      scale_b=case.arrays["scale_b"], out_dtype="bfloat16")
            assert np.array_equal(_u(got, "bfloat16"), case.arrays["out"]), case.key
