"""Failure and shutdown: a worker down during dispatch, SIGTERM/SIGINT of real processes."""
from __future__ import annotations

import signal
import threading

import pytest
import requests

from common.config import Config
from main import build_services, serve
from tests.integration.conftest import TERMINAL, free_ports, post_task, wait_for, wait_state

pytestmark = pytest.mark.docker


def test_a_worker_down_at_dispatch_keeps_the_event_queued_until_it_returns(cluster, test_image):
    port = free_ports(2)
    manager = cluster.start("manager", workers=0, ORCA_MANAGER_PORT=str(port), ORCA_WORKER_PORT=str(port + 1),
                            ORCA_WORKERS=f"127.0.0.1:{port + 1}")
    task = post_task(manager.manager_url, {"image": test_image, "command": ["sleep", "60"]}).json()
    # The only worker never answered its checks: declared down, so the task waits unplaced.
    wait_for(lambda: requests.get(f"{manager.manager_url}/nodes", timeout=5).json()[0]["state"] == "down",
             what="the unreachable worker to be declared down")
    still = requests.get(f"{manager.manager_url}/tasks/{task['id']}", timeout=5).json()
    assert still["state"] == "pending" and still["node"] is None

    cluster.start("worker", workers=1, ORCA_MANAGER_PORT=str(port), ORCA_WORKER_PORT=str(port + 1))
    running = wait_state(manager.manager_url, task["id"], ("running",), timeout=15)
    assert running["node"] == f"127.0.0.1:{port + 1}"
    assert len(cluster.containers()) == 1


def test_one_worker_down_sends_its_tasks_to_the_other(cluster, test_image):
    port = free_ports(3)
    cluster.start("worker", workers=1, ORCA_MANAGER_PORT=str(port), ORCA_WORKER_PORT=str(port + 1))
    manager = cluster.start("manager", workers=0, ORCA_MANAGER_PORT=str(port), ORCA_WORKER_PORT=str(port + 2),
                            ORCA_WORKERS=f"127.0.0.1:{port + 2},127.0.0.1:{port + 1}")
    ids = [post_task(manager.manager_url, {"image": test_image, "command": ["true"]}).json()["id"] for _ in range(3)]
    for task_id in ids:
        done = wait_state(manager.manager_url, task_id, TERMINAL)
        assert (done["state"], done["node"]) == ("completed", f"127.0.0.1:{port + 1}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_everything_quickly_and_leaves_task_containers_running(cluster, test_image, signum):
    orca = cluster.start("all", workers=2)
    task = post_task(orca.manager_url, {"image": test_image, "command": ["sleep", "60"]}).json()
    running = wait_state(orca.manager_url, task["id"], ("running",))
    assert orca.signal(signum, timeout=10) == 0  # fails unless it exits within the 10 s deadline
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{orca.manager_url}/tasks", timeout=1)
    assert cluster.docker.containers.get(running["container_id"]).status == "running"
    assert "stopped" in orca.log()


def test_in_process_shutdown_leaves_no_thread_behind(cluster, test_image):
    base = free_ports(3)
    config = Config(manager_port=base, worker_port=base + 1, worker_count=2, worker_name=f"{cluster.prefix}-ip",
                    stats_interval=0.5, store="memory")
    cluster.worker_names.update({f"{cluster.prefix}-ip-0", f"{cluster.prefix}-ip-1"})
    before = set(threading.enumerate())
    stop = threading.Event()
    services = build_services("all", config)
    runner = threading.Thread(target=serve, args=(services, stop))
    runner.start()
    url = f"http://127.0.0.1:{base}"
    wait_for(lambda: requests.get(f"{url}/nodes", timeout=1).ok, what="manager up")
    task = post_task(url, {"image": test_image, "command": ["true"]}).json()
    wait_state(url, task["id"], ("completed",))
    session = requests.Session()
    session.get(f"{url}/tasks", timeout=1)  # a keep-alive connection left open on purpose

    stop.set()
    runner.join(10)
    assert not runner.is_alive(), "serve() did not return within 10 s of the stop"
    left = lambda: {t.name for t in set(threading.enumerate()) - before}  # noqa: E731
    try:
        wait_for(lambda: not left(), timeout=5, what="every thread serve() started to end")
    except pytest.fail.Exception:
        pytest.fail(f"threads left behind: {left()}")
    session.close()
