"""Issue 11, the first hour of a new user: no traps, own data in, a package people can cite.

Memory refusals before allocating (CLI status 2 in about a second, MemoryError in Python),
progress that never changes a bit, --out folders, sweep's normwise default and labelled
plots, refusals of nonsense arguments, the CLI on the user's own arrays, and the licence,
citation and reproducible figures.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from cli_helpers import cli, one_error_line, run
from conftest import ROOT

import fp8sim
from fp8sim.analysis.studies import gemm_stats, random_case, request_bytes
from fp8sim.engine import budget
from fp8sim.engine.mma import HOPPER

# --------------------------------------------------------------------------- 1. memory

@pytest.mark.parametrize("args, sizes", [
    (["gemm", "--m", "1000000", "--n", "1000000"], "M=1000000 N=1000000 K=4096"),
    (["gemm", "--m", "100000", "--n", "100000"], "M=100000 N=100000"),
    (["gemm", "--k", "100000000"], "K=100000000"),
    (["sweep", "--k-values", "128,1000000000", "--m", "64", "--n", "64"], "K=1000000000"),
])
def test_cli_refuses_what_cannot_fit_in_about_a_second(args, sizes, tmp_path):
    """Before: 78 s and killed by the OS, or status 1 after 10 s. Now: status 2, one line."""
    _, _, _, startup = cli("--version")
    status, out, err, seconds = cli(*args, "--json" if args[0] == "gemm" else "--out",
                                    *([] if args[0] == "gemm" else [str(tmp_path / "s")]))
    line = one_error_line(err)
    assert status == 2 and out == ""
    assert sizes in line and "needs about" in line and "is available" in line
    # the refusal costs about what starting the program costs (nothing is allocated or
    # computed); the margin is relative, so a loaded machine slows both alike
    assert seconds < max(1.0, 1.5 * startup + 0.5) or seconds < 3.0, (seconds, startup)
    assert not any(tmp_path.iterdir())


def test_api_refuses_before_allocating():
    a = np.broadcast_to(np.uint8(0x38), (1_000_000, 64))  # no memory behind these
    b = np.broadcast_to(np.uint8(0x38), (64, 1_000_000))
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match="M=1000000 N=1000000 K=64 needs about"):
        fp8sim.gemm(a, b)
    with pytest.raises(MemoryError, match="random_case: M=1000000"):
        random_case(1_000_000, 1_000_000, 4096)
    with pytest.raises(MemoryError, match="exact_product"):
        from fp8sim.analysis.stats import exact_product
        exact_product(np.broadcast_to(np.float32(1), (1_000_000, 64)),
                      np.broadcast_to(np.float32(1), (64, 1_000_000)))
    with pytest.raises(MemoryError, match="gemm_stats"):
        gemm_stats(a, b)
    assert time.perf_counter() - t0 < 1.0


def test_the_estimate_bounds_what_is_allocated():
    """request_bytes is an upper bound of the measured peak, and not a wild one."""
    m, n, k = 96, 160, 2048
    random_case(8, 8, 64)  # compile and warm up outside the measurement
    gemm_stats(*random_case(8, 8, 64))
    tracemalloc.start()
    try:
        a, b = random_case(m, n, k, dist="normal", scale="tensor")
        gemm_stats(a, b, promote=128)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= request_bytes(m, n, k) <= 4 * peak


def test_available_memory_falls_back(monkeypatch):
    from fp8sim import _memory

    monkeypatch.setattr(_memory, "_meminfo_available", lambda: None)
    monkeypatch.setattr(_memory, "_cgroup_available", lambda: None)
    monkeypatch.setattr(_memory, "_sysconf_available", lambda: 12345)
    assert _memory.available_memory() == 12345
    monkeypatch.setattr(_memory, "_sysconf_available", lambda: None)
    assert _memory.available_memory() is None
    _memory.check_memory(10**30, "anything")  # nothing known: no refusal
    monkeypatch.setattr(_memory, "_meminfo_available", lambda: 8000)
    monkeypatch.setattr(_memory, "_cgroup_available", lambda: 5000)
    assert _memory.available_memory() == 5000
    with pytest.raises(_memory.InsufficientMemory, match="x: needs about 6.0 kB of memory, "
                                                        "5.0 kB is available; smaller"):
        _memory.check_memory(6000, "x:", hint="smaller")


# --------------------------------------------------------------------------- 1. progress

def _cases_for_chunking():
    rng = np.random.default_rng(3)
    m, n, k = 200, 150, 384
    a = fp8sim.encode(rng.standard_normal((m, k), dtype=np.float32))
    b = fp8sim.encode(rng.standard_normal((k, n), dtype=np.float32))
    c = rng.standard_normal((m, n), dtype=np.float32)
    g = -(-k // 128)
    group_a = rng.uniform(0.5, 2, (m, g)).astype(np.float32)
    return a, b, [
        {},
        {"promote": 128},
        {"c": c, "promote": 64},
        {"preset": "ideal"},
        {"preset": "exact"},
        {"scale_a": np.float32(0.5), "scale_b": np.float32(3.0), "scaling": "tensor"},
        {"scale_a": rng.uniform(0.5, 2, (m, 1)).astype(np.float32),
         "scale_b": rng.uniform(0.5, 2, (1, n)).astype(np.float32), "out_dtype": "bfloat16"},
        {"scale_a": group_a, "scale_b": rng.uniform(0.5, 2, (g, 2)).astype(np.float32),
         "promote": 128},
        {"scale_a": group_a, "scale_b": rng.uniform(0.5, 2, (g, n)).astype(np.float32),
         "promote": 128, "scaling": "group-column"},
    ]


def test_chunked_runs_give_the_same_bits(monkeypatch):
    """Row chunks only report progress: every epilogue, C, preset gives identical bits."""
    from fp8sim.engine import _gemm_kernels as kernels

    a, b, settings = _cases_for_chunking()
    whole = [fp8sim.gemm(a, b, **kw) for kw in settings]
    calls = []
    real = kernels.gemm_tiles

    def counting(*args):
        calls.append(args[0].shape[0])
        return real(*args)

    monkeypatch.setattr(budget, "SPLIT_ABOVE_SECONDS", 0.0)
    monkeypatch.setattr(budget, "CHUNK_SECONDS", 1e-9)  # one 64-row tile a chunk
    monkeypatch.setattr(kernels, "gemm_tiles", counting)
    for kw, want in zip(settings, whole, strict=True):
        calls.clear()
        got = fp8sim.gemm(a, b, **kw)
        assert len(calls) >= 2, kw  # it really was cut
        bits = np.uint32 if got.dtype.itemsize == 4 else np.uint16
        assert np.array_equal(got.view(bits), want.view(bits)), kw


def test_row_chunks_cover_the_rows_in_whole_tiles(monkeypatch):
    monkeypatch.setattr(budget, "SPLIT_ABOVE_SECONDS", 0.0)
    monkeypatch.setattr(budget, "CHUNK_SECONDS", 1e-9)
    chunks = budget.row_chunks(1000, 64, 4096, threads=2)
    assert chunks[0][0] == 0 and chunks[-1][1] == 1000
    assert all(r1 == r0n for (_, r1), (r0n, _) in zip(chunks, chunks[1:], strict=False))
    assert all((r1 - r0) % 128 == 0 for r0, r1 in chunks[:-1])  # 2 threads: 2 tiles a chunk
    monkeypatch.undo()
    assert budget.row_chunks(256, 256, 4096) == [(0, 256)]  # quick: one piece


def test_progress_bar_only_after_the_delay():
    out = io.StringIO()
    with budget.Progress("job", {"one": 1.0, "two": 3.0}, file=out, delay=0.0):
        with budget.stage("one"):
            pass
        with budget.stage("two"), budget.tracking(10, "inner") as tick:
            tick(5)
    assert "job (two)" in out.getvalue() and "%" in out.getvalue()
    quiet = io.StringIO()
    with budget.Progress("job", {"one": 1.0}, file=quiet), budget.stage("one"):
        pass  # done well within DELAY
    assert quiet.getvalue() == ""


def test_cli_progress_on_stderr_only(monkeypatch):
    monkeypatch.setattr(budget, "DELAY", 0.0)  # as if the request took more than 2 s
    r = run("gemm", "--m", "64", "--n", "64", "--k", "256", "--json")
    assert r.exit_code == 0
    json.loads(r.stdout)  # stdout stays one JSON object
    assert "fp8sim gemm" in r.stderr and "%" in r.stderr
    monkeypatch.setattr(budget, "DELAY", 2.0)
    r = run("gemm", "--m", "64", "--n", "64", "--k", "256")
    assert r.exit_code == 0 and r.stderr == ""


# --------------------------------------------------------------------------- 2. --out, sweep

def test_out_folders_are_created(tmp_path):
    r = run("gemm", "--m", "8", "--n", "8", "--k", "64", "--out",
            str(tmp_path / "a" / "b" / "D.npy"))
    assert r.exit_code == 0, r.stderr
    assert np.load(tmp_path / "a" / "b" / "D.npy").shape == (8, 8)
    r = run("sweep", "--k-values", "64", "--m", "2", "--n", "2", "--out",
            str(tmp_path / "results" / "sweep"))
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "results" / "sweep.csv").exists()


def _capture_figures(monkeypatch):
    import fp8sim.analysis.plots as plots

    figs = []
    real = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: (figs.append(fig),
                                                                        real(fig, path, **kw)))
    return figs


def test_sweep_plots_the_normwise_error_by_default(tmp_path, monkeypatch):
    figs = _capture_figures(monkeypatch)
    r = run("sweep", "--k-values", "64,128", "--m", "2", "--n", "2", "--out", str(tmp_path / "s"))
    assert r.exit_code == 0, r.stderr
    assert "normwise" in figs[0].axes[0].get_ylabel()
    r = run("sweep", "--k-values", "64,128", "--m", "2", "--n", "2", "--metric", "max_rel_error",
            "--out", str(tmp_path / "s"))
    assert "max" in figs[1].axes[0].get_ylabel()


def test_every_curve_and_marker_is_labelled_and_never_is_named(tmp_path, monkeypatch):
    figs = _capture_figures(monkeypatch)
    r = run("sweep", "--k-values", "256", "--promote", "0", "--promote", "32", "--promote",
            "128", "--m", "2", "--n", "2", "--out", str(tmp_path / "p"))
    assert r.exit_code == 0, r.stderr
    ax = figs[0].axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("never promoted") and "K = 256" in t for t in texts)
    labels = ax.get_legend_handles_labels()[1]
    assert "never promoted (drawn at interval = K)" in labels
    drawn = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
    legend_of = {id(h) for h in ax.get_legend_handles_labels()[0]}
    for line in drawn:  # every line with data is in the legend, or is a labelled ring
        assert id(line) in legend_of or line.get_markerfacecolor() == "none"


# --------------------------------------------------------------------------- 3. refusals

def _codes(m=16, k=64, n=16):
    rng = np.random.default_rng(0)
    return (fp8sim.encode(rng.standard_normal((m, k), dtype=np.float32)),
            fp8sim.encode(rng.standard_normal((k, n), dtype=np.float32)))


@pytest.mark.parametrize("kw, pattern", [
    ({"a_format": "e8m0"}, "^a_format: e8m0 is a scale format"),
    ({"b_format": "float8_e8m0fnu"}, "^b_format: e8m0 is a scale format"),
    ({"a_format": "e4m3fnuz"}, "^a_format: e4m3fnuz is not an operand format"),
    ({"b_format": "e5m2fnuz"}, "^b_format: e5m2fnuz"),
])
def test_non_operand_formats_are_refused(kw, pattern):
    a, b = _codes()
    with pytest.raises(ValueError, match=pattern):
        fp8sim.gemm(a, b, **kw)
    with pytest.raises(ValueError, match=pattern):
        fp8sim.identify(a, b, np.zeros((16, 16), np.float32), **kw)


def test_a_format_contradicting_the_dtype_is_refused():
    a, b = _codes()
    a5 = a.view(ml_dtypes.float8_e5m2)
    with pytest.raises(ValueError, match="^a: array dtype float8_e5m2 contradicts a_format='e4m3'"):
        fp8sim.gemm(a5, b, a_format="e4m3")
    with pytest.raises(ValueError, match="^b: .*b_format='e5m2'"):
        fp8sim.gemm(a, b.view(ml_dtypes.float8_e4m3fn), b_format="e5m2")
    with pytest.raises(ValueError, match="a_format"):
        fp8sim.identify(a5, b, np.zeros((16, 16), np.float32), a_format="e4m3")
    # no format, or the dtype's own, is fine: the dtype carries the format
    want = fp8sim.gemm(a, b, a_format="e5m2")
    for kw in ({}, {"a_format": "e5m2"}, {"a_format": "float8_e5m2"}):
        assert np.array_equal(fp8sim.gemm(a5, b, **kw).view(np.uint32), want.view(np.uint32))


def test_torch_float8_contradicting_the_format_is_refused():
    torch = pytest.importorskip("torch")
    a, b = _codes()
    ta = torch.from_numpy(a).view(torch.float8_e5m2)
    with pytest.raises(ValueError, match="^a: .*a_format='e4m3'"):
        fp8sim.gemm(ta, b, a_format="e4m3")


def test_a_what_if_step_does_not_claim_the_hoppers_bits():
    step = HOPPER.replace(frac_bits=20)
    assert "13" not in step.description and "erified" not in step.description.replace(
        "not verified", "")
    assert "20 fractional bits" in step.description and "not verified" in step.description
    assert not step.verified
    assert HOPPER.replace(name="mine", terms=16).verified is False
    assert HOPPER.replace(name="copy").verified  # a rename changes no arithmetic
    assert HOPPER.replace(frac_bits=20, description="mine").description == "mine"


def test_kernels_are_fp8sim_kernels():
    import fp8sim.engine.kernel as kernel_module

    assert fp8sim.KERNELS is kernel_module.KERNELS
    readme = (ROOT / "README.md").read_text()
    assert "`fp8sim.KERNELS`" in readme and "fp8sim.kernel.KERNELS" not in readme


def test_every_dotted_name_in_the_readme_resolves():
    """`fp8sim.a.b` in the README must exist: users copy these names."""
    import importlib
    import re

    names = set(re.findall(r"`(fp8sim(?:\.[A-Za-z_][A-Za-z0-9_]*)+)", (ROOT / "README.md")
                           .read_text()))
    assert len(names) > 5
    for name in sorted(names):
        parts = name.split(".")
        obj, i = None, len(parts)
        while i > 0:  # longest importable module prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except ImportError:
                i -= 1
        for attr in parts[i:]:
            assert hasattr(obj, attr), f"README names {name}, but {attr} is missing"
            obj = getattr(obj, attr)


# --------------------------------------------------------------------------- 6. citable

def test_licence_and_citation():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "the fp8sim authors" in licence
    assert "license = MIT" in (ROOT / "setup.cfg").read_text()
    cff = _parse_cff((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors", "type", "license", "version"):
        assert cff.get(key), key
    assert cff["license"] == "MIT" and cff["version"] == fp8sim.__version__
    assert cff["type"] == "software"
    assert cff["authors"] and all("name" in a or "family-names" in a for a in cff["authors"])


def _parse_cff(text: str) -> dict:
    """CITATION.cff as data: YAML where PyYAML is installed, else its top-level scalar keys."""
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        return yaml.safe_load(text)
    out: dict = {}
    key = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "-")) and ":" in line:
            key, _, value = line.partition(":")
            out[key] = value.strip().strip('"') or []
        elif key is not None and line.lstrip().startswith("- "):
            item = line.strip()[2:]
            k, _, v = item.partition(":")
            out[key].append({k.strip(): v.strip().strip('"')})
    return out


def test_readme_cites_its_sources():
    text = (ROOT / "README.md").read_text()
    refs = text[text.index("## References"):]
    for needle in ("arXiv:2412.19437", "arXiv:2511.10909", "OCP 8-bit Floating Point",
                   "OCP Microscaling", "cuBLAS"):
        assert needle in refs, needle
    body = text[:text.index("## References")]
    for n in range(1, 6):  # each reference is cited where the README states its facts
        assert f"[{n}]" in body, n


def test_figures_are_reproducible(tmp_path):
    from matplotlib.figure import Figure

    from fp8sim.analysis.plots import error_vs_promote, save_figure

    rows = [{"k": 256, "promote": p, "case": "x", "fro_rel_error": 1e-3 * (1 + p)}
            for p in (0, 32, 128)]
    paths = [save_figure(error_vs_promote(rows, metric="fro_rel_error", series="case"),
                         tmp_path / f"f{i}.png") for i in range(2)]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert b"Software" not in paths[0].read_bytes()
    fig = Figure()
    fig.add_subplot().plot([1, 2])
    svgs = [save_figure(fig, tmp_path / f"f{i}.svg").read_text() for i in range(2)]
    assert svgs[0] == svgs[1] and "<dc:date>" not in svgs[0]


def test_experiment_figures_do_not_depend_on_the_full_captures(monkeypatch, tmp_path, capsys):
    """Without ../shared/golden the stars come from the recorded full-capture statistics."""
    import importlib.util

    exp = ROOT / "experiments"
    sys.path.insert(0, str(exp))
    try:
        spec = importlib.util.spec_from_file_location("_common", exp / "_common.py")
        common = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(common)
    finally:
        sys.path.remove(str(exp))
    monkeypatch.setattr(common, "GOLDEN", tmp_path / "absent")
    res = common.golden_check("gemm_public0.npz", "e4m3_e4m3/positive/K4096", "triton_p0")
    assert res["cropped"] and res["shape"] == (64, 64, 4096)
    assert res["h100_max_rel_error"] == pytest.approx(0.0757, abs=1e-4)
    assert "recorded from the full capture" in capsys.readouterr().out


# --------------------------------------------------------------------------- 7. the checkout

_REPO = Path(__file__).resolve().parents[1]


def test_make_run_ends_by_saying_how_to_get_fp8sim_on_the_path():
    text = (_REPO / "Makefile").read_text()
    recipe = text.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    last = recipe.strip().splitlines()[-1]
    assert "echo" in last and "/bin/activate" in last and "PATH" in last


@pytest.mark.parametrize("path", ["results/sweep.csv", "results/case.npz", "sweep.csv",
                                  "sweep.png", "captures/x.npz", "D.npy", "D.npz"])
def test_what_the_readme_examples_write_is_ignored(path):
    """README examples (`--out results/...`, sweep's default OUT, `--out D.npy`) leave
    `git status` clean; the committed experiments/results stay tracked."""
    if not (_REPO / ".git").exists():
        pytest.skip("not a git checkout")
    check = ["git", "-C", str(_REPO), "check-ignore", "-q", "--no-index"]
    assert subprocess.run([*check, path]).returncode == 0, path
    assert subprocess.run([*check, "experiments/results/x.csv"]).returncode == 1
