"""Error sweeps over a grid of GEMM cases, run locally or on a Dask cluster.

A grid point (`SweepPoint`) names one random GEMM case and how to simulate it; its
row (`sweep_point`) is a pure function of the point, so the grid can run anywhere:

    >>> rows = sweep([128, 1024], promotes=(0, 128))                  # here
    >>> rows = sweep([128, 1024], promotes=(0, 128), client=client)   # on Dask

and gives the same rows in the same order (no wall times in them: the CSV of a sweep
is byte-identical on any cluster and in any rerun).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fp8sim.analysis.distributed import map_ordered
from fp8sim.analysis.studies import gemm_stats, random_case
from fp8sim.engine.mma import MMAStep

__all__ = ["SweepPoint", "sweep_grid", "sweep_point", "sweep"]

_ENGINE_LOCK = threading.Lock()  # one simulated GEMM at a time per process: the engine
# parallelizes inside a call, and a Dask worker with several task threads must not nest it


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: the random case (sizes, formats, data, seed) and its simulation."""

    m: int
    n: int
    k: int
    promote: int
    a_format: str = "e4m3"
    b_format: str = "e4m3"
    dist: str = "normal"
    scale: str = "unit"
    seed: int = 0
    preset: str | MMAStep = "hopper"
    engine: str = "cpu"


def sweep_grid(k_values: Iterable[int], *, m: int = 16, n: int = 16,
               promotes: Iterable[int] = (0, 128), dists: Iterable[str] = ("normal",),
               formats: Iterable[tuple[str, str]] = (("e4m3", "e4m3"),), scale: str = "unit",
               seed: int = 0, preset: str | MMAStep = "hopper",
               engine: str = "cpu") -> list[SweepPoint]:
    """The grid in the CLI's order: format pairs, then data, promotion and K (innermost).

    Repeated values are dropped (first occurrence kept).
    """
    return [SweepPoint(m, n, k, p, fa, fb, d, scale, seed, preset, engine)
            for fa, fb in dict.fromkeys(formats) for d in dict.fromkeys(dists)
            for p in dict.fromkeys(promotes) for k in dict.fromkeys(k_values)]


def sweep_point(point: SweepPoint) -> dict[str, Any]:
    """The sweep row of one grid point: the case's description and `gemm_stats`.

    The row leaves out `gemm_stats`'s wall time, so it depends on the point alone and a
    sweep's CSV is the same byte for byte wherever and however often it runs.
    """
    p = point
    a, b = random_case(p.m, p.n, p.k, dist=p.dist, a_format=p.a_format, b_format=p.b_format,
                       seed=p.seed, scale=p.scale)
    with _ENGINE_LOCK:
        stats = gemm_stats(a, b, a_format=p.a_format, b_format=p.b_format, promote=p.promote,
                           preset=p.preset, engine=p.engine)
    del stats["seconds"]  # wall time: the one column that would differ from run to run
    name = p.preset if isinstance(p.preset, str) else p.preset.name
    return {"m": p.m, "n": p.n, "k": p.k, "promote": p.promote, "a_format": p.a_format,
            "b_format": p.b_format, "formats": f"{p.a_format} x {p.b_format}",
            "preset": name, "dist": p.dist, "scale": p.scale, "seed": p.seed, **stats}


def sweep(k_values: Iterable[int] | Sequence[SweepPoint], *, client: Any = None,
          on_done: Callable[[SweepPoint], None] | None = None,
          **grid: Any) -> list[dict[str, Any]]:
    """The rows of a sweep, in grid order; on a Dask cluster when `client` is given.

    Args:
        k_values: the K values of `sweep_grid` (with its other arguments as keywords),
            or a ready list of `SweepPoint`s.
        client: a `dask.distributed.Client`: each grid point runs as one task there
            (a worker lost mid-sweep has its tasks rescheduled); None runs them here.
        on_done: called with each point as it finishes (a progress bar).

    Raises:
        ValueError, TypeError: an invalid grid point (from `fp8sim.gemm` and friends).
    """
    k_values = list(k_values)
    if k_values and all(isinstance(x, SweepPoint) for x in k_values):
        if grid:
            raise TypeError(f"sweep: grid keywords {sorted(grid)} given with ready points")
        points = k_values
    else:
        points = sweep_grid(k_values, **grid)
    return map_ordered(sweep_point, points, client=client, on_done=on_done)

