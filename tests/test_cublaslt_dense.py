"""The dense recordings (every M at projection N and K; every token count K at projection M
and N) survive tabulate's run-length encoding and the engine's lookup, gaps included.

Synthetic recordings, so the test does not depend on which card was recorded: each split
count is a made-up function of the shape with runs of every length, and a few points are
left out (a recording cut by its time budget), which must come back unknown, never guessed.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from fp8sim.capture.cublaslt_probe import record, tabulate
from fp8sim.engine import cublaslt_splits as cs


def _count(m: int, n: int, k: int) -> int:
    if k <= 5120 or m * n > 120_000:
        return 1
    return 1 + (m * 7 + k // 1024 + n // 128) % 5


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A tabulated synthetic card: dense M at N = 128, 1024 (all K); dense K (step 16 for
    tensor, 128 for block1) at 128 x 512; holes at every 97th point."""
    rng = np.random.default_rng(3)
    shapes = [s for s in record.dense_forward_shapes() if s[1] in (128, 1024)]
    shapes += [s for s in record.dense_wgrad_shapes(16) if s[:2] == (128, 512)]
    holes = {shapes[i] for i in rng.choice(len(shapes), len(shapes) // 97, replace=False)}
    points = {}
    for m, n, k in shapes:
        if (m, n, k) in holes:
            continue
        for out in tabulate.OUTS:
            points[("tensor", out, m, n, k)] = _count(m, n, k)
            if k % 128 == 0:
                points[("block1", out, m, n, k)] = _count(m, n, k)
    card = tabulate.build_card(points, {"device": "synthetic", "lt_version": 1})
    path = tmp_path_factory.mktemp("splits") / "splits.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"format": 2, "cards": {"H100": card}}, f)
    return path, shapes, holes


@pytest.fixture
def use(synthetic, monkeypatch):
    monkeypatch.setattr(cs, "DATA", synthetic[0])
    cs._data.cache_clear()
    cs._table.cache_clear()
    yield synthetic[1:]
    cs._data.cache_clear()
    cs._table.cache_clear()


@pytest.mark.parametrize("family", ["tensor", "block1"])
def test_dense_points_come_back_and_holes_stay_unknown(use, family):
    shapes, holes = use
    wrong, unknown = [], 0
    for m, n, k in shapes:
        if family == "block1" and k % 128:
            continue
        got, source = cs.split_source(family, m, n, k, "bfloat16", "H100")
        if (m, n, k) in holes and source != "rule":
            unknown += got is None
            if got is not None and source == "dense":
                wrong.append((m, n, k, got, "hole filled"))
        elif got != _count(m, n, k):
            wrong.append((m, n, k, got, _count(m, n, k)))
    assert not wrong, wrong[:5]
    assert unknown > 0


def test_off_the_dense_grid_is_refused_naming_the_range(use):
    with pytest.raises(ValueError, match=r"recorded densely: every M for N in \{128, 1024\}"):
        cs.cublaslt_slices("tensor", 100, 256, 7168, "float32", "H100")
    with pytest.raises(ValueError, match=r"every K \(a multiple of 16, 5120\.\.131072\)"):
        cs.cublaslt_slices("tensor", 128, 512, 7176, "float32", "H100")


def test_runs_are_start_value_pairs():
    assert tabulate._runs([1, 1, 2, 2, 2, 0, 1]) == [0, 1, 2, 2, 5, 0, 6, 1]
    runs = [1, 3, 5, 2, 9, 0, 12, 4]
    assert [cs._run_value(runs, x) for x in (1, 4, 5, 8, 9, 11, 12, 99)] == \
        [3, 3, 2, 2, None, None, 4, 4]


def test_the_committed_points_rebuild_the_committed_data(tmp_path):
    """tests/data's points, tabulated again, give fp8sim's split data byte for byte: the
    two files agree, and a new recording can be added to the points alone."""
    from conftest import DATA

    cards = sorted({k.split("/")[0] for k in np.load(DATA / "cublaslt_splits_points.npz").files
                    if "/" in k})
    args = [a for c in cards for a in ("--card", c, str(DATA / "cublaslt_splits_points.npz"))]
    tabulate.main([*args, "--out", str(tmp_path / "s.json.gz")])
    assert (tmp_path / "s.json.gz").read_bytes() == cs.DATA.read_bytes()
