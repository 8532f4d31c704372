"""What a request costs before it runs, and how far it has got while it runs.

Two guards for the first hour of a new user, shared by the API and the CLI:

* Memory: `check_memory` (`fp8sim._memory`, shared with the floors below the engine)
  compares an estimate of the bytes a request will allocate with the memory the machine
  has available (`available_memory`) and raises `InsufficientMemory` (a `MemoryError`)
  with one line naming the sizes, before anything large is allocated. `fp8sim gemm --m
  1000000 --n 1000000` is refused in well under a second instead of growing until the
  operating system kills it.
* Time: `Progress` is one tqdm bar on stderr over the stages of a request (random data,
  simulated GEMM, exact product, ...), shown only once the request has run for
  `delay` seconds (2 s): quick requests print nothing. The GEMM engine reports to it per
  chunk of output rows (`row_chunks`); each output element is computed on its own, so
  the chunking never changes a bit.

Outside a `Progress`, `fp8sim.gemm` opens its own bar when stderr is a terminal and the
call takes more than 2 s (set ``FP8SIM_PROGRESS=0`` to switch bars off everywhere).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping

from fp8sim._memory import (
    InsufficientMemory,
    available_memory,
    check_large,
    check_memory,
    format_bytes,
)

__all__ = ["InsufficientMemory", "available_memory", "check_memory", "check_large", "format_bytes",
           "gemm_bytes", "engine_seconds", "row_chunks", "Progress", "stage", "tracking"]

DELAY = 2.0
"""Seconds a request runs before its progress bar appears."""

CHUNK_SECONDS = 0.25
"""Target estimated time of one engine chunk when a GEMM is split for progress."""

SPLIT_ABOVE_SECONDS = 1.0
"""Estimated engine time above which a GEMM is run in row chunks (reporting progress)."""

# Conservative multiply-adds per second and thread of the engine's step models, for
# chunk sizes and stage weights only (the 2-core development machine does 8e9 fused).
_RATE = {"fused": 2.5e9, "sequential": 4e9, "exact": 1.5e9}


def gemm_bytes(m: int, n: int, k: int, *, copies: int = 0) -> int:
    """Bytes `fp8sim.gemm` allocates for an (M, K) x (K, N) product.

    The float32 output, the NaN mask and a 16-bit copy (at most 8 bytes an output,
    measured with tracemalloc: 5 to 7.1), plus `copies` bytes of contiguous copies of
    the inputs.
    """
    return 8 * m * n + copies


def engine_seconds(m: int, n: int, k: int, kind: str = "fused", threads: int = 1) -> float:
    """A conservative estimate of the engine's time for M x N x K multiply-adds."""
    return m * n * k / (_RATE[kind] * max(threads, 1))


def row_chunks(m: int, n: int, k: int, *, kind: str = "fused",
               threads: int = 1, tile: int = 64) -> list[tuple[int, int]]:
    """Row ranges [r0, r1) to run the engine on, one piece when it is quick.

    A GEMM estimated above SPLIT_ABOVE_SECONDS is cut into chunks of whole 64-row tiles
    of about CHUNK_SECONDS each, every chunk holding a multiple of `threads` tiles where
    the output has that many, so no thread idles at a chunk's end. Every output element
    is computed from its own row of A and column of B alone, so the cut never changes a
    bit (tests/test_first_hour.py holds this for every epilogue).
    """
    seconds = engine_seconds(m, n, k, kind, threads)
    if seconds <= SPLIT_ABOVE_SECONDS or m <= tile:
        return [(0, m)]
    tile_rows = -(-m // tile)
    tile_cols = -(-n // tile)
    per_row = seconds / tile_rows
    rows = max(1, int(CHUNK_SECONDS / per_row))
    # a multiple of threads tiles per chunk: rows * tile_cols divisible by threads
    step = threads // math.gcd(threads, tile_cols)
    rows = max(step, rows // step * step)
    rows = min(rows, tile_rows)
    return [(r0 * tile, min((r0 + rows) * tile, m)) for r0 in range(0, tile_rows, rows)]


# --------------------------------------------------------------------------- progress

_ACTIVE: contextvars.ContextVar[Progress | None] = contextvars.ContextVar(
    "fp8sim_progress", default=None)


def _bars_enabled() -> bool:
    """False when FP8SIM_PROGRESS=0 switches progress bars off."""
    return os.environ.get("FP8SIM_PROGRESS", "1").strip().lower() not in ("0", "false", "no",
                                                                          "off")


class Progress:
    """One tqdm bar on stderr over the weighted stages of a request.

    The bar appears only after `delay` seconds (quick requests print nothing) and shows
    the share done, the stage and the time left. Work inside reports through `stage`
    and `tracking`, which do nothing when no Progress is active, so the API functions
    report the same way whether the CLI watches them or not.

        with Progress("fp8sim gemm", {"random data": 1.0, "simulated GEMM": 6.0}):
            with stage("random data"):
                ...
    """

    def __init__(self, desc: str, weights: Mapping[str, float], *, delay: float | None = None,
                 file=None, disable: bool | None = False) -> None:
        """weights: estimated cost of each stage (seconds, or any common unit).

        delay: seconds before the bar appears (None: DELAY). disable: False shows the bar
        after the delay; None only when `file` is a terminal.
        """
        self.desc = desc
        self.weights = {name: max(float(w), 0.0) for name, w in weights.items()}
        self.total = sum(self.weights.values()) or 1.0
        self.delay = DELAY if delay is None else delay
        self.file = sys.stderr if file is None else file
        self.disable = True if not _bars_enabled() else disable
        self._bar = None
        self.depth = 0  # stages open: only the outermost moves the bar
        self._done = 0.0  # weight of the finished stages
        self._stage = 0.0  # weight of the current stage
        self._token = None
        self._t0 = 0.0

    def __enter__(self) -> Progress:
        from tqdm import tqdm  # only loaded by requests that report progress

        self._bar = tqdm(total=100.0, desc=self.desc, file=self.file, delay=self.delay,
                         disable=self.disable, leave=False, dynamic_ncols=True,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                                    "[{elapsed}<{remaining}]")
        self._token = _ACTIVE.set(self)
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.reset(self._token)
        self._bar.close()

    def _show(self, position: float) -> None:
        """Moves the bar to `position` (weight units from the start)."""
        pct = min(100.0, 100.0 * position / self.total)
        if pct > self._bar.n:
            self._bar.update(pct - self._bar.n)

    def begin(self, name: str) -> None:
        """Starts a stage; a stage without a weight takes no share of the bar."""
        self._done += self._stage
        self._stage = self.weights.get(name, 0.0)
        label = self.desc if name == self.desc else f"{self.desc} ({name})"
        shown = time.monotonic() - self._t0 >= self.delay  # refresh never before the delay
        self._bar.set_description_str(label, refresh=shown and not self._bar.disable)
        self._show(self._done)

    def advance(self, fraction: float) -> None:
        """The current stage is `fraction` (0..1) done."""
        self._show(self._done + self._stage * min(max(fraction, 0.0), 1.0))


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Marks a stage of the active Progress (a no-op without one); done when the block ends."""
    bar = _ACTIVE.get()
    if bar is None:
        yield
        return
    bar.depth += 1
    try:
        if bar.depth == 1:  # a stage inside a stage (a sweep's grid point) is part of it
            bar.begin(name)
        yield
        if bar.depth == 1:
            bar.advance(1.0)
    finally:
        bar.depth -= 1


@contextlib.contextmanager
def tracking(total: float, desc: str, *, own_bar: bool = True) -> Iterator[Callable[[float], None]]:
    """Yields `tick(done)`: `done` of `total` units of work are finished.

    Inside an active Progress the ticks move its current stage; otherwise, with
    `own_bar`, a bar of its own on stderr, shown only when stderr is a terminal and the
    work has run for DELAY seconds.
    """
    bar = _ACTIVE.get()
    if bar is not None:
        def tick(done: float) -> None:
            if bar.depth <= 1:
                bar.advance(done / total if total else 1.0)
        yield tick
        return
    if not own_bar or not _bars_enabled():
        yield lambda done: None
        return
    with Progress(desc, {desc: total}, disable=None) as own:
        own.begin(desc)
        yield lambda done: own.advance(done / total if total else 1.0)
