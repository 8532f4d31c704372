"""cuBLASLt's own split-K choice, as recorded from the library, reproduced for every shape.

tests/data/cublaslt_splits_points.npz holds every point the probe recorded
(fp8sim/capture/cublaslt_probe: an LD_PRELOAD interposer of cublasLtMatmul under torch
2.11, cuBLASLt 13.1): per card, the (M, N, K) shapes and the slice count per family x
output type (0: not recorded, e.g. torch refused it). tests/data/cublaslt_captures.npz
holds cropped outputs of random-shape GEMMs captured with the probe on, with the recorded
configuration: fp8sim must give their bits with the slices it predicts.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from conftest import DATA

import fp8sim
from fp8sim.engine import cublaslt_splits as cs
from fp8sim.engine.kernel import CUBLASLT_FAST_SLICES_H100, CUBLASLT_FAST_SLICES_H100_16BIT

POINTS = DATA / "cublaslt_splits_points.npz"
CAPTURES = DATA / "cublaslt_captures.npz"
KERNEL = {"tensor-fast": "cublaslt-fast", "tensor": "cublaslt", "row-fast": "torch-rowwise-fast",
          "row": "torch-rowwise", "block128": "cublaslt-blockwise",
          "block1": "cublaslt-blockwise"}


def _cards() -> list[str]:
    with np.load(POINTS) as z:
        return sorted({k.split("/")[0] for k in z.files if "/" in k})


@pytest.mark.parametrize("card", _cards())
def test_every_recorded_point_is_reproduced(card):
    """The rule, the table and the dense runs give the recorded count at every recorded
    point (grid, held-out random shapes, dense M and dense K), and the rule alone explains
    more of them than the table."""
    with np.load(POINTS) as z:
        shapes, counts, combos = z[f"{card}/shapes"], z[f"{card}/slices"], z["combos"]
    by_source = dict.fromkeys(("rule", "table", "dense", "unknown"), 0)
    wrong = []
    for j, combo in enumerate(combos):
        family, out = str(combo).split()
        for (m, n, k), want in zip(shapes.tolist(), counts[:, j].tolist(), strict=True):
            if want == 0:
                continue
            got, source = cs.split_source(family, m, n, k, out, card)
            by_source[source] += 1
            if got != want:
                wrong.append((family, out, m, n, k, got, want))
    assert not wrong, wrong[:5]
    assert by_source["rule"] > by_source["table"] > 0 and by_source["dense"] > 0


def test_the_earlier_h100_captures_agree():
    """Every split fp8sim.identify found in H100 outputs is what the probe recorded."""
    for (m, n, k), s in CUBLASLT_FAST_SLICES_H100.items():
        assert cs.cublaslt_slices("tensor-fast", m, n, k, "float32", "H100") == s
        want16 = CUBLASLT_FAST_SLICES_H100_16BIT.get((m, n, k), s)
        assert cs.cublaslt_slices("tensor-fast", m, n, k, "bfloat16", "H100") == want16


def _capture_keys() -> list[str]:
    with np.load(CAPTURES) as z:
        return sorted({k.split("/")[0] for k in z.files})


@pytest.mark.parametrize("key", _capture_keys())
def test_random_shape_capture_is_bit_exact(key):
    """fp8sim, with the slice count it predicts for the shape on that card, gives the bits
    cuBLASLt gave, and the prediction is the recorded SPLITK_NUM."""
    with np.load(CAPTURES) as z:
        meta = json.loads(str(z[key + "/meta"]))
        a, b, sa, sb, want = (z[f"{key}/{x}"] for x in ("A", "B", "scale_a", "scale_b", "D"))
        m, n, k = (int(v) for v in z[key + "/shape"])
    family, out, card = meta["family"], meta["out"], meta["card"]
    assert cs.cublaslt_slices(family, m, n, k, out, card) == meta["splitk"]
    if family.startswith("tensor"):
        sa, sb = sa.reshape(()), sb.reshape(())
    got = fp8sim.KERNELS[KERNEL[family]](a, b, scale_a=sa, scale_b=sb, out_dtype=out,
                                         problem_shape=(m, n, k), gpu=card)
    assert np.array_equal(got.view(want.dtype), want)
    if meta["splitk"] > 1 and family.endswith("fast"):  # the split shows in the bits
        one = fp8sim.KERNELS[KERNEL[family]](a, b, scale_a=sa, scale_b=sb, out_dtype=out,
                                             slices=1)
        assert not np.array_equal(one.view(want.dtype), want)


@pytest.mark.parametrize("bad, match", [
    (dict(m=0), r"m: 0 is outside the recorded range .*M in \[1, 65536\]"),
    (dict(k=131073), r"k: 131073 is outside the recorded range"),
    (dict(n=30000), r"n: 30000 is outside"),
    (dict(m=70000), r"m: 70000 is outside"),
    (dict(family="rowwise"), r"family: expected one of tensor-fast"),
    (dict(gpu="A100"), r"gpu: expected one of 'H100'"),
    (dict(out_dtype="float8"), r"out_dtype: expected float32, bfloat16"),
])
def test_bad_arguments_are_named(bad, match):
    args = dict(family="tensor-fast", m=64, n=64, k=16384, out_dtype="float32", gpu="H100")
    with pytest.raises(ValueError, match=match):
        cs.cublaslt_slices(**(args | bad))
    with pytest.raises(TypeError, match="m: expected an int"):
        cs.cublaslt_slices("tensor", 64.0, 64, 64)


def test_rule_answers_outside_the_split_region():
    assert cs.split_source("tensor-fast", 4096, 4096, 131072, "float32", "H100") == (1, "rule")
    assert cs.split_source("tensor-fast", 7, 1000, 5000, "bfloat16", "H100") == (1, "rule")
    assert cs.split_source("row", 1, 16, 131072) == (1, "rule")
    assert cs.split_source("tensor", 200000, 50000, 4096) == (1, "rule")  # short K: any M, N
    assert cs.split_source("row", 200000, 50000, 131072) == (1, "rule")


def test_unknown_split_is_refused_with_a_way_out():
    unknown = [(m, n, k) for m, n, k in ((33, 100 * 16, 37 * 1024 + 128), (77, 304, 99968),
                                         (5, 2000, 50048))
               if cs.split_source("tensor-fast", m, n, k)[1] == "unknown"]
    assert unknown, "every probe shape was predicted; pick others"
    with pytest.raises(ValueError, match=r"slices: cuBLASLt's split .* pass slices="):
        cs.cublaslt_slices("tensor-fast", *unknown[0])


def test_kernel_takes_gpu_and_refuses_other_cards():
    a = np.full((4, 64), 0x38, np.uint8)
    b = np.full((64, 4), 0x38, np.uint8)
    with pytest.raises(ValueError, match=r"gpu: expected one of 'H100', 'H200', got 'H300'"):
        fp8sim.KERNELS["cublaslt-fast"](a, b, gpu="H300")
    with pytest.raises(ValueError, match="gpu: expected"):
        fp8sim.KERNELS["triton"](a, b, gpu=100)


@pytest.mark.parametrize("n, k", [(128, 16384), (4096, 16384), (7168, 2048), (256, 65536)])
def test_batch_invariance_ranges_cover_m_and_agree(n, k):
    ranges = cs.batch_invariance("cublaslt-fast", n, k, "H100", m_max=4096)
    assert ranges[0][0] == 1 and ranges[-1][1] == 4096
    for (lo, hi, s), nxt in zip(ranges, ranges[1:] + [None], strict=True):
        assert lo <= hi
        if nxt is not None:
            assert nxt[0] == hi + 1 and nxt[2] != s
        for m in {lo, hi, (lo + hi) // 2}:
            got, _ = cs.split_source("tensor-fast", m, n, k, "float32", "H100")
            assert got == s


def test_batch_invariance_names_bad_kernels():
    with pytest.raises(ValueError, match="kernel: expected a cuBLASLt kernel"):
        cs.batch_invariance("deepgemm", 128, 8192)
    with pytest.raises(ValueError, match=r"m_max: expected an int in \[1, 65536\]"):
        cs.batch_invariance("cublaslt", 128, 8192, m_max=0)


def test_card_info_names_versions():
    info = cs.card_info("H100")
    assert info["sms"] == 132 and info["cublaslt_version"] >= 130000
    assert info["torch"].startswith("2.11")


def _h200() -> bool:
    return "H200" in cs._data()["cards"]


@pytest.mark.skipif(not _h200(), reason="no H200 recording in the data")
def test_the_earlier_h200_blockwise_captures_agree():
    """The blockwise splits captured on the H200 (fp8sim.identify on outputs) are what the
    probe recorded there, wherever the probe ran the shape."""
    from fp8sim.engine.kernel import CUBLASLT_BLOCKWISE_SPLIT, CUBLASLT_BLOCKWISE_WGRAD_SPLIT
    checked = 0
    for family, split in (("block128", CUBLASLT_BLOCKWISE_SPLIT),
                          ("block1", CUBLASLT_BLOCKWISE_WGRAD_SPLIT)):
        if not cs.recorded(family, "float32", "H200"):
            continue
        for (m, n, k), s in split.table.items():
            got, source = cs.split_source(family, m, n, k, "float32", "H200")
            if source in ("rule", "table"):
                assert got == s, (family, m, n, k)
                checked += 1
    assert checked > 0


def test_invariance_text_names_card_version_and_ranges():
    text = cs.invariance_text("cublaslt", 128, 16384, "H100", m_max=2048)
    lines = text.splitlines()
    assert lines[0].startswith("cublaslt (tensor, float32 out) N=128 K=16384 on the "
                               "H100 (cuBLASLt 13.1.0, torch 2.11")
    assert lines[1:3] == ["M 1-48: 6 slices", "M 49-63: 5 slices"]
    assert lines[-2] == "M 1024-2048: 1 slice (no split)"
    assert cs.invariance_text("torch-rowwise", 4096, 16384).splitlines()[1:] == [
        "M 1-65536: 1 slice (no split)",
        "one split for every M: rows keep their bits at any batch size"]


def test_neighbours_are_never_interpolated():
    """The dense recording shows the count jumping between neighbouring M, so a shape off
    the recording is refused even where the recorded points around it agree."""
    counts = [cs.cublaslt_slices("tensor", m, 128, 16384, "float32", "H100") for m in
              (48, 49, 63, 64)]
    assert counts[0] == counts[3] != counts[1]  # 6, 5, 5, 6 on the H100 (cuBLASLt 13.1)


def test_invariance_text_claims_nothing_where_nothing_was_recorded():
    text = cs.invariance_text("cublaslt", 17, 131072, "H100", m_max=16)
    assert text.splitlines()[1:] == [
        "M 1-16: not recorded (pass slices=)",
        "not recorded at any M here: whether rows keep their bits is unknown"]


def test_blockwise_m_that_cublaslt_refuses_is_named():
    """cuBLASLt 13.1 runs blockwise scaling only for M a multiple of 4 (the recording's
    every other M failed): inside the split region such an M is refused naming why."""
    assert cs._table("H100", "block128", "float32").m_multiple == 4
    with pytest.raises(ValueError, match=r"^m: cuBLASLt runs block128 scaling only for M a "
                                         r"multiple of 4 .* got M = 6; pass slices="):
        cs.cublaslt_slices("block128", 6, 256, 7168, "float32", "H100")
    assert cs.cublaslt_slices("block128", 8, 256, 7168, "float32", "H100") >= 1


def test_blockwise_invariance_ranges_step_over_the_m_cublaslt_refuses():
    ranges = cs.batch_invariance("cublaslt-blockwise", 256, 7168, "H100", m_max=600)
    assert ranges[0][0] == 1 and ranges[-1][1] == 600
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))  # contiguous
    assert all(s is not None for _, _, s in ranges)  # no "not recorded" at M % 4 != 0
    text = cs.invariance_text("cublaslt-blockwise", 256, 7168, "H100", m_max=600)
    assert text.splitlines()[1].startswith("(cuBLASLt runs block128 scaling only for M a "
                                           "multiple of 4")
