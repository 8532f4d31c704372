"""The numbered studies in experiments/ run end to end at tiny sizes (smoke tests)."""

import importlib.util
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
STUDIES = sorted(p.name for p in EXPERIMENTS.glob("[0-9][0-9]_*.py"))


def _load(name: str):
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXPERIMENTS / name)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(EXPERIMENTS))
    return mod


def test_studies_exist():
    assert len(STUDIES) >= 1


@pytest.mark.parametrize("name", STUDIES)
def test_study_small(name, tmp_path, capsys):
    mod = _load(name)
    if getattr(mod, "OWN_TEST", None):  # e.g. study 06 needs torch: tested on its own
        pytest.skip(f"tested by {mod.OWN_TEST}")
    rows = mod.main(small=True, out_dir=tmp_path)
    assert rows
    stem = name.removesuffix(".py")
    assert (tmp_path / f"{stem}.csv").stat().st_size > 0
    assert (tmp_path / f"{stem}.png").stat().st_size > 0
    out = capsys.readouterr().out
    if (EXPERIMENTS.parents[1] / "shared" / "golden").exists():
        assert "golden check OK" in out


def test_golden_check_falls_back_to_the_cropped_copies(monkeypatch, tmp_path, capsys):
    common = _load("_common.py")
    monkeypatch.setattr(common, "GOLDEN", tmp_path / "absent")
    res = common.golden_check("gemm_public0.npz", "e4m3_e4m3/positive/K4096", "triton_p0")
    assert res["bits_equal"] and res["cropped"]
    m, n, k = res["shape"]
    assert k == 4096 and m * n > 0
    assert "cropped copy in tests/data/golden" in capsys.readouterr().out
    monkeypatch.setattr(common, "GOLDEN_CROPPED", tmp_path / "absent")
    assert common.golden_check("gemm_public0.npz", "e4m3_e4m3/positive/K4096", "triton_p0") is None


def test_recipes_layer_data_reproduces_the_committed_results():
    """The committed 05 results come from data that does not depend on the ml_dtypes
    version (its float64 -> bfloat16 cast rounds twice up to 0.5, once from 0.6): the
    bfloat16 floor of each committed row is recomputed from `make_layer`'s data."""
    import csv

    mod = _load("05_recipes_layer.py")
    with open(EXPERIMENTS / "results" / "05_recipes_layer.csv") as f:
        rows = list(csv.DictReader(f))
    r0 = rows[0]
    x, w, gy = mod.make_layer(int(r0["m"]), int(r0["k"]), int(r0["n"]))
    names = {v: k for k, v in mod.OUTPUT_NAMES.items()}
    for row in rows:
        a, b = mod._operands(names[row["output"]], x, w, gy)
        exact = a.astype("float64") @ b.astype("float64")
        floor = mod._rel(mod._bf16_output(exact), exact, exact)
        assert f"{floor:.6g}" == row["bf16_floor_fro_rel"], row


@pytest.mark.parametrize(("script", "args", "expected"), [
    ("01_error_vs_k.py", ["--small", "--out", "{file}"], "argument --out: '{file}' is a file"),
    ("run_all.py", ["--small", "--out", "{file}"], "argument --out: '{file}' is a file"),
    ("06_training_whatif.py", ["--tiny", "--out", "{file}"],
     "argument --out: '{file}' is a file"),
    ("06_training_whatif.py", ["--tiny", "--seeds", "3"], "--tiny runs a fixed grid"),
    ("06_training_whatif.py", ["--report-only", "--out", "{tmp}/none"],
     "--report-only: no results to report"),
    ("error_split.py", ["--m", "-4"], "argument --m: expected a positive int, got -4"),
    ("error_split.py", ["--outliers", "2"], "argument --outliers: expected a share in [0, 1)"),
    ("error_split.py", ["--json", "{tmp}/no/such/folder/x.json"], "argument --json: cannot write"),
])
def test_study_command_lines_refuse_bad_arguments_in_one_line_before_any_work(
        tmp_path, script, args, expected):
    """As the fp8sim CLI: exit 2, one line on stderr, before computing (a bad --out used to
    end a finished study in a traceback)."""
    import subprocess

    file = tmp_path / "a_file"
    file.write_text("")
    fill = {"file": str(file), "tmp": str(tmp_path)}
    r = subprocess.run([sys.executable, str(EXPERIMENTS / script),
                        *(a.format(**fill) for a in args)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-400:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected.format(**fill) in lines[0], r.stderr
