"""Sweeps on Dask: the same rows, CSV and plot as the local run, and a worker lost mid-sweep."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from fp8sim.analysis.distributed import connect, map_ordered, parse_scheduler
from fp8sim.analysis.sweep import SweepPoint, sweep, sweep_grid, sweep_point
from fp8sim.engine.mma import HOPPER

distributed = pytest.importorskip("distributed")

# a little of everything a row depends on: formats, data, scaling, presets, promotion, K
GRID = (sweep_grid([32, 96, 1024], m=8, n=8, promotes=(0, 128), dists=("normal", "codes"),
                   formats=(("e4m3", "e5m2"),), scale="tensor", seed=3)
        + [SweepPoint(4, 4, 256, 32, "e5m2", "e5m2", "positive", "unit", 1, p)
           for p in ("ideal", "exact", "ada", HOPPER.replace(frac_bits=20))])
# points that take a while each (~0.5 s), so a worker can be killed while it runs one
SLOW = sweep_grid([16384], m=64, n=64, promotes=(0, 32, 128), dists=("normal", "positive"))


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker processes, one task thread and one engine thread each."""
    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", env=env) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_dask_rows_equal_local_rows(client):
    local = sweep(GRID)
    done = []
    remote = sweep(GRID, client=client, on_done=done.append)
    assert remote == local  # every float equal, rows in grid order
    assert sorted(map(repr, done)) == sorted(map(repr, GRID))
    assert "seconds" not in local[0]


def test_a_worker_killed_mid_sweep_is_survived(client):
    local = [sweep_point(p) for p in SLOW]
    before = {addr: pid for addr, pid in client.run(os.getpid).items()}
    killed = []

    def kill_a_busy_worker(point):
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            pid = before.get(busy[0])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    remote = sweep(SLOW, client=client, on_done=kill_a_busy_worker)
    assert killed, "no worker was busy after the first point: the test did not test"
    assert remote == local
    client.wait_for_workers(2, timeout=30)  # the nanny restarted the killed one
    after = set(client.run(os.getpid).values())
    assert killed[0] not in after and len(after) == 2


def test_map_ordered_keeps_the_input_order(client):
    items = [0.3, 0.0, 0.2, 0.1]
    assert map_ordered(_sleep_and_return, items, client=client) == items
    assert map_ordered(_sleep_and_return, items) == items


def _sleep_and_return(x: float) -> float:
    """Finishes out of order on purpose."""
    time.sleep(x)
    return x


def test_errors_inside_tasks_reach_the_caller(client):
    bad = [SweepPoint(4, 4, 64, 48)]  # promote not a multiple of 32
    with pytest.raises(ValueError, match="promote"):
        sweep(bad, client=client)


def test_cli_scheduler_writes_the_same_csv_and_png(client, tmp_path):
    from test_cli import run

    args = ["sweep", "--k-values", "64,512", "--m", "4", "--n", "4", "--promote", "0",
            "--promote", "32", "--dist", "normal", "--dist", "codes"]
    r = run(*args, "--out", str(tmp_path / "here"))
    assert r.exit_code == 0, r.stderr
    r = run(*args, "--out", str(tmp_path / "there"), "--scheduler", client.scheduler.address)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "here.csv").read_bytes() == (tmp_path / "there.csv").read_bytes()
    assert (tmp_path / "here.png").read_bytes() == (tmp_path / "there.png").read_bytes()


def test_local_n_starts_n_worker_processes_sharing_the_cores():
    with connect("local:2", threads=1) as c:
        info = c.run(lambda: (os.getpid(), os.environ["NUMBA_NUM_THREADS"]))
        assert len({pid for pid, _ in info.values()}) == 2 and os.getpid() not in info
        assert {threads for _, threads in info.values()} == {"1"}
        assert sweep(GRID[:2], client=c) == sweep(GRID[:2])


@pytest.mark.parametrize("address", ["local:0", "local:x", "", "local"])
def test_bad_scheduler_addresses(address):
    with pytest.raises(ValueError, match="scheduler"):
        parse_scheduler(address)


def test_cli_bad_scheduler_is_a_usage_error(tmp_path):
    from test_cli import assert_usage_error, run

    r = run("sweep", "--k-values", "64", "--m", "2", "--n", "2", "--out",
            str(tmp_path / "x"), "--scheduler", "local:0")
    assert_usage_error(r)
    assert "--scheduler" in r.stderr


def test_cli_without_dask_says_how_to_install_it(tmp_path, monkeypatch):
    from test_cli import assert_usage_error, run

    monkeypatch.setitem(sys.modules, "distributed", None)
    r = run("sweep", "--k-values", "64", "--m", "2", "--n", "2", "--out",
            str(tmp_path / "x"), "--scheduler", "local:1")
    assert_usage_error(r)
    assert "fp8sim[dask]" in r.stderr


def test_parse_scheduler_kinds():
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://scheduler-host:8786") == ("address", "tcp://scheduler-host:8786")
    assert parse_scheduler("/shared/scheduler.json") == ("file", "/shared/scheduler.json")
