"""The H200 real-stack captures (issue 10) and the capture groups that write them.

tests/data/h200_blockwise.npz and tests/data/h200_stacks.npz are a compact part of what
`fp8sim capture --group blockwise|blockwise-long|blockwise-ds|casts|deepgemm` wrote on an
NVIDIA H200 (driver 580.159.04, torch 2.11.0+cu130, CUDA 13.0, cuBLASLt 13.1, Triton 3.6.0,
torchao 0.18.0, DeepGEMM fcd1dcd + CUTLASS eefa171), cropped by
scripts/make_h200_subset.py: torchao's forward (1x128 x 128x128) and Wgrad (1x128 x 128x1)
GEMMs through cuBLASLt and Triton with their bf16 inputs, cuBLASLt's split-K cases
(M = N = 128, K = 8192 and 10240 forward, 16384 Wgrad; 256 x 256 at K = 32768),
DeepSeek-V3 shapes (18432 x 7168 and 7168 x 2048 at M = 4096), the blockwise casts of an
edge-case block and DeepGEMM's own GEMM (BLOCK_N = 56 at 128 x 7168 x 18432). These tests
check the files' structure and the capture groups' plumbing.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from fp8sim.capture import run as cap
from fp8sim.capture.cases import GROUPS, build_cases
from fp8sim.capture.golden import (
    CAST_OPS,
    STACK_ARRAYS,
    check_stack_file,
    load_cases,
    stack_array_doc,
)
from fp8sim.capture.saver import Saver  # no torch needed
from fp8sim.capture.stacks import STACK_GROUPS
from fp8sim.cli.capture import capture_cmd

DATA = Path(__file__).resolve().parent / "data"
FILES = [DATA / "h200_blockwise.npz", DATA / "h200_stacks.npz"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_committed_h200_files_are_well_formed(path):
    assert sum(f.stat().st_size for f in FILES) < 1_500_000
    assert check_stack_file(path) == []


def test_committed_h200_files_hold_what_the_docstring_says():
    with np.load(FILES[0]) as z:
        env = json.loads(str(z["env"]))
        keys = {k.rsplit("/", 1)[0] for k in z.files if "/" in k}
        split = json.loads(str(z["gemm/128x128x8192/normal/meta"]))
    assert env["gpu"] == "NVIDIA H200" and env["torchao"] == "0.18.0"
    assert env["torch"].startswith("2.11") and env["cuda"] == "13.0"
    assert {"gemm/128x128x512/normal", "quant/128x128x512/normal",
            "gemm/128x128x512/wgrad_outlier", "gemm/128x128x8192/normal",
            "gemm/128x128x16384/wgrad", "gemm/128x128x10240/normal",
            "gemm/256x256x32768/normal", "gemm/4096x18432x7168/normal",
            "gemm/4096x7168x2048/normal"} <= keys
    assert split["shape"] == [128, 128, 8192] and split["kind"] == "fwd"
    with np.load(FILES[1]) as z:
        ops = {k.rsplit("/", 1)[1][: -len("_codes")] for k in z.files if k.endswith("_codes")}
        dg = json.loads(str(z["128x7168x18432/normal/meta"]))
    assert ops == {"blockwise_1x128", "blockwise_128x1", "blockwise_1x128_t",
                   "blockwise_128x128", "blockwise_128x128_t", "deepgemm_1x128",
                   "deepgemm_128x128"}
    assert dg["config"]["block_n"] == 56


def test_cropped_cases_load_as_gemm_cases_with_their_full_shape():
    cases = {c.key: c for c in load_cases(FILES[0])}
    c = cases["gemm/4096x18432x7168/normal"]
    assert (c.a_format, c.b_format) == ("e4m3", "e4m3")
    assert c.shape == (4096, 18432, 7168)
    assert c.a.shape == (2, 7168) and c.b.shape == (7168, 8)
    assert set(c.outputs) == {"cublas_f32", "cublas_bf16", "triton_f32", "triton_bf16"}
    w = cases["gemm/128x128x16384/wgrad"]
    assert w.arrays["scale_b"].shape == (128, 8)  # 128x1: one scale per kept column


def _mutate(tmp_path, src: Path, change) -> Path:
    """A copy of `src` with `change(arrays)` applied."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    out = tmp_path / src.name
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("change,expect", [
    (lambda d: d.__setitem__("gemm/128x128x8192/normal/scale_b",
                             np.ones((64, 2), np.float32)), "scale_b"),
    (lambda d: d.__setitem__("gemm/128x128x512/normal/junk", np.zeros(1)), "not documented"),
    (lambda d: d.__setitem__("gemm/128x128x16384/wgrad/rows", np.array([7, 0])), "increasing"),
    (lambda d: d.__setitem__("gemm/128x128x512/normal/cublas_f32",
                             d["gemm/128x128x512/normal/cublas_f32"].view(np.float32)),
     "uint32"),
    (lambda d: d["gemm/4096x7168x2048/normal/A"].__setitem__((0, 0), 0x7F), "NaN"),
    (lambda d: d.pop("gemm/4096x7168x2048/normal/cols"), "together"),
    (lambda d: d.pop("env"), "env"),
])
def test_the_structure_check_catches_broken_files(tmp_path, change, expect):
    problems = check_stack_file(_mutate(tmp_path, FILES[0], change))
    assert problems and any(expect in p for p in problems), problems


def test_every_documented_cast_name_resolves():
    for op in CAST_OPS:
        assert stack_array_doc(f"{op}_codes").endswith("(uint8 codes)")
    assert stack_array_doc("rowwise_e5m2_pow2_scale").endswith("(float32 scale)")
    assert stack_array_doc("nonsense_codes") is None
    assert {"A", "B", "scale_a", "scale_b", "cublas_f32", "triton_bf16", "out", "rows",
            "cols", "orig_shape", "env"} <= set(STACK_ARRAYS)


def test_stack_groups_are_capture_groups_without_numpy_inputs():
    assert set(STACK_GROUPS) == {"blockwise", "blockwise-long", "blockwise-ds", "casts",
                                 "layers", "deepgemm"}
    for name, fam in STACK_GROUPS.items():
        assert name in GROUPS and build_cases(name) == []
        assert fam.limit_mib <= 15.5
    assert sum(f.limit_mib for f in STACK_GROUPS.values()) < 64  # what the device returns


def test_every_stack_group_names_a_runner_that_exists():
    """The registry's ``module.function`` of each group is defined there (read without
    importing: the stack modules need torch)."""
    import ast

    import fp8sim.capture.stacks as stacks
    folder = Path(stacks.__file__).parent
    for name, fam in STACK_GROUPS.items():
        module, function = fam.runner.split(".")
        tree = ast.parse((folder / f"{module}.py").read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert function in defined, (name, fam.runner)


def test_stacks_available_names_what_is_missing(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n in ("torchao", "deep_gemm") else real(n, *a))
    assert "torchao" in cap.stacks_available("casts")
    why = cap.stacks_available("deepgemm")
    assert why.startswith("deepgemm: not captured") and "deep_gemm" in why


def test_capture_cli_takes_the_stack_groups_and_exits_0_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(cap, "gpu_available", lambda: False)
    res = CliRunner().invoke(capture_cmd, ["--out", str(tmp_path), "--group", "blockwise",
                                           "--group", "deepgemm"])
    assert res.exit_code == 0 and res.output.strip() == cap.NO_GPU_MESSAGE


# ---------------------------------------------------------------- plumbing on a CPU

def _fake_tao():
    """CPU stand-ins for torchao's kernels: the right shapes, strides and dtypes only."""
    torch = pytest.importorskip("torch")
    e4 = torch.float8_e4m3fn

    def cm(t):  # a column-major copy
        return t.t().contiguous().t()

    def lhs(x, bs=128):
        return x.float().to(e4), cm(torch.full((x.shape[0], x.shape[1] // 128), 0.5))

    def rhs(x, bs=128):
        return cm(x.float().to(e4)), torch.full((-(-x.shape[0] // 128), x.shape[1]), 0.25)

    def tlhs(x, bs=128):
        return (x.t().contiguous().float().to(e4),
                cm(torch.full((x.shape[1], x.shape[0] // 128), 0.5)))

    def wtrhs(x, block_size=128):
        return (cm(x.t().contiguous().float().to(e4)),
                cm(torch.full((x.shape[1] // 128, x.shape[0] // 128), 2.0)))

    def mm(a, b, *args, out_dtype=torch.float32):
        return (a.float() @ b.float()).to(out_dtype)

    K = SimpleNamespace(
        triton_fp8_blockwise_act_quant_lhs=lhs, triton_fp8_blockwise_act_quant_rhs=rhs,
        triton_fp8_blockwise_act_quant_transposed_lhs=tlhs,
        triton_fp8_blockwise_weight_quant_transposed_rhs=wtrhs,
        triton_fp8_gemm_1x128_128x128=mm, triton_fp8_gemm_1x128_128x1=mm,
        BLOCKWISE_1X128_SCALING_TYPE=4, BLOCKWISE_128X128_SCALING_TYPE=5)
    L = SimpleNamespace(_scaled_mm=lambda a, b, sa, ra, sb, rb, od: mm(a, b, out_dtype=od))
    return {"K": K, "L": L, "pinned": {"gemm": "fake"}}


def test_stack_capture_plumbing_on_a_cpu(tmp_path, monkeypatch):
    """gemm_case and Saver end to end (whole, cropped, Wgrad) with CPU stand-ins: the file
    passes the structure check the H200 files pass."""
    tao = _fake_tao()
    from fp8sim.capture.stacks import common, torchao_blockwise
    monkeypatch.setattr(common, "DEVICE", "cpu")
    lines: list[str] = []
    saver = Saver(tmp_path / "f.npz", {"torch": "x", "cuda": "y", "gpu": "cpu"}, 2**24,
                  lines.append)
    torchao_blockwise._cases(saver, tao, [("fwd", 128, 256, 512, "normal", 1, True),
                                          ("wgrad", 128, 256, 512, "outlier", 2, True)])
    torchao_blockwise._cases(saver, tao, [("fwd", 300, 384, 1024, "wide", 3),
                                          ("wgrad", 256, 384, 512, "normal", 4)], crop=True,
                             nrows=8, step=4)
    path = saver.write()
    assert not any(line.startswith("FAILED") for line in lines), lines
    assert check_stack_file(path) == []
    cases = {c.key: c for c in load_cases(path)}
    crop = cases["gemm/300x384x1024/wide"]
    assert crop.shape == (300, 384, 1024) and crop.a.shape == (8, 1024)
    assert crop.b.shape == (1024, 32) and crop.arrays["rows"][[0, -1]].tolist() == [0, 299]
    assert set(cases["quant/128x256x512/wgrad_outlier"].arrays) == {"gy", "x"}


def test_run_family_dispatches_through_the_registry(tmp_path, monkeypatch):
    """run_family runs the function STACK_GROUPS names and keeps what a failure leaves: the
    deepgemm group without DeepGEMM writes a file with its build error and failure."""
    pytest.importorskip("torch")
    from fp8sim.capture.stacks import runner
    monkeypatch.setattr(runner, "env_info", lambda: {"gpu": "none"})
    lines: list[str] = []
    path = runner.run_family("deepgemm", tmp_path / "dg.npz", log=lines.append)
    with np.load(path) as z:
        assert json.loads(str(z["failures"]))[0].startswith("import deep_gemm: ")
        assert "build_error" in z.files and json.loads(str(z["env"])) == {"gpu": "none"}
    with pytest.raises(ValueError, match="name: expected one of blockwise"):
        runner.run_family("nonsense", tmp_path / "x.npz")


def test_saver_drops_the_last_cases_to_stay_under_its_limit(tmp_path):
    rng = np.random.default_rng(0)
    saver = Saver(tmp_path / "f.npz", {}, 300_000, lambda s: None)
    for i in range(6):
        saver.add(f"c{i}", {"A": rng.integers(0, 256, (256, 256), dtype=np.uint8)})
    path = saver.write()
    assert path.stat().st_size <= 300_000
    with np.load(path) as z:
        failures = json.loads(str(z["failures"]))
        kept = {k.split("/")[0] for k in z.files if "/" in k}
    assert kept == {f"c{i}" for i in range(len(kept))} and 0 < len(kept) < 6
    assert failures == [f"dropped c{i} (file over 300000 bytes)"
                        for i in range(5, len(kept) - 1, -1)]
    assert not list(tmp_path.glob("*.tmp.npz"))

