"""Bad input to the engine, the kernels, the studies and the CLI: one clear error naming the
argument (found by an audit that fed every entry point wrong shapes, types and values)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import assert_usage_error, invoke, run

import fp8sim
from fp8sim.analysis.distributed import parse_scheduler
from fp8sim.analysis.studies import gemm_stats
from fp8sim.engine.kernel import Kernel
from fp8sim.engine.mma import PRESETS
from fp8sim.engine.split_choice import split_choice, splits

A = np.full((4, 256), 0x38, np.uint8)
B = np.full((256, 128), 0x38, np.uint8)
ONE = np.float32(1)


def test_an_unknown_kernel_name_lists_the_names():
    with pytest.raises(KeyError, match="kernel: unknown name 'nope'; expected one of triton,"):
        fp8sim.KERNELS["nope"]


@pytest.mark.parametrize("name", ["triton", "deepgemm", "torchao-triton-blockwise"])
def test_slices_for_a_kernel_that_never_splits_k_is_refused(name):
    with pytest.raises(ValueError, match=f"^slices: kernel {name} never splits K"):
        fp8sim.KERNELS[name].slices_for(A, B, slices=2)
    with pytest.raises(ValueError, match=f"^slices: kernel {name} never splits K"):
        split_choice(name, 8, 16, 256, slices=3)


def test_slices_report_the_slices_k_is_cut_in():
    """K = 256 in 3 (or 100000) slices of a multiple of 128 is 2 slices: the count the
    kernel runs, and what split_choice and the CLI summary say."""
    two = fp8sim.KERNELS["cublaslt-fast"](A, B, scale_a=ONE, scale_b=ONE, slices=2)
    for asked in (3, 100000):
        got = fp8sim.KERNELS["cublaslt-fast"](A, B, scale_a=ONE, scale_b=ONE, slices=asked)
        assert np.array_equal(got.view(np.uint32), two.view(np.uint32))
        assert split_choice("cublaslt-fast", 4, 128, 256, slices=asked) == (2, "user")
    r = run("gemm", "--kernel", "cublaslt-fast", "--m", "8", "--n", "8", "--k", "256",
            "--slices", "100000", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["slices"] == 2


@pytest.mark.parametrize("kw, match", [({"out_dtype": "int8"}, "^out_dtype: expected"),
                                       ({"family": "bogus"}, "^family: expected one of")])
def test_splits_checks_every_argument_even_for_kernels_that_never_split(kw, match):
    with pytest.raises(ValueError, match=match):
        splits("triton", 128, 4096, **kw)


def test_a_bad_out_dtype_is_named_before_the_split_lookup():
    sa, sb = np.ones((4, 2), np.float32), np.ones((2, 1), np.float32)
    with pytest.raises(ValueError, match="^out_dtype: expected one of"):
        fp8sim.KERNELS["cublaslt-blockwise"](A, B, scale_a=sa, scale_b=sb, out_dtype="bogus")
    with pytest.raises(ValueError, match="^out_dtype: expected one of"):
        Kernel(name="x", out_dtype="bogus")(A, B)


@pytest.mark.parametrize("change, error, match", [
    ({"terms": 10**9}, ValueError, r"^terms: expected an int in 1\.\.4096"),
    ({"terms": 0}, ValueError, "^terms:"),
    ({"align_rounding": "bogus"}, ValueError, "^align_rounding: expected a RoundMode"),
    ({"result_rounding": 9}, ValueError, "^result_rounding: expected a RoundMode"),
    ({"sequential": "yes"}, TypeError, "^sequential: expected True or False"),
])
def test_an_mma_step_no_hardware_has_is_refused_at_construction(change, error, match):
    with pytest.raises(error, match=match):
        PRESETS["hopper"].replace(**change)


def test_ragged_scales_are_named():
    with pytest.raises(ValueError, match="^scale_a: expected an array of scales"):
        fp8sim.gemm(A, B, scale_a=[[1.0], [1.0, 2.0]], scale_b=np.ones((1, 128), np.float32))


@pytest.mark.parametrize("recipe", ["torchao-rowwise", "deepseek-v3"])
def test_linear_names_its_own_arguments_for_nan(recipe):
    x = np.ones((4, 128), np.float32)
    w = np.ones((8, 128), np.float32)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="^x: contains NaN/Inf"):
        fp8sim.linear(x, w, recipe=recipe)
    w[1, 1] = np.inf
    with pytest.raises(ValueError, match="^w: contains NaN/Inf"):
        fp8sim.linear(np.ones((4, 128), np.float32), w, recipe=recipe)


@pytest.mark.parametrize("a, b, kw, error, match", [
    (A[0], B, {}, ValueError, r"^a: expected a 2-D \(M, K\) array"),
    (A[None], B, {}, ValueError, "^a: expected a 2-D"),
    (None, B, {}, TypeError, "^a: expected an array"),
    (A, B[:3], {}, ValueError, "^b: expected shape"),
    (A, B, {"keep": "x"}, TypeError, "^keep: expected a dict"),
])
def test_gemm_stats_names_bad_operands(a, b, kw, error, match):
    with pytest.raises(error, match=match):
        gemm_stats(a, b, **kw)


@pytest.mark.parametrize("address", ["bogus", "tcp://", "host:port"])
def test_scheduler_addresses_need_a_port(address):
    with pytest.raises(ValueError, match="^scheduler: expected 'local:N', a scheduler address"):
        parse_scheduler(address)


def test_cli_sweep_refuses_a_bad_scheduler_and_an_empty_k_in_one_line(tmp_path):
    assert_usage_error(invoke("sweep", "--k-values", "128", "--scheduler", "bogus"))
    pytest.importorskip("distributed")  # a missing scheduler file: dask would wait for it
    r = invoke("sweep", "--k-values", "128", "--scheduler", str(tmp_path / "none.json"))
    assert_usage_error(r)
    assert "no such scheduler file" in r.stderr
    assert_usage_error(invoke("sweep", "--k-values", "128,,256"))


@pytest.mark.parametrize("command", ["identify", "verify"])
def test_cli_refuses_a_npy_or_text_file_for_a_capture_in_one_line(tmp_path, command):
    np.save(tmp_path / "A.npy", A)
    (tmp_path / "notes.txt").write_text("not numpy")
    for name, what in (("A.npy", "a single array (.npy)"), ("notes.txt", "not a numpy file")):
        r = invoke(command, str(tmp_path / name))
        assert r.exit_code == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{name} is {what}, not an .npz archive" in lines[0], r.stderr
        assert "Traceback" not in r.stderr + r.output


def test_cli_gemm_refuses_float64_beyond_float32(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.full((4, 32), 1e300))
    np.save(b, np.ones((32, 4)))
    r = invoke("gemm", "--a", str(a), "--b", str(b))
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "beyond float32's range" in lines[0], r.stderr


def test_identify_and_fp8_matmul_refuse_what_cannot_fit_before_allocating():
    from fp8sim import _memory
    from fp8sim.analysis.identify import identify
    from fp8sim.analysis.matmul import fp8_matmul

    big = (10**6, 10**6)
    codes = np.broadcast_to(np.uint8(0x38), big)
    with pytest.raises(_memory.InsufficientMemory, match=r"^identify: M=1000000 N=1000000 "):
        identify(codes, codes, np.broadcast_to(np.float32(1), big))
    x = np.broadcast_to(np.float32(1), (10**6, 4096))
    with pytest.raises(_memory.InsufficientMemory, match=r"^fp8_matmul: M=1000000 N=1000000"):
        fp8_matmul(x, x.T)


@pytest.mark.parametrize("name", ["cublaslt", "cublaslt-fast", "torch-rowwise"])
def test_an_empty_output_needs_no_split(name):
    """M = 0 or N = 0: an empty result, as fp8sim.gemm gives, not a split-range refusal."""
    kern = fp8sim.KERNELS[name]
    rows = name == "torch-rowwise"
    for m, n in ((0, 128), (4, 0)):
        sa = np.ones((m, 1), np.float32) if rows else ONE
        sb = np.ones((1, n), np.float32) if rows else ONE
        out = kern(A[:m], B[:, :n], scale_a=sa, scale_b=sb)
        assert out.shape == (m, n)


def test_an_unrecorded_card_is_named_as_such():
    from fp8sim.engine import cublaslt_splits

    if cublaslt_splits.recorded("tensor", "float32", "H200"):
        pytest.skip("the data has an H200 recording")
    with pytest.raises(ValueError, match=r"^gpu: .*recorded on the H100 only, not yet on the "
                                         r"H200 \(.*how to record"):
        fp8sim.splits("cublaslt", 128, 8192, gpu="H200")
    with pytest.raises(ValueError, match=r"^gpu: expected one of 'H100', 'H200', got 'A100'"):
        fp8sim.splits("cublaslt", 128, 8192, gpu="A100")


def test_group_scaling_without_promotion_says_promote_must_be_positive():
    x = np.ones((8, 256), np.float32)
    with pytest.raises(ValueError, match=r"^promote: .*needs promote > 0 .*; got 0"):
        fp8sim.fp8_matmul(x, x.T.copy(), promote=0)


def test_dequantize_names_the_block_the_caller_passed():
    codes, scales = fp8sim.quantize(np.ones((6, 256), np.float32), block=(128, 128))
    with pytest.raises(ValueError, match=r"^scales: expected shape \(1, 2\) for codes \(6, 256\) "
                                         r"and block \(128, 128\), got \(1, 1\)"):
        fp8sim.dequantize(codes, scales[:, :1], block=(128, 128))


def test_a_recipe_checks_its_promotion_when_built_and_identify_its_promotes():
    with pytest.raises(ValueError, match=r"^promote: expected 0 \(never\) or a positive multiple"):
        fp8sim.Recipe(name="x", promote=33)
    with pytest.raises(TypeError, match=r"^promotes: expected an iterable of ints"):
        fp8sim.identify(A, B, np.zeros((4, 128), np.float32), promotes=["128"])
