"""The README's examples run, from a temporary folder, as a new user would type them.

Every line of every ```sh block runs with a time limit, except `fp8sim capture` (it needs
an NVIDIA GPU) and the `make` targets of the set-up block (`make test` would run this
suite inside itself; the newcomer walk-through runs them). The temporary folder holds a
link to the checkout's tests/data, as a fresh clone has it. The Python blocks that stand
alone run too.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT

README = (ROOT / "README.md").read_text()
SECONDS = 120


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _sh_lines() -> list[str]:
    lines = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            command = line.split(" #")[0].strip()
            if command:
                lines.append(command)
    return lines


def _needs_gpu(command: str) -> bool:
    return command.startswith("fp8sim capture") or "--engine gpu" in command


def _needs_cluster(command: str) -> bool:
    """A Dask scheduler elsewhere: never contacted from a test (only local:N runs here)."""
    return "--scheduler" in command and "--scheduler local:" not in command


def test_the_readme_has_examples():
    lines = _sh_lines()
    assert len(lines) >= 15
    assert any(line.startswith("fp8sim gemm --a") for line in lines)
    assert sum(map(_needs_gpu, lines)) >= 1
    assert any("--scheduler local:" in line for line in lines)


def test_every_sh_example_runs(tmp_path):
    """One folder for all lines, in order: later lines read what earlier ones wrote."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "data").symlink_to(ROOT / "tests" / "data")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "fp8sim"  # the console script, running this checkout's fp8sim
    launcher.write_text(f"#!{sys.executable}\nimport sys\nfrom fp8sim.cli import main\n"
                        "if __name__ == '__main__':  # Dask's spawned workers import it\n"
                        "    sys.exit(main())\n")
    launcher.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ran = []
    for command in _sh_lines():
        if _needs_gpu(command) or _needs_cluster(command) or command.startswith("make "):
            continue
        r = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=SECONDS)
        assert r.returncode == 0, f"{command!r} exited {r.returncode}: {r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr, command
        ran.append(command)
    assert len(ran) >= 15
    assert (tmp_path / "results" / "sweep.csv").exists()
    assert (tmp_path / "results" / "D.npy").exists()


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples_that_stand_alone_run(index, tmp_path, monkeypatch):
    code = _blocks("python")[index]
    if "my_kernel" in code or "make_inputs" in code:
        pytest.skip("an illustration with the reader's own kernel")
    if "SLURMCluster" in code:
        pytest.skip("needs a SLURM cluster (dask-jobqueue)")
    if "import torch" in code:
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md python block {index}", "exec"), {})
