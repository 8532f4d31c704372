"""The GPU engine against the CPU engine, bit for bit (GPU tests skip without a CUDA GPU).

CI has no GPU: there, the kernel's arithmetic is checked through its Python emulation
(`gpu_emulation.py`) and the engine argument's errors. On a machine with CuPy and a GPU
every test below runs; `scripts/gpu_agreement.py` is the full census (every golden file).
"""

from __future__ import annotations

import contextlib
import zlib

import numpy as np
import pytest
from conftest import DATA, SHARED_GOLDEN
from gpu_emulation import gemm_fused

import fp8sim
from fp8sim.analysis.studies import random_case
from fp8sim.capture.golden import as_bits, load_cases, output_spec
from fp8sim.engine import _gpu
from fp8sim.engine.gemm import _tables
from fp8sim.engine.mma import PRESETS
from fp8sim.formats.info import format_info

NO_GPU = _gpu.available()
gpu = pytest.mark.skipif(NO_GPU is not None, reason=f"GPU engine unavailable: {NO_GPU}")


def _codes(rng, shape, fmt, special=False):
    """Random codes; finite only unless `special` (then every code, NaN and Inf too)."""
    codes = rng.integers(0, 256, shape, dtype=np.uint8)
    if not special:
        vals = fp8sim.decode(codes, fmt)
        codes[~np.isfinite(vals)] = 0x30
    return codes


def _emulation_case(seed: int):
    rng = np.random.default_rng(seed)
    fa, fb = rng.choice(["e4m3", "e5m2"], 2)
    k = int(rng.integers(1, 90))
    a = _codes(rng, (3, k), fa, special=seed % 3 == 0)
    b = _codes(rng, (k, 3), fb, special=seed % 3 == 0)
    terms = int(rng.choice([16, 32]))
    frac = int(rng.choice([0, 4, 13, 17]))
    promote = int(rng.choice([0, 32, 64]))
    c = None
    if seed % 2:
        c = (rng.standard_normal((3, 3)) * 10.0 ** rng.integers(-40, 39, (3, 3))).astype(
            np.float32)
        c.flat[0] = [np.inf, -np.inf, np.nan, 3e38, -0.0, 1e-40, 2.0**50, 0.0][seed % 8]
    return fa, fb, a, b, terms, frac, promote, c


@pytest.mark.parametrize("seed", range(24))
def test_emulated_tiled_kernel_matches_the_cpu_engine(seed):
    """The fused kernel's float32 magic-number arithmetic, emulated, gives the CPU bits."""
    fa, fb, a, b, terms, frac, promote, c = _emulation_case(seed)
    step = PRESETS["hopper"].replace(terms=terms, frac_bits=frac)
    want = fp8sim.gemm(a, b, a_format=fa, b_format=fb, promote=promote, c=c, preset=step)
    tav, tag = _tables(format_info(fa))
    tbv, tbg = _tables(format_info(fb))
    got = gemm_fused(a, b, tav, tag, tbv, tbg, terms=terms, frac=frac, promote=promote, c=c)
    got.view(np.uint32)[np.isnan(got)] = 0x7FFFFFFF  # as fp8sim.gemm writes NaN
    assert np.array_equal(as_bits(got), as_bits(want))


@pytest.mark.skipif(NO_GPU is None, reason="a GPU is present")
def test_gpu_engine_unavailable_is_a_value_error_naming_engine():
    a = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError, match="engine"):
        fp8sim.gemm(a, a, engine="gpu")


@pytest.mark.skipif(NO_GPU is None, reason="a GPU is present")
def test_cli_sweep_engine_gpu_without_a_gpu_is_a_usage_error(tmp_path):
    from test_cli import assert_usage_error, run

    r = run("sweep", "--k-values", "64", "--m", "2", "--n", "2", "--engine", "gpu",
            "--out", str(tmp_path / "x"))
    assert_usage_error(r)
    assert "engine" in r.stderr


@gpu
def test_cli_sweep_on_the_gpu_writes_the_cpu_csv(tmp_path):
    from click.testing import CliRunner

    from fp8sim.cli.app import main

    args = ["sweep", "--k-values", "64,1024", "--m", "8", "--n", "8"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, [*args, "--engine", "gpu", "--out", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "g.csv").read_bytes()


@pytest.mark.parametrize("engine", ["tpu", "", None, 1])
def test_unknown_engine(engine):
    a = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError, match="engine"):
        fp8sim.gemm(a, a, engine=engine)


@pytest.mark.parametrize("tiles, intervals, m, n, want", [
    (1, 64, 64, 64, 1),         # one tile, 64 intervals: 64 groups of 1 (<= 4 x 132 blocks)
    (24, 64, 256, 384, 3),      # a Wgrad: 22 groups wanted, 3 intervals a group
    (264, 64, 1024, 1024, 0),   # two blocks an SM already: no split
    (4, 1, 64, 64, 0),          # one interval: nothing to split
    (1, 2, 64, 64, 1),
    (36, 8192, 384, 384, 0),    # the interval sums would pass 1 GiB
])
def test_k_groups_splits_only_promoted_gemms_with_few_tiles(tiles, intervals, m, n, want):
    assert _gpu.k_groups(tiles, intervals, m, n, sms=132) == want


@pytest.mark.parametrize("promote, c", [(32, False), (128, True), (64, True)])
@pytest.mark.parametrize("preset", ["hopper", "ideal", "blackwell"])  # (exact never promotes)
def test_promoted_intervals_are_independent(promote, c, preset):
    """What the GPU's K split rests on: a promoted GEMM is the in-order float32 sum of its
    intervals' sums, each computed alone from zero (C in the first), on the CPU engine."""
    rng = np.random.default_rng(promote)
    m, n, k = 5, 7, 300
    a, b = random_case(m, n, k, dist="normal", seed=promote)
    cc = (rng.standard_normal((m, n)) * 1e3).astype(np.float32) if c else None
    want = fp8sim.gemm(a, b, promote=promote, c=cc, preset=preset)
    acc = np.zeros((m, n), np.float32)
    for g, k0 in enumerate(range(0, k, promote)):
        part = fp8sim.gemm(a[:, k0:k0 + promote], b[k0:k0 + promote], promote=0,
                           c=cc if g == 0 else None, preset=preset)
        acc = (acc + part).astype(np.float32)
    assert np.array_equal(as_bits(acc), as_bits(want))


def test_the_gpu_mutants_still_apply():
    """Each planted bug of scripts/device/gpu_mutants.py edits the CUDA source once."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "scripts" / "device" / "gpu_mutants.py"
    spec = importlib.util.spec_from_file_location("gpu_mutants", path)
    mutants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutants)
    text = _gpu._SOURCE.read_text()
    assert {name: text.count(old) for name, (old, _) in mutants.MUTANTS.items()} == \
        dict.fromkeys(mutants.MUTANTS, 1)


# ------------------------------------------------------------------ on a GPU


@pytest.fixture(params=[True, False], ids=["k-split", "serial"])
def k_split(request, monkeypatch):
    """Both paths of a promoted GEMM with few tiles: intervals in parallel, or in one block."""
    monkeypatch.setattr(_gpu, "K_SPLIT", request.param)
    return request.param


@contextlib.contextmanager
def k_split_set(on: bool):
    """_gpu.K_SPLIT is `on` inside the block (scripts/device/ call these tests without
    pytest, so no monkeypatch)."""
    before, _gpu.K_SPLIT = _gpu.K_SPLIT, on
    try:
        yield
    finally:
        _gpu.K_SPLIT = before


def _same(kwargs_a, a, b, **kw):
    """gemm on both engines; asserts the bits agree; returns the element count."""
    cpu = as_bits(fp8sim.gemm(a, b, engine="cpu", **kw))
    got = as_bits(fp8sim.gemm(a, b, engine="gpu", **kw))
    diff = int(np.count_nonzero(cpu != got))
    assert diff == 0, f"{kwargs_a}: {diff} of {cpu.size} outputs differ"
    return cpu.size


def _golden_params():
    params = []
    for directory in (DATA / "golden", SHARED_GOLDEN):
        for name in ("gemm_public0", "gemm_public1", "special", "extra_public",
                     "longk_public0", "longk_public1"):
            path = directory / f"{name}.npz"
            if directory.is_dir() and path.exists():
                params.append(pytest.param(path, id=f"{directory.parent.name}/{name}"))
    return params


@gpu
@pytest.mark.parametrize("path", _golden_params())
def test_golden_cases_gpu_equals_cpu(path):
    for case in load_cases(path):
        for name in case.outputs:
            spec = output_spec(case, name)
            if spec is not None:
                _same(f"{case.key}/{name}", case.a, case.b, **spec)


@gpu
@pytest.mark.usefixtures("k_split")
@pytest.mark.parametrize("preset", list(PRESETS) + ["frac20", "frac17", "frac25", "terms64"])
@pytest.mark.parametrize("promote", [0, 128])
def test_random_cases_of_every_preset(preset, promote):
    step = {"frac20": PRESETS["hopper"].replace(frac_bits=20),
            "frac17": PRESETS["hopper"].replace(frac_bits=17),
            "frac25": PRESETS["hopper"].replace(frac_bits=25),
            "terms64": PRESETS["hopper"].replace(terms=64)}.get(preset, preset)
    for seed, (m, n, k) in enumerate([(70, 130, 300), (64, 64, 4096), (1, 200, 33)]):
        for fa, fb in (("e4m3", "e4m3"), ("e5m2", "e4m3"), ("e5m2", "e5m2")):
            a, b = random_case(m, n, k, dist="normal", a_format=fa, b_format=fb, seed=seed)
            _same((preset, promote, m, n, k, fa, fb), a, b, a_format=fa, b_format=fb,
                  promote=promote, preset=step)


@gpu
@pytest.mark.usefixtures("k_split")
@pytest.mark.parametrize("scaling", [None, "group", "tensor", "row"])
@pytest.mark.parametrize("out_dtype", ["float32", "bfloat16", "float16"])
def test_random_cases_of_every_scaling(scaling, out_dtype):
    rng = np.random.default_rng(7)
    m, n, k, promote = 96, 300, 640, 128
    a, b = random_case(m, n, k, dist="normal", seed=3)
    g = -(-k // promote)
    scales = {None: (None, None), "tensor": (np.float32(0.37), np.float32(2.5)),
              "row": (rng.random((m, 1), np.float32), rng.random((1, n), np.float32)),
              "group": (rng.random((m, g), np.float32) * 8,
                        rng.random((g, -(-n // 128)), np.float32))}[scaling]
    _same(scaling, a, b, promote=promote, scale_a=scales[0], scale_b=scales[1],
          scaling=scaling, out_dtype=out_dtype)


@gpu
@pytest.mark.usefixtures("k_split")
@pytest.mark.parametrize("promote", [0, 32, 128])
@pytest.mark.parametrize("shape", [(67, 300, 65), (128, 512, 64)])  # ragged / whole tiles
def test_special_codes_and_accumulators(promote, shape):
    rng = np.random.default_rng(11)
    m, k, n = shape
    for fa, fb in (("e4m3", "e5m2"), ("e5m2", "e5m2")):
        a = _codes(rng, (m, k), fa, special=True)
        b = _codes(rng, (k, n), fb, special=True)
        a[:, ::3] = _codes(rng, (m, -(-k // 3)), fa)  # steps both with and without specials
        c = (rng.standard_normal((m, n)) * 10.0 ** rng.integers(-45, 39, (m, n))).astype(
            np.float32)
        c.flat[::7] = np.array([np.inf, -np.inf, np.nan, 3e38, -0.0, 1e-40, 2.0**60],
                               np.float32)[rng.integers(0, 7, c.flat[::7].size)]
        for preset in ("hopper", "ideal", "ada"):
            _same((fa, fb, preset), a, b, a_format=fa, b_format=fb, promote=promote, c=c,
                  preset=preset)


@gpu
@pytest.mark.usefixtures("k_split")
@pytest.mark.parametrize("preset", ["hopper", "ideal", "exact", "blackwell"])
def test_subnormal_accumulators_and_scales(preset):
    """Subnormal C through all-zero rows of A, subnormal scaled partials: no flush to zero.

    (CuPy compiles with -ftz=true; the kernels must not let it touch these values.)
    """
    rng = np.random.default_rng(13)
    m, n, k = 128, 64, 256
    a, b = random_case(m, n, k, dist="normal", seed=2)
    a[::2] = 0  # half the rows: no nonzero product, C passes through truncated
    sub = np.float32(2.0**-126)
    c = (rng.random((m, n), np.float32) * sub * rng.choice([-1, 1], (m, n))).astype(np.float32)
    c[:, ::3] = (rng.random((m, -(-n // 3))) * 4).astype(np.float32)  # and normal ones
    for promote in (0, 128):
        _same((preset, promote), a, b, promote=promote, c=c, preset=preset)
    if preset != "exact":
        g = k // 128
        sa = np.full((m, g), 2.0**-70, np.float32)
        sb = np.full((g, 1), 2.0**-60, np.float32)  # fl(sa*sb) and the partials subnormal
        _same((preset, "group"), a, b, promote=128, c=c, preset=preset, scale_a=sa,
              scale_b=sb, scaling="group")


def _epilogue_variants():
    """Every valid epilogue (fp8sim.engine.epilogue, where this version has it), else []."""
    try:
        from fp8sim.engine.epilogue import A_GRANULARITIES, B_GRANULARITIES, ORDERS, Epilogue
    except ImportError:
        return []
    out = []
    for sa in A_GRANULARITIES:
        for sb in B_GRANULARITIES:
            for order in ORDERS:
                for fused in (True, False):
                    out.append(Epilogue(name="v", when="promotion", scale_a=sa, scale_b=sb,
                                        order=order, fused=fused, block_n=128))
                if sa != "group" and sb not in ("block", "group-column"):
                    out.append(Epilogue(name="v", when="end", scale_a=sa, scale_b=sb,
                                        order=order, fused=False))
    return out


@gpu
@pytest.mark.usefixtures("k_split")
@pytest.mark.parametrize("ep", _epilogue_variants(),
                         ids=lambda e: "-".join(str(v) for v in e.key[:5]))
def test_every_epilogue_variant(ep):
    """The op-codes of every epilogue drive the GPU kernels as they drive the CPU engine;
    scales from subnormal products to overflow."""
    rng = np.random.default_rng(zlib.crc32(repr(ep.key).encode()))
    m, k, n, promote = 70, 260, 140, 128
    a, b = random_case(m, n, k, dist="normal", seed=1)
    want_a, want_b = ep.scale_shapes(m, k, n, promote)

    def scales(shape):
        if shape is None:
            return None
        v = np.ldexp(rng.random(shape or (1,)) + 0.5, rng.integers(-140, 120, shape or (1,)))
        return v.astype(np.float32).reshape(shape)

    _same(ep.key, a, b, promote=promote, scaling=ep, scale_a=scales(want_a),
          scale_b=scales(want_b))


@gpu
def test_tiled_kernel_equals_the_generic_kernel_at_size():
    """The tiled kernel against the GPU's line-by-line port of the CPU engine, 2**27 MACs."""
    a, b = random_case(512, 512, 512 * 2, dist="normal", seed=5)
    tav, tag = _tables(format_info("e4m3"))
    for promote in (0, 128):
        outs = []
        for kernel in ("tiled", "generic"):
            out = np.empty((512, 512), np.float32)
            one = np.ones((1, 1), np.float32)
            _gpu.gemm_tiles(a, b, tav, tag, tav, tag, one, False, 0, 32, 13,
                            promote or a.shape[1], promote > 0, _gpu.WHEN_NONE, 0, False, one,
                            one, _gpu.NO_COLUMN, out, kernel=kernel)
            outs.append(as_bits(out))
        assert np.array_equal(outs[0], outs[1])


@gpu
@pytest.mark.parametrize("preset", ["hopper", "ideal"])
def test_k_split_with_c(preset):
    """C (finite, large enough to survive the 13-bit alignment) through the K split: it
    enters the first K group only, as the serial kernel adds it to the first interval."""
    m, n, k = 96, 130, 1024
    a, b = random_case(m, n, k, dist="normal", seed=4)
    c = (np.random.default_rng(4).standard_normal((m, n)) * 64).astype(np.float32)
    assert _gpu.k_groups(-(-m // 64) * -(-n // 64), k // 128, m, n, _gpu._sm_count()) > 0
    with k_split_set(True):
        _same(("C", preset), a, b, promote=128, c=c, preset=preset)


@gpu
@pytest.mark.parametrize("scaling", [None, "group"])
def test_k_split_at_a_wgrad_shape(scaling):
    """A Wgrad-like GEMM (few output tiles, K = 8192 tokens): K split, serial and CPU agree."""
    from fp8sim.engine import _gpu_arrays  # noqa: F401  (the device path needs CuPy)

    m, n, k = 256, 384, 8192
    a, b = random_case(m, n, k, dist="normal", seed=9)
    rng = np.random.default_rng(9)
    sa = sb = None
    if scaling:
        sa = rng.random((m, k // 128), np.float32) * 8
        sb = rng.random((k // 128, -(-n // 128)), np.float32)
    assert _gpu.k_groups(-(-m // 64) * -(-n // 64), k // 128, m, n, _gpu._sm_count()) > 0
    cpu = as_bits(fp8sim.gemm(a, b, promote=128, scale_a=sa, scale_b=sb, scaling=scaling))
    for on in (True, False):
        with k_split_set(on):
            got = as_bits(fp8sim.gemm(a, b, engine="gpu", promote=128, scale_a=sa, scale_b=sb,
                                      scaling=scaling))
        assert np.array_equal(got, cpu), f"K_SPLIT={on}: {np.count_nonzero(got != cpu)} differ"
