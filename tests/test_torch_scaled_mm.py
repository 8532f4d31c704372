"""fp8sim.torch.scaled_mm: torch._scaled_mm's signature and checks, the H100's bits.

The golden cuBLASLt captures (per-tensor and row-wise scales, fast and slow accumulation,
float32 / bfloat16 / float16 out) and the H200 blockwise captures are replayed through
scaled_mm with torch tensors laid out as torch requires. Skipped without torch.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from conftest import DATA

import fp8sim
from fp8sim.capture.golden import load_cases

torch = pytest.importorskip("torch")
fp8torch = pytest.importorskip("fp8sim.torch")

GOLDEN = DATA / "golden"
_FP8 = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
_OUT = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def _row_major(codes: np.ndarray, fmt: str):
    return torch.from_numpy(np.ascontiguousarray(codes)).view(_FP8[fmt])


def _col_major(codes: np.ndarray, fmt: str):
    """(K, N) codes as torch wants mat_b: the .t() of a contiguous (N, K) tensor."""
    return torch.from_numpy(np.ascontiguousarray(codes.T)).view(_FP8[fmt]).t()


def _bits(t) -> np.ndarray:
    t = t.contiguous()
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().view(np.uint32)
    return t.view(torch.int16).numpy().view(np.uint16)


def _pad16(n: int) -> int:
    return -(-n // 16) * 16


def _golden_params():
    params = []
    for name in ("gemm_public0.npz", "gemm_public1.npz", "extra_public.npz"):
        for case in load_cases(GOLDEN / name):
            if case.k > 4096:
                continue
            for out in case.outputs:
                if out.startswith(("cublas_", "rowwise_")):
                    params.append(pytest.param(name, case.key, out, id=f"{case.key}/{out}"))
    return params


@pytest.mark.parametrize(("file", "key", "output"), _golden_params())
def test_scaled_mm_reproduces_the_cublaslt_captures(file, key, output):
    """Every captured torch._scaled_mm output (K <= 4096), bit for bit.

    The committed copies keep 6 or 8 output columns; B is padded with zero columns to the
    16 torch requires (an output depends only on its own column).
    """
    case = next(c for c in load_cases(GOLDEN / file) if c.key == key)
    if "C" in case.arrays:
        pytest.skip("a C input has no torch._scaled_mm counterpart")
    a, b = case.a, case.b
    m, k = a.shape
    n = b.shape[1]
    b_pad = np.zeros((k, _pad16(n)), np.uint8)
    b_pad[:, :n] = b
    _, speed, out = output.split("_")[:3]
    if output.startswith("rowwise"):
        sa = torch.from_numpy(case.arrays["row_scale_a"].astype(np.float32))
        sb_np = np.ones((1, _pad16(n)), np.float32)
        sb_np[:, :n] = case.arrays["row_scale_b"]
        sb = torch.from_numpy(sb_np)
    elif output.endswith("_scaled"):
        sa = torch.from_numpy(case.arrays["tensor_scale_a"].astype(np.float32))
        sb = torch.from_numpy(case.arrays["tensor_scale_b"].astype(np.float32))
    else:
        sa = sb = torch.tensor(1.0)
    got = fp8torch.scaled_mm(_row_major(a, case.a_format), _col_major(b_pad, case.b_format),
                             sa, sb, out_dtype=_OUT[out], use_fast_accum=speed == "fast")
    assert got.dtype == _OUT[out] and tuple(got.shape) == (m, _pad16(n))
    want = np.asarray(case.arrays[output])
    want = want.view(np.uint32) if want.dtype.itemsize == 4 else want.view(np.uint16)
    assert np.array_equal(_bits(got)[:, :n], want), f"{key}/{output} differs"


def _blockwise_cases():
    with np.load(DATA / "thirdparty_gemm.npz") as z:
        cases = sorted({k.rsplit("/", 1)[0] for k in z.files if k.startswith("gemm/")})
    return [pytest.param(c, o, id=f"{c}/{o}") for c in cases for o in ("f32", "bf16")]


@pytest.mark.parametrize(("case", "out"), _blockwise_cases())
def test_scaled_mm_blockwise_reproduces_the_h200_captures(case, out):
    """1x128 x 128x128 (forward) and 1x128 x 128x1 (Wgrad) scales: cuBLASLt's bits."""
    with np.load(DATA / "thirdparty_gemm.npz") as z:
        m, n, k = (int(v) for v in z[case + "/orig_shape"])
        rows, cols = z[case + "/rows"], z[case + "/cols"]
        a = np.zeros((m, k), np.uint8)
        b = np.zeros((k, n), np.uint8)
        a[rows] = z[case + "/A"]
        b[:, cols] = z[case + "/B"]
        sa, sb = z[case + "/scale_a"], z[case + "/scale_b"]
        want = z[f"{case}/cublas_{out}"]
    # torch wants scale_a (M, K/128) with stride (1, M): the .t() of a contiguous tensor
    sa_t = torch.from_numpy(np.ascontiguousarray(sa.T)).t()
    got = fp8torch.scaled_mm(_row_major(a, "e4m3"), _col_major(b, "e4m3"), sa_t,
                             torch.from_numpy(np.ascontiguousarray(sb)), out_dtype=_OUT[out])
    assert np.array_equal(_bits(got)[np.ix_(rows, cols)], want)


def test_signature_is_torchs():
    params = [name for name, p in inspect.signature(fp8torch.scaled_mm).parameters.items()
              if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert params == ["mat_a", "mat_b", "scale_a", "scale_b", "bias", "scale_result",
                      "out_dtype", "use_fast_accum"]


def _operands(m=32, k=64, n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=g).to(torch.float8_e4m3fn)
    b = torch.randn(n, k, generator=g).to(torch.float8_e4m3fn).t()
    return a, b


def test_long_k_fast_accumulation_uses_the_captured_split():
    """K = 16384 at 64 x 64: cuBLASLt's 6 slices, the same as fp8sim's cublaslt-fast kernel."""
    import fp8sim
    from fp8sim.engine.kernel import cublaslt_fast_promote

    a, b = _operands(64, 16384, 64)
    one = torch.tensor(1.0)
    got = fp8torch.scaled_mm(a, b, one, one, out_dtype=torch.float32, use_fast_accum=True)
    codes_a = a.view(torch.uint8).numpy()
    codes_b = b.contiguous().view(torch.uint8).numpy()
    want = fp8sim.gemm(codes_a, codes_b, promote=cublaslt_fast_promote(64, 64, 16384))
    assert cublaslt_fast_promote(64, 64, 16384) == 2816
    assert np.array_equal(_bits(got), want.view(np.uint32))


@pytest.mark.parametrize("gpu", ["H100", "H200"])
@pytest.mark.parametrize("fast", [False, True])
def test_an_unrecorded_split_is_refused_as_the_kernels_refuse_it(fast, gpu):
    """No silent guess: an (M, N, K) whose split cuBLASLt picks by a heuristic that was never
    recorded is refused (as KERNELS["cublaslt"] refuses it); slices= runs one."""
    a, b = _operands(32, 8192, 32)
    one = torch.tensor(1.0)
    with pytest.raises(NotImplementedError, match=r"\(32, 32, 8192\).*never recorded.*slices="):
        fp8torch.scaled_mm(a, b, one, one, out_dtype=torch.float32, use_fast_accum=fast,
                           gpu=gpu)
    got = fp8torch.scaled_mm(a, b, one, one, out_dtype=torch.float32, use_fast_accum=fast,
                             gpu=gpu, slices=1)
    codes_a, codes_b = a.view(torch.uint8).numpy(), b.contiguous().view(torch.uint8).numpy()
    kern = fp8sim.KERNELS["cublaslt-fast" if fast else "cublaslt"]
    want = kern(codes_a, codes_b, scale_a=np.float32(1), scale_b=np.float32(1), slices=1)
    assert np.array_equal(_bits(got), want.view(np.uint32))


def test_short_k_runs_on_either_card_without_a_warning():
    """K <= 4096 is unsplit on every card recorded: no refusal and no warning on the H200."""
    a, b = _operands(16, 256, 32)
    one = torch.tensor(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h200 = fp8torch.scaled_mm(a, b, one, one, out_dtype=torch.float32, gpu="H200")
    h100 = fp8torch.scaled_mm(a, b, one, one, out_dtype=torch.float32)
    assert np.array_equal(_bits(h200), _bits(h100))


def test_bias_is_added_in_float32_before_the_output_rounding():
    import ml_dtypes

    a, b = _operands()
    sa, sb = torch.tensor(0.5), torch.tensor(0.25)
    bias = torch.linspace(-3, 3, 32).to(torch.bfloat16)
    got = fp8torch.scaled_mm(a, b, sa, sb, bias=bias, out_dtype=torch.bfloat16)
    f32 = fp8torch.scaled_mm(a, b, sa, sb, out_dtype=torch.float32).numpy()
    want = (f32 + bias.to(torch.float32).numpy()[None, :]).astype(np.float32)
    assert np.array_equal(_bits(got), want.astype(ml_dtypes.bfloat16).view(np.uint16))


def _bad(**changes):
    a, b = _operands()
    kw = {"mat_a": a, "mat_b": b, "scale_a": torch.tensor(1.0), "scale_b": torch.tensor(1.0),
          "out_dtype": torch.bfloat16} | changes
    return fp8torch.scaled_mm(**kw)


@pytest.mark.parametrize(("changes", "error", "pattern"), [
    ({"mat_b": _operands()[1].contiguous()}, ValueError, "^mat_b: must be column-major"),
    ({"mat_a": _operands()[0].t().contiguous().t()}, ValueError, "^mat_a: must be row-major"),
    ({"mat_a": torch.zeros(32, 64)}, ValueError, "^mat_a: expected dtype"),
    ({"mat_a": np.zeros((32, 64), np.uint8)}, TypeError, "^mat_a:"),
    ({"mat_a": _operands(k=48)[0][:, :40].contiguous()}, ValueError, "^mat_b: mat_a and mat_b"),
    ({"mat_a": _operands(k=40)[0], "mat_b": _operands(k=40)[1]}, ValueError,
     "^mat_a: expected trailing dimension"),
    ({"mat_b": _operands(n=24)[1]}, ValueError, "^mat_b: shape"),
    ({"mat_a": _operands()[0].view(torch.uint8).view(torch.float8_e5m2),
      "mat_b": _operands()[1].contiguous().view(torch.uint8).view(torch.float8_e5m2).t()
      .contiguous().t()}, ValueError, "two float8_e5m2"),
    ({"out_dtype": None}, NotImplementedError, "^out_dtype: FP8 output"),
    ({"out_dtype": torch.int32}, ValueError, "^out_dtype:"),
    ({"scale_a": torch.tensor(1.0, dtype=torch.float64)}, ValueError, "^scale_a: expected"),
    ({"scale_a": torch.ones(32, 3), "scale_b": torch.ones(3, 32)}, ValueError,
     "^scale_a: shapes"),
    ({"bias": torch.zeros(32, dtype=torch.bfloat16), "out_dtype": torch.float32}, ValueError,
     "^bias: not supported"),
    ({"bias": torch.zeros(32, dtype=torch.float16)}, ValueError, "^bias: must be torch.bfloat16"),
    ({"bias": torch.zeros(16, dtype=torch.bfloat16)}, ValueError, "^bias: must be size 32"),
    ({"scale_result": torch.ones(2)}, ValueError, "^scale_result:"),
])
def test_refuses_what_torch_refuses(changes, error, pattern):
    with pytest.raises(error, match=pattern):
        _bad(**changes)


def test_returns_a_torch_tensor_for_every_output_type():
    a, b = _operands()
    one = torch.tensor(1.0)
    outs = {dt: fp8torch.scaled_mm(a, b, one, one, out_dtype=dt)
            for dt in (torch.float32, torch.bfloat16, torch.float16)}
    for dt, t in outs.items():
        assert isinstance(t, torch.Tensor) and t.dtype == dt and tuple(t.shape) == (32, 32)
    # the 16-bit outputs are the float32 result rounded to nearest even
    assert torch.equal(outs[torch.float32].to(torch.bfloat16), outs[torch.bfloat16])
    assert torch.equal(outs[torch.float32].to(torch.float16), outs[torch.float16])


def test_blockwise_scales_refuse_fast_accumulation():
    """torch 2.11 + cuBLASLt 13.1 on an H200 raise for use_fast_accum with blockwise scales."""
    a, b = _operands(32, 256, 32)
    sa = torch.ones(32, 2)
    sb = torch.ones(2, 1)
    fp8torch.scaled_mm(a, b, sa, sb, out_dtype=torch.float32)
    with pytest.raises(ValueError, match="^use_fast_accum: .*blockwise"):
        fp8torch.scaled_mm(a, b, sa, sb, out_dtype=torch.float32, use_fast_accum=True)


def test_slices_and_gpu_are_keyword_only_extras():
    params = inspect.signature(fp8torch.scaled_mm).parameters
    extra = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert [(p.name, p.default) for p in extra] == [("gpu", "H100"), ("slices", None)]


def test_slices_set_the_split_of_a_tensorwise_gemm():
    """K = 16384 at 64 x 64 with fast accumulation: slices=S is the kernel run with S slices;
    the default is the H100's recorded 6; gpu="H100" explicit is the default."""
    import fp8sim

    a, b = _operands(64, 16384, 64)
    one = torch.tensor(1.0)
    codes_a = a.view(torch.uint8).numpy()
    codes_b = b.contiguous().view(torch.uint8).numpy()
    for s in (2, 6):
        got = fp8torch.scaled_mm(a, b, one, one, out_dtype=torch.float32, use_fast_accum=True,
                                 slices=s)
        want = fp8sim.KERNELS["cublaslt-fast"](codes_a, codes_b, scale_a=np.float32(1),
                                               scale_b=np.float32(1), slices=s)
        assert np.array_equal(_bits(got), want.view(np.uint32))
        if s == 2:
            two = _bits(got)
    default = fp8torch.scaled_mm(a, b, one, one, out_dtype=torch.float32, use_fast_accum=True,
                                 gpu="H100")
    assert np.array_equal(_bits(default), _bits(got))
    assert not np.array_equal(two, _bits(got))


def test_slices_reach_the_blockwise_kernel():
    """1x128 x 128x1 at K = 8192 (no H100 recording): slices=S runs, as the kernel does."""
    import fp8sim

    a, b = _operands(128, 8192, 128, seed=2)
    sa = torch.rand(128, 64) + 0.5
    sb = torch.rand(64, 128) + 0.5
    got = fp8torch.scaled_mm(a, b, sa.t().contiguous().t(), sb, out_dtype=torch.bfloat16,
                             slices=3)
    want = fp8sim.KERNELS["cublaslt-blockwise"](
        a.view(torch.uint8).numpy().view(_ml("e4m3")),
        b.contiguous().view(torch.uint8).numpy().view(_ml("e4m3")),
        scale_a=sa.numpy(), scale_b=sb.numpy(), out_dtype="bfloat16", slices=3)
    assert np.array_equal(_bits(got), want.view(np.uint16))


def _ml(fmt):
    import ml_dtypes

    return ml_dtypes.float8_e4m3fn if fmt == "e4m3" else ml_dtypes.float8_e5m2


@pytest.mark.parametrize("kw, match", [
    ({"gpu": "A100"}, "^gpu: expected one of 'H100', 'H200'"),
    ({"slices": 0}, "^slices: expected a positive int"),
    ({"slices": 1.5}, "^slices: expected a positive int"),
    ({"slices": 2, "rowwise": True}, "^slices: row-wise scaling never splits K"),
])
def test_bad_gpu_and_slices_are_named(kw, match):
    a, b = _operands()
    if kw.pop("rowwise", False):
        sa, sb = torch.ones(32, 1), torch.ones(1, 32)
    else:
        sa = sb = torch.tensor(1.0)
    with pytest.raises(ValueError, match=match):
        fp8torch.scaled_mm(a, b, sa, sb, out_dtype=torch.bfloat16, **kw)
