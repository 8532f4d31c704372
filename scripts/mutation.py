"""Plants each bug of tests/mutants.toml in a fresh copy of the repository and runs its tests.

`make mutation` runs this. Every mutant is a one-line change of a real class (a tile
offset, a rounding mode, an epilogue order, ...); the suite must fail on each ("killed").
For each mutant:

1. the checkout's files (tracked and untracked, minus git-ignored ones) are copied into a
   new temporary directory, so nothing built or cached in the checkout leaks in;
2. the original snippet (or one of its alternatives, for versions of the file on branches
   being merged) must occur exactly once in its file, else the list is stale and the run
   fails; it is replaced by the mutated one, which must still compile;
3. the mutant's suite (a named list of test files of `make test`, see the toml) runs with
   `pytest -x -m "not slow"`, NUMBA_CACHE_DIR in the temporary directory (numba caches by
   file name and time stamp and does not track what one jitted module inlined from
   another, so a shared cache could hand a mutant unmutated machine code), a fresh
   hypothesis database and hypothesis's "mutation" profile (tests/conftest.py: no
   shrinking, which takes minutes on the slow reference; a failure is all we need).

Before the mutants, each suite runs once on the unmutated copy: it must pass, or a kill
would mean nothing. The table at the end says which test killed each mutant and how long it
took; the exit status is 1 if any mutant survived, its snippet was not found, or a run
broke. `--check` only verifies that every snippet applies (seconds), `--full` runs the
whole fast suite for every mutant instead of its suite (an audit of the suites' choice).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
LIST = ROOT / "tests" / "mutants.toml"
FULL = ["tests"]


@dataclass
class Mutant:
    """One planted bug: where, what, of which class, and why a test must catch it."""

    id: str
    file: str
    original: str
    mutated: str
    bug_class: str
    why: str
    suite: str
    alternatives: list[tuple[str, str, str]]
    """(file, original, mutated) for other versions of the code, tried in order after the
    first (the same bug where a branch being merged rewrote or moved the line)."""


@dataclass
class Outcome:
    """What happened to one mutant."""

    mutant: Mutant
    status: str  # killed, SURVIVED, STALE, ERROR, TIMEOUT
    seconds: float
    detail: str = ""


def load(path: Path = LIST) -> tuple[list[Mutant], dict[str, list[str]]]:
    """The mutants and the named suites (lists of test paths) of the toml file."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    suites = data["suites"]
    mutants = []
    for entry in data["mutant"]:
        m = Mutant(id=entry["id"], file=entry["file"], original=entry["original"],
                   mutated=entry["mutated"], bug_class=entry["class"], why=entry["why"],
                   suite=entry["suite"],
                   alternatives=[(alt.get("file", entry["file"]), alt["original"], alt["mutated"])
                                 for alt in entry.get("alt", [])])
        if m.suite not in suites:
            raise SystemExit(f"{path}: mutant {m.id}: unknown suite {m.suite!r}")
        if any(o == mu for _, o, mu in [(m.file, m.original, m.mutated), *m.alternatives]):
            raise SystemExit(f"{path}: mutant {m.id}: mutated snippet equals the original")
        mutants.append(m)
    ids = [m.id for m in mutants]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{path}: duplicate mutant ids")
    return mutants, suites


def repo_files(root: Path) -> list[str]:
    """Paths of the checkout's files: tracked, plus untracked ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                         check=True, capture_output=True).stdout.decode()
    return [p for p in out.split("\0") if p and (root / p).is_file()]


def copy_repo(root: Path, files: list[str], dest: Path) -> None:
    """Copies the files into dest (time stamps kept)."""
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def apply(m: Mutant, repo: Path) -> str | None:
    """Plants the mutant in the copy; returns why it cannot be planted, or None."""
    found = []
    for rel, original, mutated in [(m.file, m.original, m.mutated), *m.alternatives]:
        path = repo / rel
        text = path.read_text() if path.is_file() else ""
        found.append(f"{text.count(original)} in {rel}")
        if text.count(original) == 1:
            path.write_text(text.replace(original, mutated))
            try:
                compile(path.read_text(), str(path), "exec")
            except SyntaxError as e:
                return f"mutated file does not compile: {e}"
            return None
    return f"original snippet found {', '.join(found)} (expected once)"


def run_tests(repo: Path, tests: list[str], timeout: float) -> tuple[int | None, str, float]:
    """(pytest exit status or None on timeout, its output, seconds) in the copy."""
    env = dict(os.environ)
    env.update(PYTHONPATH=str(repo), NUMBA_CACHE_DIR=str(repo / ".numba-cache"),
               PYTHONDONTWRITEBYTECODE="1", FP8SIM_HYPOTHESIS_PROFILE="mutation")
    env.pop("FP8SIM_EXAMPLES_SCALE", None)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p", "no:cacheprovider",
           "--no-header", "-W", "ignore::pytest.PytestUnknownMarkWarning", *tests]
    start = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out, time.perf_counter() - start
    return res.returncode, res.stdout + res.stderr, time.perf_counter() - start


_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def first_failure(output: str) -> str:
    """The test that failed first, from pytest's summary."""
    found = _FAILED.findall(output)
    return found[0] if found else "(no FAILED line)"


def run_mutant(m: Mutant, tests: list[str], files: list[str], timeout: float,
               keep: bool) -> Outcome:
    """Copies the repository, plants the mutant, runs its tests."""
    tmp = Path(tempfile.mkdtemp(prefix=f"fp8sim-mutant-{m.id}-"))
    start = time.perf_counter()
    try:
        repo = tmp / "repo"
        copy_repo(ROOT, files, repo)
        problem = apply(m, repo)
        if problem is not None:
            return Outcome(m, "STALE", time.perf_counter() - start, problem)
        status, output, _ = run_tests(repo, tests, timeout)
        seconds = time.perf_counter() - start
        if status is None:
            return Outcome(m, "TIMEOUT", seconds, f"over {timeout:.0f} s")
        if status == 1:
            return Outcome(m, "killed", seconds, first_failure(output))
        if status == 0:
            return Outcome(m, "SURVIVED", seconds, "every test passed")
        tail = " | ".join(output.strip().splitlines()[-3:])
        return Outcome(m, "ERROR", seconds, f"pytest exit {status}: {tail}")
    finally:
        if keep:
            print(f"  kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def baseline(suites: dict[str, list[str]], names: list[str], files: list[str],
             timeout: float) -> bool:
    """Runs each suite once on an unmutated copy; True if all pass."""
    ok = True
    tmp = Path(tempfile.mkdtemp(prefix="fp8sim-mutant-baseline-"))
    try:
        repo = tmp / "repo"
        copy_repo(ROOT, files, repo)
        for name in names:
            status, output, seconds = run_tests(repo, suites[name], timeout)
            print(f"baseline {name:10s} {'pass' if status == 0 else 'FAIL'} {seconds:6.1f} s",
                  flush=True)
            if status != 0:
                ok = False
                print(output[-3000:], file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    """Runs the mutants and prints the table; non-zero exit if any is not killed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ids", nargs="*", help="only these mutants (default: all)")
    p.add_argument("--list", type=Path, default=LIST, help="the mutant list (toml)")
    p.add_argument("--check", action="store_true", help="only check that every snippet applies")
    p.add_argument("--full", action="store_true",
                   help="run the whole fast suite for every mutant instead of its suite")
    p.add_argument("--tests", metavar="PATHS",
                   help="comma-separated test paths to run for every mutant instead of its suite")
    p.add_argument("--no-baseline", action="store_true", help="skip the unmutated runs")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant run")
    p.add_argument("--keep", action="store_true", help="keep the temporary copies")
    args = p.parse_args(argv)

    mutants, suites = load(args.list)
    if args.ids:
        unknown = set(args.ids) - {m.id for m in mutants}
        if unknown:
            p.error(f"unknown mutant ids: {', '.join(sorted(unknown))}")
        mutants = [m for m in mutants if m.id in args.ids]
    if args.full or args.tests:
        tests = args.tests.split(",") if args.tests else FULL
        suites = {name: tests for name in suites}

    if args.check:
        bad = 0
        for m in mutants:
            tmp = Path(tempfile.mkdtemp(prefix="fp8sim-mutant-check-"))
            try:
                for rel in {m.file, *(alt[0] for alt in m.alternatives)}:
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    if (ROOT / rel).is_file():
                        shutil.copy2(ROOT / rel, tmp / rel)
                problem = apply(m, tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(f"{m.id:28s} {'ok' if problem is None else 'STALE: ' + problem}")
            bad += problem is not None
        return 1 if bad else 0

    start = time.perf_counter()
    files = repo_files(ROOT)
    names = sorted({m.suite for m in mutants})
    if not args.no_baseline and not baseline(suites, names, files, args.timeout):
        print("the unmutated suites fail: fix them first", file=sys.stderr)
        return 1
    outcomes = []
    for i, m in enumerate(mutants, 1):
        o = run_mutant(m, suites[m.suite], files, args.timeout, args.keep)
        outcomes.append(o)
        print(f"[{i:2d}/{len(mutants)}] {m.id:28s} {o.status:8s} {o.seconds:6.1f} s  {o.detail}",
              flush=True)

    print()
    print("| mutant | class | result | s | killed by |")
    print("|---|---|---|---|---|")
    for o in outcomes:
        print(f"| {o.mutant.id} | {o.mutant.bug_class} | {o.status} | {o.seconds:.0f} | "
              f"{o.detail} |")
    killed = sum(o.status == "killed" for o in outcomes)
    total = time.perf_counter() - start
    print(f"\n{killed} of {len(outcomes)} mutants killed in {total / 60:.1f} min "
          f"({'whole fast suite' if args.full else 'per-mutant suites'})")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
