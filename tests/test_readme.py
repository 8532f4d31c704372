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


CHUNKS = 4
"""The runnable lines are spread over this many tests, so pytest-xdist runs them at once."""


def _runnable() -> list[str]:
    return [c for c in _sh_lines()
            if not (_needs_gpu(c) or _needs_cluster(c) or c.startswith("make "))]


def _chunks() -> list[list[str]]:
    """The runnable lines in CHUNKS groups, each run in order in one folder: a line that
    names a file an earlier line names (results/case.npz) joins that line's group."""
    groups: list[list[str]] = [[] for _ in range(CHUNKS)]
    owner: dict[str, int] = {}
    for i, command in enumerate(_runnable()):
        paths = [w for w in shlex.split(command) if "/" in w and "." in w.rsplit("/", 1)[-1]]
        g = next((owner[p] for p in paths if p in owner), i % CHUNKS)
        owner.update(dict.fromkeys(paths, g))
        groups[g].append(command)
    return groups


def test_the_chunks_hold_every_runnable_line_once():
    assert sorted(sum(_chunks(), [])) == sorted(_runnable())
    assert len(_runnable()) >= 15


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_every_sh_example_runs(chunk, tmp_path):
    """One folder for a group of lines, in order: later lines read what earlier ones wrote."""
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
    for command in _chunks()[chunk]:
        r = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=SECONDS)
        assert r.returncode == 0, f"{command!r} exited {r.returncode}: {r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr, command
        for out in re.findall(r"--out (results/\S+)", command):  # results/sweep: .csv
            assert list(tmp_path.glob(out + "*")), out


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
