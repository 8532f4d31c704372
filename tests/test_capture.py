"""fp8sim.capture and `fp8sim capture` / `fp8sim verify`, and the H100 capture they produced.

tests/data/h100_capture.npz is a subset of what `fp8sim capture` wrote on an NVIDIA
H100 80GB HBM3 (driver 580.159.04, torch 2.11.0+cu130, triton 3.6.0, CUDA 13.0) on
2026-11-25, seed 7: every output of the kept cases, unchanged. Kept: K = 100 (all four
format pairs) and 40, 48 (K not a multiple of 32); fp16 outputs past 65504
(e4m3_e5m2/codesf16); NaN/Inf mixes (naninf, K = 64); C = -0.0 / +0.0 with all-zero
and exactly cancelling products (negzero*); C near FLT_MAX (cmax); overflowing scales
(overflow, alphainf, edge*); torch and __nv_cvt_float_to_fp8 conversions (x, torch_*,
cuda_*); and rowpick0..2: 4 x 4 blocks (rows, columns, row scales and the row-wise
output cut from M208N144K1008 and M256N384K1024 captures; `meta` says where from) around
the three elements whose row-wise BF16 output shows the order of the scale multiplies.
Every output is replayed bit for bit. Three behaviours seen here first are now part of
the model: BF16 NaN 0x7FFF, +0 from C = -0 with zero products, and the row-wise
epilogue's order (scale_b first).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import fp8sim
from fp8sim.capture import run, verify
from fp8sim.capture.cases import build_cases, conversion_inputs
from fp8sim.capture.golden import as_bits, load_cases, output_kernel, output_spec
from fp8sim.cli.capture import capture_cmd, verify_cmd
from fp8sim.engine.kernel import KERNELS

DATA = Path(__file__).resolve().parent / "data"

H100 = DATA / "h100_capture.npz"

def _h100_outputs() -> list:
    params = []
    for case in load_cases(H100):
        if "A" not in case.arrays:
            continue
        for name in case.outputs:
            if output_spec(case, name) is None:
                continue
            params.append(pytest.param(case, name, id=f"{case.key}/{name}"))
    return params


@pytest.mark.parametrize("case,name", _h100_outputs())
def test_h100_capture_replays_bit_exact(case, name):
    """Each output through the public kernel of its library (KERNELS["cublaslt-fast"], ...)."""
    kern, kw = output_kernel(case, name)
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing scales on purpose
        got = as_bits(kern(case.a, case.b, **kw))
    want = as_bits(case.arrays[name])
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{len(bad)} of {want.size} differ, first at {tuple(bad[0])}: "
                           f"fp8sim {got[tuple(bad[0])]:#x}, H100 {want[tuple(bad[0])]:#x}")


def test_h100_behaviours_found_by_this_capture():
    """What this capture taught the model, element by element: cuBLASLt writes a BF16 NaN
    as 0x7FFF, and C = -0.0 plus all-zero products gives +0.0."""
    cases = {c.key: c for c in load_cases(H100)}
    c = cases["e4m3_e5m2/naninf/K64"]
    want = as_bits(c.arrays["cublas_fast_bf16"])
    got = as_bits(fp8sim.gemm(c.a, c.b, **output_spec(c, "cublas_fast_bf16")))
    nan = np.isnan(fp8sim.gemm(c.a, c.b, **(output_spec(c, "cublas_fast_bf16")
                                           | {"out_dtype": "float32"})))
    assert nan.any() and (want[nan] == 0x7FFF).all()
    np.testing.assert_array_equal(got, want)
    c = cases["e4m3_e4m3/negzerocneg/K64"]
    assert (np.signbit(c.arrays["C"][:32])).all()  # rows 0-31: C = -0.0, products +-0
    want = as_bits(c.arrays["triton_p0"])
    got = as_bits(fp8sim.gemm(c.a, c.b, **output_spec(c, "triton_p0")))
    assert (want == 0).all() and (got == 0).all()


def test_h100_rowwise_scales_apply_scale_b_first():
    """Every row-wise output of the subset is fl(fl(acc * scale_b[j]) * scale_a[i]) in BF16."""
    import ml_dtypes
    n_rowpick = 0
    for case in load_cases(H100):
        for name in case.outputs:
            if not name.startswith("rowwise"):
                continue
            kw = output_spec(case, name)
            acc = fp8sim.gemm(case.a, case.b, a_format=case.a_format,
                              b_format=case.b_format, promote=kw["promote"])
            with np.errstate(over="ignore", invalid="ignore"):
                d = (acc * case.arrays["row_scale_b"]).astype(np.float32)
                d = (d * case.arrays["row_scale_a"]).astype(np.float32)
            bits = d.astype(ml_dtypes.bfloat16).view(np.uint16).copy()
            bits[np.isnan(d)] = 0x7FFF  # the H100's BF16 NaN
            np.testing.assert_array_equal(bits, as_bits(case.arrays[name]), err_msg=case.key)
            n_rowpick += "/rowpick" in case.key
    assert n_rowpick == 3


def test_h100_conversions_match():
    stats, _ = verify.verify(H100)
    for fam in ("convert_torch", "convert_cuda"):
        assert stats[fam].outputs > 0 and stats[fam].matched == stats[fam].total, fam


def test_capture_without_gpu_says_so_and_exits_0(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "gpu_available", lambda: False)
    res = CliRunner().invoke(capture_cmd, ["--out", str(tmp_path / "cap")])
    assert res.exit_code == 0
    assert res.output == run.NO_GPU_MESSAGE + "\n"
    assert not (tmp_path / "cap").exists()


def _tiny_capture(path, wrong: bool) -> None:
    rng = np.random.default_rng(0)
    a = fp8sim.encode(rng.standard_normal((8, 64)).astype(np.float32), "e4m3")
    b = fp8sim.encode(rng.standard_normal((64, 16)).astype(np.float32), "e5m2")
    d = fp8sim.gemm(a, b, a_format="e4m3", b_format="e5m2", promote=32)
    if wrong:
        d = d.copy()
        d.view(np.uint32)[3, 5] ^= 1
    np.savez(path, **{"e4m3_e5m2/normal/K64/A": a, "e4m3_e5m2/normal/K64/B": b,
                      "e4m3_e5m2/normal/K64/triton_p32": d,
                      "meta": np.array(json.dumps({"device": "none"}))})


def test_verify_reports_a_wrong_output_and_exits_1(tmp_path):
    path = tmp_path / "wrong.npz"
    _tiny_capture(path, wrong=True)
    res = CliRunner().invoke(verify_cmd, [str(path)])
    assert res.exit_code == 1
    assert "MISMATCH: e4m3_e5m2/normal/K64/triton_p32: 127/128" in res.output
    assert "total: 0/1 outputs exact" in res.output


def test_verify_passes_a_right_output(tmp_path):
    path = tmp_path / "right.npz"
    _tiny_capture(path, wrong=False)
    res = CliRunner().invoke(verify_cmd, [str(path)])
    assert res.exit_code == 0, res.output
    assert "triton_p32" in res.output and "total: 1/1 outputs exact" in res.output


@pytest.mark.parametrize("make", ["missing", "not_npz", "empty"])
def test_verify_argument_errors_exit_2_with_one_line(tmp_path, make):
    path = tmp_path / "f.npz"
    if make == "not_npz":
        path.write_text("hello")
    elif make == "empty":
        np.savez(path)
    res = CliRunner().invoke(verify_cmd, [str(path)])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and res.output.startswith("Error: FILE")


def test_capture_unknown_group_exits_2():
    res = CliRunner().invoke(capture_cmd, ["--group", "nope"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1


def test_cases_are_deterministic_and_match_the_h100_inputs():
    """The committed capture's inputs are what build_cases makes for seed 7."""
    want = {c.key: c for c in load_cases(H100)}
    for spec in build_cases("ragged") + build_cases("special"):
        if spec.key in want:
            np.testing.assert_array_equal(spec.a, want[spec.key].a)
            np.testing.assert_array_equal(spec.b, want[spec.key].b)
    np.testing.assert_array_equal(conversion_inputs().view(np.uint32),
                                  np.load(H100)["x"].view(np.uint32))


@pytest.mark.parametrize("name,fam", [("triton_p128", "triton_p128"),
                                      ("triton_scaled_p128", "triton_scaled"),
                                      ("cublas_fast_f16_scaled", "cublas_fast_f16_scaled"),
                                      ("cublas_slow_bf16", "cublas_slow_bf16"),
                                      ("rowwise_fast_bf16", "rowwise_fast_bf16")])
def test_family(name, fam):
    assert verify.family(name) == fam


class _SimulatedGPU:
    """Stands in for fp8sim.capture.kernels: every kernel computed by fp8sim itself."""

    @staticmethod
    def device_name():
        return "simulated"

    @staticmethod
    def triton_gemm(a, b, fa, fb, promote, c=None):
        return fp8sim.gemm(a, b, a_format=fa, b_format=fb, promote=promote, c=c)

    @staticmethod
    def triton_scaled_gemm(a, b, fa, fb, sa, sb, promote=128):
        return KERNELS["deepgemm"](a, b, a_format=fa, b_format=fb, scale_a=sa,
                                   scale_b=np.ascontiguousarray(sb.T))

    @staticmethod
    def scaled_mm(a, b, fa, fb, *, fast, out_dtype, scale_a=1.0, scale_b=1.0):
        if a.shape[1] % 16:
            raise RuntimeError("Expected trailing dimension of mat1 to be divisible by 16")
        sa, sb = np.asarray(scale_a, np.float32), np.asarray(scale_b, np.float32)
        name = ("torch-rowwise" if sa.ndim == 2 else "cublaslt") + ("-fast" if fast else "")
        d = np.asarray(KERNELS[name](a, b, a_format=fa, b_format=fb, scale_a=sa,
                                     scale_b=sb, out_dtype=out_dtype))
        return d if d.dtype == np.float32 else d.view(np.uint16)

    @staticmethod
    def convert_torch(x, fmt):
        return fp8sim.encode(x, fmt)

    @staticmethod
    def convert_cuda(x, fmt, saturate):
        return fp8sim.encode(x, fmt, saturate=saturate)


def test_capture_plumbing_with_a_simulated_gpu(tmp_path):
    """_run_case and the file layout, end to end, with fp8sim standing in for the GPU."""
    arrays = {}
    specs = [s for s in build_cases("special") if s.key.startswith("e4m3_e5m2/")]
    for spec in specs[:4]:
        res, errors = run._run_case(spec, _SimulatedGPU)
        assert errors == []
        assert json.loads(str(res["meta"])) == {"errors": []}
        arrays.update({f"{spec.key}/{n}": v for n, v in res.items()})
    spec = build_cases("ragged")[1]
    assert spec.key == "e4m3_e4m3/normal/K100"
    res, errors = run._run_case(spec, _SimulatedGPU)
    assert len(errors) == 14 and all("divisible by 16" in e for e in errors)  # 12 + row-wise
    arrays.update({f"{spec.key}/{n}": v for n, v in res.items()})
    conv, errors = run._conversions(_SimulatedGPU)
    assert errors == []
    arrays.update(conv)
    path = tmp_path / "sim.npz"
    np.savez_compressed(path, **arrays)
    stats, results = verify.verify(path)
    assert results and all(r.exact for r in results)
    assert {"triton_p0", "triton_p32", "cublas_fast_f16", "rowwise_slow_bf16",
            "convert_cuda"} <= set(stats)


def test_capture_modules_keep_their_rooms():
    """fp8sim/capture/: modules of at most 450 lines, each with a docstring; no private name
    imported from another module; no import from the CLI; torch, triton and cupy imported
    at module level only by the GPU-side modules (kernels.py, the stack modules)."""
    import ast
    root = Path(fp8sim.__file__).parent / "capture"
    gpu_side = {Path("kernels.py")} | {p.relative_to(root) for p in (root / "stacks").glob("*.py")
                                      if p.name != "__init__.py"}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        rel = path.relative_to(root)
        assert len(text.splitlines()) <= 450, rel
        tree = ast.parse(text)
        assert ast.get_docstring(tree), rel
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("fp8sim.cli"), rel
                names = [node.module.split(".")[-1]] + [a.name for a in node.names]
                private = [n for n in names if n.startswith("_") and n != "__future__"]
                assert not private, (rel, node.module, private)
            elif isinstance(node, ast.Import):
                assert not any(a.name.split(".")[-1].startswith("_") for a in node.names), rel
        top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import)
               for a in n.names}
        top |= {n.module.split(".")[0] for n in tree.body
                if isinstance(n, ast.ImportFrom) and n.module}
        if rel not in gpu_side:
            assert not top & {"torch", "triton", "cupy"}, rel
