"""The CLI on the user's own arrays (issue 11's first hour): --a/--b files of codes or floats,
--kernel, scales as numbers or files, --out files written bit for bit, identify on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_error_line, run

import fp8sim

# --------------------------------------------------------------------------- 4. own data

@pytest.fixture()
def own(tmp_path):
    """A user's files: codes, floats, an .npz, group scales; and the folder."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((96, 384), dtype=np.float32)
    w = rng.standard_normal((384, 160), dtype=np.float32)
    a, b = fp8sim.encode(x), fp8sim.encode(w, "e5m2")
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "W.npy", w)
    np.savez(tmp_path / "AB.npz", A=a, B=b)
    ca, sa = fp8sim.quantize(x, "e4m3", block=(1, 128))
    cbt, sbt = fp8sim.quantize(np.ascontiguousarray(w.T), "e4m3", block=(128, 128))
    np.save(tmp_path / "QA.npy", ca)
    np.save(tmp_path / "QB.npy", np.ascontiguousarray(cbt.T))
    np.save(tmp_path / "SA.npy", sa)
    np.save(tmp_path / "SB.npy", np.ascontiguousarray(sbt.T))
    np.save(tmp_path / "B4.npy", fp8sim.encode(w))
    np.save(tmp_path / "RA.npy", np.full((96, 1), 0.5, np.float32))
    np.save(tmp_path / "RB.npy", np.linspace(1, 2, 160, dtype=np.float32)[None, :])
    return tmp_path


def _out_bits(path: Path) -> np.ndarray:
    d = np.load(path)
    return d.view(np.uint32) if d.dtype.itemsize == 4 else d.view(np.uint16)


def test_gemm_on_my_codes_writes_the_output_bit_for_bit(own):
    r = run("gemm", "--a", str(own / "A.npy"), "--b", str(own / "B.npy"), "--b-format", "e5m2",
            "--promote", "128", "--out", str(own / "out" / "D.npy"), "--json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.stdout)
    a, b = np.load(own / "A.npy"), np.load(own / "B.npy")
    want = fp8sim.gemm(a, b, b_format="e5m2", promote=128)
    assert np.array_equal(_out_bits(own / "out" / "D.npy"), want.view(np.uint32))
    assert (row["m"], row["n"], row["k"], row["b_format"]) == (96, 160, 384, "e5m2")
    from fp8sim.analysis.stats import error_stats, exact_product
    exact = exact_product(fp8sim.decode(a), fp8sim.decode(b, "e5m2"))
    assert row["max_rel_error"] == error_stats(want, exact)["max_rel_error"]
    for key in ("mean_rel_error", "fro_rel_error", "seconds", "a_format", "promote"):
        assert key in row


def test_npz_and_float_inputs(own):
    r = run("gemm", "--a", str(own / "AB.npz"), "--b", str(own / "AB.npz:B"), "--b-format",
            "e5m2", "--out", str(own / "D1.npy"))
    assert r.exit_code == 0, r.stderr
    want = fp8sim.gemm(np.load(own / "A.npy"), np.load(own / "B.npy"), b_format="e5m2")
    assert np.array_equal(_out_bits(own / "D1.npy"), want.view(np.uint32))
    # floats at unit scale: encoded round to nearest even, saturating
    r = run("gemm", "--a", str(own / "X.npy"), "--b", str(own / "W.npy"), "--out",
            str(own / "D2.npy"), "--json")
    assert r.exit_code == 0, r.stderr
    x, w = np.load(own / "X.npy"), np.load(own / "W.npy")
    want = fp8sim.gemm(fp8sim.encode(x, saturate=True), fp8sim.encode(w, saturate=True))
    assert np.array_equal(_out_bits(own / "D2.npy"), want.view(np.uint32))
    assert "total_fro_rel_error" in json.loads(r.stdout)
    # floats with per-tensor scaling, through cuBLASLt's tensor epilogue
    r = run("gemm", "--a", str(own / "X.npy"), "--b", str(own / "W.npy"), "--scale", "tensor",
            "--kernel", "cublaslt", "--out", str(own / "D3.npy"))
    assert r.exit_code == 0, r.stderr
    qa, sa = fp8sim.quantize(x, "e4m3", block=x.shape)
    qb, sb = fp8sim.quantize(w, "e4m3", block=w.shape)
    want = fp8sim.KERNELS["cublaslt"](qa, qb, scale_a=sa.reshape(()), scale_b=sb.reshape(()))
    assert np.array_equal(_out_bits(own / "D3.npy"), want.view(np.uint32))


@pytest.mark.parametrize("name", sorted(fp8sim.KERNELS))
def test_every_named_kernel_runs_on_my_data(own, name):
    """--kernel takes every key of fp8sim.KERNELS; scales come from numbers or files."""
    kern = fp8sim.KERNELS[name]
    label = kern.scaling_label
    files = ("A.npy", "B4.npy")
    if label == "none":
        args, kw = [], {}
    elif label == "tensor":
        args = ["--scale-a", "0.5", "--scale-b", "2"]
        kw = {"scale_a": np.float32(0.5), "scale_b": np.float32(2)}
    elif label == "row":
        args = ["--scale-a", str(own / "RA.npy"), "--scale-b", str(own / "RB.npy")]
        kw = {"scale_a": np.load(own / "RA.npy"), "scale_b": np.load(own / "RB.npy")}
    else:  # scales per K group: 1x128 on A, 128x128 on B
        files = ("QA.npy", "QB.npy")
        args = ["--scale-a", str(own / "SA.npy"), "--scale-b", str(own / "SB.npy")]
        kw = {"scale_a": np.load(own / "SA.npy"), "scale_b": np.load(own / "SB.npy")}
    r = run("gemm", "--a", str(own / files[0]), "--b", str(own / files[1]), "--kernel", name,
            *args, "--out", str(own / f"{name}.npy"), "--json")
    assert r.exit_code == 0, r.stderr
    want = kern(np.load(own / files[0]), np.load(own / files[1]), **kw)
    bits = np.uint32 if want.dtype.itemsize == 4 else np.uint16
    assert np.array_equal(_out_bits(own / f"{name}.npy"), want.view(bits))
    row = json.loads(r.stdout)
    assert row["kernel"] == name and row["out_dtype"] == kern.out_dtype


def test_a_kernel_added_later_is_found(own, monkeypatch):
    from fp8sim.engine.kernel import KERNELS, Kernel

    mine = Kernel(name="mine-promote64", promote=64, description="a kernel registered later")
    monkeypatch.setitem(KERNELS, mine.name, mine)
    r = run("gemm", "--a", str(own / "A.npy"), "--b", str(own / "A.npy"), "--kernel",
            "mine-promote64", "--m", "1", "--json")
    assert r.exit_code == 2  # A (96, 384) x A: shapes do not chain; the kernel was found
    assert "--b" in r.stderr
    np.save(own / "At.npy", np.ascontiguousarray(np.load(own / "A.npy").T))
    r = run("gemm", "--a", str(own / "A.npy"), "--b", str(own / "At.npy"), "--kernel",
            "mine-promote64", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["promote"] == 64


def test_out_npz_is_a_case_identify_reads(own):
    r = run("gemm", "--m", "64", "--n", "64", "--k", "512", "--promote", "64", "--out",
            str(own / "case.npz"))
    assert r.exit_code == 0, r.stderr
    with np.load(own / "case.npz") as z:
        assert {"A", "B", "D", "out_dtype"} <= set(z.files)
    r = run("identify", str(own / "case.npz"), "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["promote"] == 64
    np.save(own / "D.npy", np.load(own / "case.npz")["D"])
    np.save(own / "CA.npy", np.load(own / "case.npz")["A"])
    np.save(own / "CB.npy", np.load(own / "case.npz")["B"])
    r = run("identify", "--a", str(own / "CA.npy"), "--b", str(own / "CB.npy"), "--d",
            str(own / "D.npy"), "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["promote"] == 64


def test_bfloat16_output_is_saved_as_its_bits(own):
    np.save(own / "RA.npy", np.full((96, 1), 0.5, np.float32))
    np.save(own / "RB.npy", np.full((1, 96), 3.0, np.float32))
    np.save(own / "At.npy", np.ascontiguousarray(np.load(own / "A.npy").T))
    r = run("gemm", "--a", str(own / "A.npy"), "--b", str(own / "At.npy"), "--kernel",
            "torch-rowwise", "--scale-a", str(own / "RA.npy"), "--scale-b", str(own / "RB.npy"),
            "--out", str(own / "D.npy"))
    assert r.exit_code == 0, r.stderr
    d = np.load(own / "D.npy")
    assert d.dtype == np.uint16
    want = fp8sim.KERNELS["torch-rowwise"](np.load(own / "A.npy"), np.load(own / "At.npy"),
                                           scale_a=np.load(own / "RA.npy"),
                                           scale_b=np.load(own / "RB.npy"))
    assert np.array_equal(d, want.view(np.uint16))


@pytest.mark.parametrize("args, option", [
    (["--a", "A.npy"], "--b"),
    (["--a", "nope.npy", "--b", "B.npy"], "--a"),
    (["--a", "A.npy", "--b", "A.npy"], "--b"),
    (["--a", "AB.npz:Z", "--b", "B.npy"], "--a"),
    (["--a", "A.npy", "--b", "B.npy", "--kernel", "nosuch"], "--kernel"),
    (["--a", "QA.npy", "--b", "QB.npy", "--kernel", "deepgemm"], "--scale-a"),
    (["--a", "QA.npy", "--b", "QB.npy", "--kernel", "deepgemm", "--scale-a", "SB.npy",
      "--scale-b", "SB.npy"], "--scale-a"),
    (["--a", "A.npy", "--b", "B.npy", "--recipe", "deepseek-v3"], "--a"),
    (["--a", "A.npy", "--b", "B.npy", "--out", "D.txt"], "--out"),
    (["--a", "X.npy", "--b", "W.npy", "--scale", "tensor", "--kernel", "deepgemm"], "--scale"),
])
def test_wrong_own_data_is_one_line_naming_the_option(own, args, option, monkeypatch):
    monkeypatch.chdir(own)
    r = run("gemm", *args)
    assert r.exit_code == 2
    line = one_error_line(r.stderr)
    assert line.startswith(f"Error: {option}") or f"'{option}'" in line, line
