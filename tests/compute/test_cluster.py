"""One way to get a cluster: local or an address, one thread per worker, closed on the way out."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from research.compute import SCHEDULER_ENV, describe, get_client, resolve_cluster, worker_threads


def test_resolve_cluster(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert resolve_cluster() == "local"
    assert resolve_cluster("local") == "local"
    assert resolve_cluster("10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert resolve_cluster("tls://sched:8786") == "tls://sched:8786"
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://sched:8786")
    assert resolve_cluster() == "tcp://sched:8786"
    assert resolve_cluster("local") == "local"
    with pytest.raises(ValueError, match="scheduler address"):
        resolve_cluster("my-laptop")


def test_local_cluster_one_thread_per_worker_closed_on_ctrl_c(capsys):
    with pytest.raises(KeyboardInterrupt), get_client("local", n_workers=1, memory_limit="1GiB") as client:
        info = describe(client)
        threads = client.run(worker_threads)
        pids = list(client.run(os.getpid).values())
        raise KeyboardInterrupt
    assert info["workers"] == 1 and info["threads"] == 1
    assert info["memory_limit"] == [2**30]
    assert info["dashboard"] is None or info["dashboard"].startswith("http://127.0.0.1:")
    (seen,) = threads.values()
    assert seen["NUMBA_NUM_THREADS"] == "1" and seen["OMP_NUM_THREADS"] == "1"
    assert seen["TF_NUM_INTRAOP_THREADS"] == "1"
    assert client.status == "closed"
    assert "Dask: 1 worker(s)" in capsys.readouterr().err
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_scheduler_address_from_the_environment(tmp_path):
    """A scheduler started apart; the client finds it through WORKBENCH_DASK_SCHEDULER."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        env_code = (
            "from research.compute import get_client, describe\n"
            "with get_client(announce=False) as c:\n"
            "    print(describe(c)['scheduler'])\n"
        )
        out = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=120,
                             env={**os.environ, SCHEDULER_ENV: cluster.scheduler_address})
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == cluster.scheduler_address


def test_an_in_process_worker_leaves_its_process_thread_settings_alone():
    """A client that registers the plugin on an in-process cluster changes nothing in this process."""
    from distributed import Client, LocalCluster

    from research.compute._plugin import OneThreadPerWorker

    before = {k: os.environ.get(k) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.register_plugin(OneThreadPerWorker(), name="workbench-one-thread")
        assert {k: os.environ.get(k) for k in before} == before


@pytest.mark.parametrize(("given", "expected"), [(None, None), (7.5, 7.5)])
def test_a_remote_scheduler_waits_for_dasks_connect_timeout_unless_told(monkeypatch, given, expected):
    """Without ``timeout=`` the wait for a scheduler is Dask's ``distributed.comm.timeouts.connect``
    (the user's Dask configuration), not a number of the workbench's own."""
    import distributed

    seen: dict = {}

    class Refused(Exception):
        pass

    def fake_client(address, **kwargs):
        seen.update(kwargs, address=address)
        raise Refused(address)

    monkeypatch.setattr(distributed, "Client", fake_client)
    with pytest.raises(Refused):
        get_client("tcp://127.0.0.1:9", announce=False, **({} if given is None else {"timeout": given}))
    assert seen["address"] == "tcp://127.0.0.1:9"
    assert seen.get("timeout", "dask's") == ("dask's" if expected is None else expected)
