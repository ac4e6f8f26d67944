"""The user story of the core issue, against real processes and the real Docker engine."""
from __future__ import annotations

import time

import pytest
import requests

from tests.integration.conftest import TERMINAL, post_task, wait_for, wait_state

pytestmark = pytest.mark.docker


def test_post_runs_a_container_and_delete_stops_and_removes_it(orca, cluster, test_image):
    response = post_task(orca.manager_url, {"image": test_image, "name": "web",
                                            "command": ["sh", "-c", "echo $GREETING; sleep 60"],
                                            "env": {"GREETING": "hi"}})
    assert response.status_code == 201
    task = response.json()
    assert task["state"] == "pending"
    assert response.headers["Location"] == f"/tasks/{task['id']}"

    running = wait_state(orca.manager_url, task["id"], ("running",), timeout=5)
    assert running["node"] in (orca.worker_address(0), orca.worker_address(1))
    container = cluster.docker.containers.get(running["container_id"])
    assert container.status == "running"
    assert container.labels["orca.task_id"] == task["id"]
    assert container.labels["orca.worker"].startswith(cluster.prefix)
    assert "GREETING=hi" in container.attrs["Config"]["Env"]
    assert running["started_at"].endswith("Z")

    stopped = requests.delete(f"{orca.manager_url}/tasks/{task['id']}", timeout=5)
    assert stopped.status_code == 202
    done = wait_state(orca.manager_url, task["id"], TERMINAL)
    assert done["state"] == "completed"
    assert done["finished_at"] is not None
    assert not cluster.containers(), "the stopped task's container should be removed"


def test_tasks_go_round_robin_over_two_workers(orca, test_image):
    ids = [post_task(orca.manager_url, {"image": test_image, "command": ["sleep", "60"]}).json()["id"]
           for _ in range(4)]
    nodes = [wait_state(orca.manager_url, i, ("scheduled", "running"))["node"] for i in ids]
    first, second = orca.worker_address(0), orca.worker_address(1)
    assert nodes == [first, second, first, second]
    listed = requests.get(f"{orca.manager_url}/tasks", timeout=5).json()
    assert {t["id"] for t in listed} == set(ids)


@pytest.mark.parametrize("command, state, exit_code", [
    (["true"], "completed", 0),
    (["sh", "-c", "echo bye; exit 3"], "failed", 3),
])
def test_exit_code_decides_completed_or_failed(orca, test_image, command, state, exit_code):
    # No restarts: this is about the exit code (restarts with backoff are tested in test_reliability).
    task = post_task(orca.manager_url, {"image": test_image, "command": command, "restart_policy": "no"}).json()
    done = wait_state(orca.manager_url, task["id"], TERMINAL)
    assert (done["state"], done["exit_code"]) == (state, exit_code)
    assert done["finished_at"] is not None
    if state == "failed":
        assert "3" in done["error"]


def test_an_image_that_cannot_be_had_fails_in_bounded_time_naming_it(orca):
    image = "127.0.0.1:1/orca/missing:1"  # a registry on a closed loopback port: refused at once
    started = time.monotonic()
    task = post_task(orca.manager_url, {"image": image}).json()
    done = wait_state(orca.manager_url, task["id"], TERMINAL, timeout=40)
    assert done["state"] == "failed"
    assert image in done["error"]
    assert time.monotonic() - started < 40
    # the worker that tried is still serving
    assert requests.get(f"{orca.worker_url(0)}/stats", timeout=5).ok


def test_worker_stats_and_manager_nodes(orca):
    stats = requests.get(f"{orca.worker_url(0)}/stats", timeout=5).json()
    assert {"hostname", "cpu_count", "cpu_percent", "load_avg", "memory", "disk", "task_count"} <= set(stats)
    assert stats["cpu_count"] >= 1 and len(stats["load_avg"]) == 3
    assert set(stats["memory"]) == {"total", "available", "used", "percent"}
    assert set(stats["disk"]) == {"total", "used", "free", "percent"}

    def both_up():
        nodes = requests.get(f"{orca.manager_url}/nodes", timeout=5).json()
        return nodes if [n["state"] for n in nodes] == ["up", "up"] else None

    nodes = wait_for(both_up, what="both nodes up")
    assert {n["name"] for n in nodes} == {orca.worker_address(0), orca.worker_address(1)}
    for node in nodes:
        assert node["cores"] >= 1 and node["memory"] > 0 and node["disk"] > 0
        assert node["stats"]["hostname"] and node["last_seen"]


def test_worker_api_directly(orca, test_image):
    response = requests.post(f"{orca.worker_url(1)}/tasks", json={"task": {"image": test_image, "command": ["sleep", "30"]}},
                             timeout=5)
    assert response.status_code == 201
    task_id = response.json()["id"]
    running = wait_state(orca.worker_url(1), task_id, ("running",))
    assert running["node"] == orca.worker_address(1) or running["node"].startswith("itest-")
    again = requests.post(f"{orca.worker_url(1)}/tasks", json={"task": {"id": task_id, "image": test_image}}, timeout=5)
    assert again.status_code == 200 and again.json()["container_id"] == running["container_id"]
    assert requests.get(f"{orca.worker_url(1)}/stats", timeout=5).json()["task_count"] == 1
    assert requests.delete(f"{orca.worker_url(1)}/tasks/{task_id}", timeout=5).status_code == 202
    assert wait_state(orca.worker_url(1), task_id, TERMINAL)["state"] == "completed"
