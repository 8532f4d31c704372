"""The studies' command lines follow the fp8sim CLI's rule: a bad argument is one line on
stderr and exit status 2, found before any work (a study that computes for minutes and
then cannot write its results wastes them)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line ("prog: error: ...") instead of usage + error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def out_dir(text: str) -> Path:
    """An --out folder: created when missing, refused when it is a file or not writable."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got ''")
    d = Path(text)
    if d.exists() and not d.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot create {text!r} ({e.strerror or e})") from None
    if not os.access(d, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {text!r}")
    return d


def out_file(text: str) -> Path:
    """A file the study writes at the end (--json, --plot): its folder must be writable now."""
    path = Path(text)
    if not text.strip() or path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file name, got {text!r}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r} (no writable folder "
                                         f"{str(folder)!r})")
    return path


def positive_int(text: str) -> int:
    """An int >= 1 (sizes, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def fraction(text: str) -> float:
    """A share in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1), got {text!r}")
    return value
