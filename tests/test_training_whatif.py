"""Study 06 (training what-if) in its tiny CPU mode: the CSV's columns and rows, the plot, the
verdict, and resuming (skipped without torch)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "06_training_whatif.py"
COLUMNS = ["run", "recipe", "accumulator", "promote", "seed", "step", "tokens", "train_loss",
           "val_loss", "device", "params"]


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=600)


def test_tiny_mode_writes_csv_plot_and_verdict(tmp_path):
    res = _run(tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / "training_whatif.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == COLUMNS
    recipes = {r["recipe"] for r in rows}
    assert "bf16" in recipes and len(recipes) >= 3
    runs = {r["run"] for r in rows}
    assert len(rows) == 2 * len(runs)  # two logged steps per run
    assert {r["device"] for r in rows} == {"cpu"}
    assert all(float(r["val_loss"]) > 0 and float(r["train_loss"]) > 0 for r in rows)
    assert len({r["params"] for r in rows}) == 1
    assert (tmp_path / "training_whatif.png").stat().st_size > 10_000
    verdict = (tmp_path / "training_whatif.md").read_text()
    assert "Within DeepSeek-V3's 0.25% of bf16" in verdict and "deepseek-v3" in verdict
    # a rerun finds every run finished and trains nothing
    again = _run(tmp_path)
    assert again.returncode == 0
    assert f"{len(runs)} runs already done, 0 to run" in again.stderr
    with open(tmp_path / "training_whatif.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows)


def test_bad_arguments_exit_2(tmp_path):
    res = _run(tmp_path, "--jobs", "0")
    assert res.returncode == 2 and "--jobs" in res.stderr.strip().splitlines()[-1]


def _study_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("study06", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_expected_seconds_uses_the_settings_slowest_step_else_the_slowest_known():
    mod = _study_module()
    timing = [{"run": "a|x|-|s0", "seconds_per_step": "1.0"},
              {"run": "a|x|-|s1", "seconds_per_step": "2.0"},
              {"run": "b|y|-|s0", "seconds_per_step": "nan"},
              {"run": "c|z|-|s0", "seconds_per_step": "3.0"}]
    assert mod.expected_seconds(timing, "a|x|-", 10) == mod.STARTUP_S + 1.1 * 10 * 2.0
    assert mod.expected_seconds(timing, "b|y|-", 10) == mod.STARTUP_S + 1.1 * 10 * 3.0
    assert mod.expected_seconds([], "a|x|-", 10) == 0.0
    # this invocation's rows (from index 3 on) come first: the device is shared differently
    now = timing + [{"run": "d|w|-|s0", "seconds_per_step": "0.5"}]
    assert mod.expected_seconds(now, "b|y|-", 10, fresh=4) == mod.STARTUP_S + 1.1 * 10 * 0.5
    assert mod.expected_seconds(now, "a|x|-", 10, fresh=4) == mod.STARTUP_S + 1.1 * 10 * 2.0
    assert mod.expected_seconds(now, "d|w|-", 10, fresh=4) == mod.STARTUP_S + 1.1 * 10 * 0.5


def test_a_run_that_cannot_finish_in_the_budget_is_not_started(tmp_path):
    (tmp_path / "training_whatif_timing.csv").write_text(
        "run,finished,seconds_per_step\nbf16|bf16|-|s0,True,1000\n")
    res = _run(tmp_path, "--budget-s", "120")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "bf16|bf16|-|s0 not started: needs about" in res.stderr
    assert not (tmp_path / "training_whatif.csv").exists() or len(
        (tmp_path / "training_whatif.csv").read_text().splitlines()) <= 1


def test_perturbation_spread_is_the_widest_seed_spread_of_the_23_bit_runs():
    sys.path.insert(0, str(ROOT / "experiments"))
    import _whatif_report as rep

    def row(run, tokens, loss):
        recipe, acc, promote, seed = run.split("|")
        return {"run": run, "recipe": recipe, "accumulator": acc, "promote": promote,
                "seed": seed[1:], "tokens": tokens, "val_loss": loss}

    rows = [row("whatif|frac23|0/0/0|s0", 100, 2.0), row("whatif|frac23|128/128/128|s0", 100, 2.2),
            row("whatif|frac23|0/0/0|s1", 100, 3.0), row("whatif|frac23|512/512/512|s1", 100, 3.0),
            row("whatif|frac23|512/512/512|s0", 50, 9.0),  # not the last step
            row("whatif|frac13|0/0/0|s0", 100, 9.0)]  # another accumulator
    assert rep.perturbation_spread(rows) == pytest.approx(0.2 / 2.1)
    assert rep.perturbation_spread(rows[:1] + rows[2:3]) is None


@pytest.mark.parametrize("args, named", [(("--budget-s", "-5"), "--budget-s"),
                                         (("--step-bench", "-1"), "--step-bench"),
                                         (("--only", "nosuch"), "--only")])
def test_bad_budget_step_bench_and_only_exit_2_naming_the_option(tmp_path, args, named):
    res = _run(tmp_path, *args)
    assert res.returncode == 2 and named in res.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "training_whatif.csv").exists()
