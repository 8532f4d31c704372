"""Runs independent study tasks locally or as tasks on a Dask cluster, results in order.

Dask (`dask.distributed`) is an optional extra, `pip install fp8sim[dask]`; nothing
here imports it until a scheduler is asked for, so the local path needs none of it.
Every task is a pure function of its argument, so a task that Dask runs twice (after
a worker died under it) gives the same result, and the results come back in the order
of the inputs whatever order the workers finish in: a distributed study's output is
the local one's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["map_ordered", "connect", "parse_scheduler"]

T = TypeVar("T")
R = TypeVar("R")


def _import_distributed():
    """The `distributed` module, or an ImportError that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise ImportError("scheduler: Dask is not installed; pip install 'fp8sim[dask]' "
                          "(or 'dask[distributed]')") from None
    return distributed


def parse_scheduler(scheduler: str) -> tuple[str, int | str]:
    """("local", N) for "local:N", ("file", path) for a scheduler file, else ("address", s).

    Raises:
        ValueError: an empty address or a "local:N" whose N is not a positive integer.
    """
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(f"scheduler: expected 'local:N', a scheduler address "
                         f"(tcp://host:8786) or a scheduler file (.json), got {scheduler!r}")
    s = scheduler.strip()
    if s.startswith("local:") or s == "local":
        n = s.partition(":")[2]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"scheduler: 'local:N' needs a positive number of worker "
                             f"processes, got {scheduler!r}")
        return "local", int(n)
    if s.endswith(".json"):
        return "file", s
    scheme, sep, rest = s.rpartition("://")
    host, colon, port = rest.rpartition(":")
    if not rest or (not sep and not (colon and host and port.isdigit())):  # host:port
        raise ValueError(f"scheduler: expected 'local:N', a scheduler address with a port "
                         f"(tcp://host:8786) or a scheduler file (.json), got {scheduler!r}")
    return "address", s


@contextlib.contextmanager
def connect(scheduler: str, *, threads: int | None = None) -> Iterator[Any]:
    """A `distributed.Client` on `scheduler`, closed (with its LocalCluster) on exit.

    "local:N" starts a LocalCluster of N worker processes with one task thread each
    (the engine parallelizes inside a task) and `threads` engine threads per worker
    (default: this machine's cores shared out, at least one); "path.json" reads a
    scheduler file (`dask scheduler --scheduler-file`, dask-jobqueue); anything else
    is a scheduler address such as "tcp://scheduler-host:8786".
    """
    distributed = _import_distributed()
    kind, where = parse_scheduler(scheduler)
    if kind == "local":
        n = int(where)
        per = threads or max(1, (os.cpu_count() or 1) // n)
        env = {v: str(per) for v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", env=env)
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
    elif kind == "file":
        if not os.path.isfile(where):  # dask would wait for it to appear, silently
            raise ValueError(f"scheduler: no such scheduler file {where!r} (start the "
                             "scheduler first: dask scheduler --scheduler-file FILE)")
        with distributed.Client(scheduler_file=str(where)) as client:
            yield client
    else:
        with distributed.Client(str(where)) as client:
            yield client


def map_ordered(func: Callable[[T], R], items: Sequence[T], *, client: Any = None,
                on_done: Callable[[T], None] | None = None, retries: int = 1) -> list[R]:
    """[func(x) for x in items], locally (client None) or as tasks on a Dask `client`.

    Results are in the order of `items`. `on_done(item)` is called as each item
    finishes (in completion order: for a progress bar). On a cluster, tasks of a
    worker that dies are rescheduled by Dask; `retries` more attempts are allowed for
    a task that raised (an exception that survives them is raised here).
    """
    items = list(items)
    if client is None:
        results = []
        for item in items:
            results.append(func(item))
            if on_done is not None:
                on_done(item)
        return results
    distributed = _import_distributed()
    futures = client.map(func, items, pure=False, retries=retries)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(items)
    try:
        for fut in distributed.as_completed(futures):
            i = index[fut.key]
            results[i] = fut.result()
            if on_done is not None:
                on_done(items[i])
    finally:
        client.cancel([f for f in futures if not f.done()])
    return results
