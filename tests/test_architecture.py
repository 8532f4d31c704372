"""The package's floors: each module imports only its own floor and the floors below it.

formats -> casts -> engine -> recipes -> analysis -> capture / cli (README, "Architecture");
fp8sim.torch stands on recipes, beside analysis; the private leaf modules at the top
(`_lookup`, `_memory`, `_torch_arrays`) serve every floor. Every `import fp8sim...` of every
module is read from its source, those inside functions too (a late import is still a
dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fp8sim

ROOT = Path(fp8sim.__file__).parent
FLOORS = {"_lookup": 0, "_memory": 0, "_torch_arrays": 0, "formats": 1, "casts": 2,
          "engine": 3, "recipes": 4, "torch": 5, "analysis": 5, "capture": 6, "cli": 6}
TOP = {"__init__", "__main__"}  # the package's front door imports every floor


def _floor(module: str) -> int | None:
    """The floor of a dotted fp8sim module name (None: the package itself)."""
    parts = module.split(".")
    if parts[0] != "fp8sim" or len(parts) == 1 or parts[1] not in FLOORS:
        return None  # the package itself, or a name of its front door (__version__)
    return FLOORS[parts[1]]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every fp8sim import in one source file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("fp8sim")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.startswith("fp8sim"):
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "fp8sim" \
                else [node.module]
            out += [(node.lineno, n) for n in names]
    return out


SOURCES = sorted(p for p in ROOT.rglob("*.py") if p.stem not in TOP or p.parent != ROOT)


def test_every_subpackage_has_a_floor():
    subpackages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in ROOT.glob("*.py")} - TOP
    assert subpackages | modules == set(FLOORS)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_import_only_their_floor_and_below(path):
    rel = path.relative_to(ROOT).with_suffix("")
    mine = FLOORS[rel.parts[0]]
    upward = [f"line {line}: {module}" for line, module in _imports(path)
              if (floor := _floor(module)) is not None and floor > mine]
    assert not upward, f"{rel} (floor {mine}) imports from above: {upward}"
