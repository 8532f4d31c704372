"""`slices` and `gpu` wherever a kernel runs: fp8sim.linear, the split choice and its sources.

Each test compares bits (`.view(np.uint16)`), and checks that the argument reaches the
GEMM it names: a spy on `Kernel.__call__` records what each GEMM of a recipe was given.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import fp8sim
from fp8sim.engine import split_choice as sc
from fp8sim.engine.kernel import KERNELS, Kernel
from fp8sim.recipes.layers import LINEAR_RECIPES, gemm_slices


def _bf16(shape, seed) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(ml_dtypes.bfloat16)


def _bits(a) -> np.ndarray:
    return np.asarray(a).view(np.uint16)


def _layer(m, in_f, out_f, seed=0):
    return _bf16((m, in_f), seed), _bf16((out_f, in_f), seed + 1), _bf16((m, out_f), seed + 2)


@pytest.fixture
def spy(monkeypatch):
    """Records (kernel name, K, slices, gpu) of every kernel call."""
    calls: list[tuple] = []
    real = Kernel.__call__

    def call(self, a, b, *, slices=None, gpu="H100", **kw):
        calls.append((self.name, np.shape(a)[1], slices, gpu))
        return real(self, a, b, slices=slices, gpu=gpu, **kw)

    monkeypatch.setattr(Kernel, "__call__", call)
    return calls


def test_gpu_and_slices_reach_each_gemm_of_the_recipe(spy):
    """A dict names GEMMs by either name; gpu goes to all three."""
    x, w, g = _layer(8, 256, 128)
    fp8sim.linear(x, w, g, recipe="torchao-tensorwise", gpu="H200",
                  slices={"y": 2, "grad_input": 3, "grad_w": 4})
    assert spy == [("cublaslt-fast", 256, 2, "H200"), ("cublaslt", 128, 3, "H200"),
                   ("cublaslt", 8, 4, "H200")]


def test_an_int_sets_only_the_gemms_that_split(spy):
    """torchao-rowwise: the forward (row-wise, never splits) keeps its own run."""
    x, w, g = _layer(8, 256, 128)
    fp8sim.linear(x, w, g, recipe="torchao-rowwise", slices=2)
    assert spy == [("torch-rowwise-fast", 256, None, "H100"), ("cublaslt", 128, 2, "H100"),
                   ("cublaslt", 8, 2, "H100")]


def test_default_is_the_h100_recorded_split(spy):
    """No slices, no gpu: every GEMM asks for the H100's recorded choice (as before)."""
    x, w, g = _layer(8, 256, 128)
    fp8sim.linear(x, w, g, recipe="torchao-blockwise")
    assert [c[2:] for c in spy] == [(None, "H100")] * 3


def test_slices_change_the_bits_as_the_kernel_does():
    """Forward 64 x 8192 -> 64 (K = 8192, a small output): slices=2 is the kernel run with 2
    slices on the recipe's own casts and differs from one chain; the default is the H100's
    recorded 3."""
    x, w, g = _layer(64, 8192, 64)
    r = LINEAR_RECIPES["torchao-tensorwise"]
    ac, sa, bc, sb = r.forward.cast(x, np.ascontiguousarray(w.T))

    def direct(s):
        return KERNELS["cublaslt-fast"](ac, bc, scale_a=sa, scale_b=sb, out_dtype="bfloat16",
                                        slices=s)

    y2 = fp8sim.linear(x, w, recipe=r, slices={"y": 2})[0]
    y1 = fp8sim.linear(x, w, recipe=r, slices={"y": 1})[0]
    assert np.array_equal(_bits(y2), _bits(direct(2)))
    assert np.array_equal(_bits(y1), _bits(direct(1)))
    assert not np.array_equal(_bits(y2), _bits(y1))
    count, source = sc.split_choice("cublaslt-fast", 64, 64, 8192, out_dtype="bfloat16")
    assert (count, source) == (3, "table")
    assert not np.array_equal(_bits(direct(3)), _bits(y2))
    y = fp8sim.linear(x, w, recipe=r)[0]
    assert np.array_equal(_bits(y), _bits(direct(count)))


def test_slices_unlock_a_blockwise_wgrad_the_library_split_is_unknown_for():
    """Issue 17's 8192 tokens 256 -> 256 (here 128 -> 128): grad_w (K = 8192 tokens) runs
    with the caller's slices, the blockwise kernel's bits for that count."""
    x, w, g = _layer(8192, 128, 128, seed=3)
    r = LINEAR_RECIPES["torchao-blockwise"]
    gw = fp8sim.linear(x, w, g, recipe=r, slices={"grad_w": 4})[2]
    ac, sa, bc, sb = r.grad_weight.cast(np.ascontiguousarray(g.T), x)
    want = r.grad_weight.run_codes(ac, sa, bc, sb, slices=4)
    assert np.array_equal(_bits(gw), _bits(want.astype(ml_dtypes.bfloat16)))
    gw1 = fp8sim.linear(x, w, g, recipe=r, slices={"grad_w": 1})[2]
    assert not np.array_equal(_bits(gw), _bits(gw1))


@pytest.mark.parametrize("kw, match", [
    ({"slices": 0}, r"^slices: expected a positive int"),
    ({"slices": True}, r"^slices: expected a positive int"),
    ({"slices": 2.0}, r"^slices: expected a positive int"),
    ({"slices": {"z": 2}}, r"^slices: unknown GEMM 'z'"),
    ({"slices": {"y": -1}}, r"^slices\['y'\]: expected a positive int"),
    ({"gpu": "A100"}, r"^gpu: expected one of 'H100', 'H200'"),
    ({"gpu": None}, r"^gpu: expected one of"),
])
def test_bad_slices_and_gpu_are_named(kw, match):
    x, w, g = _layer(4, 32, 16)
    with pytest.raises(ValueError, match=match):
        fp8sim.linear(x, w, g, recipe="torchao-tensorwise", **kw)


@pytest.mark.parametrize("recipe, slices, match", [
    ("deepseek-v3", 2, r"^slices: none of deepseek-v3's GEMMs splits K"),
    ("torchao-blockwise-triton", 2, r"^slices: none of .* splits K"),
    ("torchao-rowwise", {"y": 2}, r"^slices: torchao-rowwise's forward GEMM runs "
                                  r"torch-rowwise-fast, which never splits K"),
    ("torchao-rowwise-gw-hp", {"grad_w": 2}, r"^slices: .*grad_weight GEMM runs hopper-bf16"),
])
def test_slices_for_a_kernel_that_never_splits_is_refused(recipe, slices, match):
    x, w, g = _layer(4, 32, 16)
    with pytest.raises(ValueError, match=match):
        fp8sim.linear(x, w, g, recipe=recipe, slices=slices)


def test_gemm_slices_per_gemm():
    r = LINEAR_RECIPES["torchao-rowwise-gw-hp"]
    assert gemm_slices(r, None) == {"forward": None, "grad_input": None, "grad_weight": None}
    assert gemm_slices(r, 5) == {"forward": None, "grad_input": 5, "grad_weight": None}
    assert gemm_slices(r, {"grad_x": 2}) == {"forward": None, "grad_input": 2,
                                              "grad_weight": None}


def test_which_kernels_split():
    assert sc.splitting_kernels() == ["cublaslt-fast", "cublaslt", "cublaslt-blockwise"]
    for name in ("triton", "deepgemm", "torch-rowwise", "torch-rowwise-fast",
                 "torchao-triton-blockwise"):
        assert not sc.kernel_splits(name)
        with pytest.raises(ValueError, match=rf"^slices: kernel {name} never splits K"):
            sc.refuse_unsplit(name, 2)
    sc.refuse_unsplit("triton", None)


def test_split_choice_names_its_source():
    assert sc.split_choice("cublaslt-fast", 64, 64, 16384) == (6, "table")
    assert sc.split_choice("cublaslt-fast", 64, 64, 1024) == (1, "rule")
    assert sc.split_choice("cublaslt-fast", 64, 64, 16384, slices=2) == (2, "user")
    assert sc.split_choice("deepgemm", 64, 64, 16384) == (1, "never")
    assert sc.split_choice("torch-rowwise", 64, 64, 16384, out_dtype="bfloat16") == (1, "never")
    assert sc.split_choice("cublaslt-fast", 160, 128, 16384) == (6, "dense")
    count, source = sc.split_choice("cublaslt-fast", 160, 100, 16384)  # N off the projections
    assert (count, source) == (None, "unknown")
    with pytest.raises(ValueError, match="^gpu:"):
        sc.split_choice("cublaslt", 64, 64, 16384, gpu="h100")
    assert set(sc.SOURCES) >= {"user", "table", "rule", "dense", "captured", "never"}


@pytest.mark.parametrize("name, m, n, k, blocks", [
    ("cublaslt-fast", 64, 64, 16384, False), ("cublaslt-fast", 64, 64, 1024, False),
    ("cublaslt", 64, 128, 8192, False), ("cublaslt-blockwise", 64, 128, 8192, True),
    ("cublaslt-blockwise", 128, 256, 7168, True),
])
def test_split_choice_is_the_split_the_kernel_runs(name, m, n, k, blocks):
    """The count split_choice reports (the CLI summary's) gives the kernel's default bits."""
    from fp8sim.formats.convert import encode

    g = np.random.default_rng(7)
    a = encode(np.abs(g.standard_normal((m, k))), "e4m3").view(ml_dtypes.float8_e4m3fn)
    b = encode(np.abs(g.standard_normal((k, n))), "e4m3").view(ml_dtypes.float8_e4m3fn)
    if blocks:
        sa = (g.random((m, k // 128)) + 0.5).astype(np.float32)
        sb = (g.random((k // 128, -(-n // 128))) + 0.5).astype(np.float32)
    else:
        sa = sb = np.float32(1)
    count, source = sc.split_choice(name, m, n, k, scale_a=sa, scale_b=sb)
    assert source in ("table", "rule", "dense") and count is not None
    kern = KERNELS[name]
    want = kern(a, b, scale_a=sa, scale_b=sb)
    got = kern(a, b, scale_a=sa, scale_b=sb, slices=count)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("name", ["triton", "deepgemm", "torch-rowwise", "torch-rowwise-fast",
                                  "torchao-triton-blockwise"])
def test_one_slice_is_what_a_kernel_that_never_splits_runs(name):
    """Generic code passing slices=1 (one chain through K) to every kernel is not refused."""
    sc.refuse_unsplit(name, 1)
    assert sc.split_choice(name, 8, 16, 256, slices=1) == (1, "user")


@pytest.mark.parametrize("recipe", ["deepseek-v3", "torchao-rowwise", "torchao-tensorwise"])
def test_one_slice_for_every_gemm_runs_the_recipe_unsplit(recipe):
    x, w, g = _layer(4, 256, 16)
    want = fp8sim.linear(x, w, g, recipe=recipe)
    for slices in (1, {"y": 1, "grad_x": 1, "grad_w": 1}):
        got = fp8sim.linear(x, w, g, recipe=recipe, slices=slices)
        for a, b in zip(got, want, strict=True):
            assert np.array_equal(a.view(np.uint16), b.view(np.uint16))
