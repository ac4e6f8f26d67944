"""Logs (read and follow), wait, and run-to-completion against real `python main.py`
processes and the real Docker engine."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.integration.conftest import TERMINAL, free_ports, post_task, wait_for, wait_state

pytestmark = pytest.mark.docker

TICKS = ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.4; done"]


def follow(url: str, task_id: str, **params) -> dict:
    """GET .../logs?follow=true; return {"lines": [(seconds since start, line)], "ended": seconds}."""
    started = time.monotonic()
    lines = []
    with requests.get(f"{url}/tasks/{task_id}/logs", params={"follow": "true", **params}, stream=True,
                      timeout=(2, 30)) as response:
        assert response.status_code == 200, response.text
        for line in response.iter_lines():
            lines.append((time.monotonic() - started, line.decode()))
    return {"lines": lines, "ended": time.monotonic() - started}


def in_thread(func, *args, **kwargs) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run():
        try:
            result["value"] = func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            result["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


# Prints line i, then waits for /step<i> (made by the test with `docker exec`) before going on.
STEPPED = ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; while [ ! -e /step$i ]; do sleep 0.05; done; done"]


def test_follow_sees_lines_as_they_are_written_and_ends_when_the_task_exits(orca, docker_client, test_image):
    """Each line reaches the follower before the container may write the next one (the test
    holds it back), so nothing waits for the end or for a buffer to fill; the stream ends by
    itself when the container exits."""
    task = post_task(orca.manager_url, {"image": test_image, "command": STEPPED, "restart_policy": "no"}).json()
    # followed at once: the task is pending or scheduled, and the follow waits for it
    with requests.get(f"{orca.manager_url}/tasks/{task['id']}/logs", params={"follow": "true"}, stream=True,
                      timeout=(2, 30)) as response:
        assert response.status_code == 200, response.text
        lines = response.iter_lines()
        container = None
        for i in range(1, 6):
            assert next(lines).decode() == f"line {i}"
            if container is None:
                container = docker_client.containers.get(
                    wait_state(orca.manager_url, task["id"], ("running",))["container_id"])
            assert container.exec_run(["touch", f"/step{i}"]).exit_code == 0
        assert list(lines) == [], "the stream ends, with nothing more, when the container exits"
    done = wait_state(orca.manager_url, task["id"], TERMINAL, timeout=5)
    assert (done["state"], done["exit_code"]) == ("completed", 0)


def test_follow_on_the_worker_directly_ends_at_exit(orca, test_image):
    task = post_task(orca.manager_url, {"image": test_image, "command": TICKS, "restart_policy": "no"}).json()
    node = wait_state(orca.manager_url, task["id"], ("scheduled", "running"))["node"]
    # The manager records the placement before it sends it: wait until the worker has the task.
    wait_for(lambda: requests.get(f"http://{node}/tasks/{task['id']}", timeout=5).ok, what="the worker to have the task")
    streamed = follow(f"http://{node}", task["id"], tail="2")
    lines = [line for _, line in streamed["lines"]]
    assert lines[-1] == "line 5" and len(lines) >= 2 and lines == sorted(lines)


def test_follow_waits_for_a_task_that_no_worker_has_yet(cluster, test_image):
    base = free_ports(2)
    manager = cluster.start("manager", workers=0, ORCA_MANAGER_PORT=str(base), ORCA_WORKER_PORT=str(base + 1),
                            ORCA_WORKERS=f"127.0.0.1:{base + 1}")
    task = post_task(manager.manager_url, {"image": test_image, "command": TICKS, "restart_policy": "no"}).json()
    thread, result = in_thread(follow, manager.manager_url, task["id"])
    # The manager has given up reaching the worker (declared down) and the follow still holds on.
    wait_for(lambda: requests.get(f"{manager.manager_url}/nodes", timeout=5).json()[0]["state"] == "down",
             what="the missing worker to be declared down")
    assert thread.is_alive(), f"the follow gave up on a pending task: {result}"
    assert requests.get(f"{manager.manager_url}/tasks/{task['id']}", timeout=5).json()["state"] == "pending"

    cluster.start("worker", workers=1, ORCA_MANAGER_PORT=str(base), ORCA_WORKER_PORT=str(base + 1),
                  ORCA_WORKER_NAME=f"{cluster.prefix}-late")
    thread.join(30)
    assert not thread.is_alive() and "error" not in result, result
    assert [line for _, line in result["value"]["lines"]] == [f"line {i}" for i in range(1, 6)]


def test_logs_stay_readable_after_the_end_with_tail_and_stream(orca, test_image):
    # stdout and stderr are separate pipes: Docker orders them by arrival, so space the writes
    command = ["sh", "-c", "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2"]
    task = post_task(orca.manager_url, {"image": test_image, "command": command, "restart_policy": "no"}).json()
    wait_state(orca.manager_url, task["id"], ("completed",))
    url = f"{orca.manager_url}/tasks/{task['id']}/logs"

    def logs(**params) -> str:
        response = requests.get(url, params=params, timeout=5)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
        return response.text
    assert logs() == "out1\nerr1\nout2\n"
    assert logs(tail="1") == "out2\n"
    assert logs(stream="stderr") == "err1\n"
    assert logs(stream="stdout", tail="all") == "out1\nout2\n"
    assert logs(follow="true") == "out1\nerr1\nout2\n"  # a finished task: everything, then the end
    bad = requests.get(url, params={"tail": "-3"}, timeout=5)
    assert bad.status_code == 400 and "tail" in bad.json()["error"]


def test_wait_on_a_running_task_returns_when_it_ends(orca, docker_client, test_image):
    command = ["sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done"]
    task = post_task(orca.manager_url, {"image": test_image, "command": command}).json()
    container = docker_client.containers.get(wait_state(orca.manager_url, task["id"], ("running",))["container_id"])
    # A wait of up to 300 s, with a client deadline of 30 s: it must return because the task ended.
    thread, result = in_thread(requests.get, f"{orca.manager_url}/tasks/{task['id']}/wait",
                               params={"timeout": 300}, timeout=30)
    still = requests.get(f"{orca.manager_url}/tasks/{task['id']}/wait", params={"timeout": 0}, timeout=10).json()
    assert (still["done"], still["task"]["state"]) == (False, "running")
    assert container.exec_run(["touch", "/go"]).exit_code == 0
    thread.join(40)
    assert "error" not in result, result
    response = result["value"]
    body = response.json()
    assert response.status_code == 200
    assert (body["done"], body["timed_out"], body["task"]["state"]) == (True, False, "completed")


def test_wait_times_out_and_says_so(orca, test_image):
    task = post_task(orca.manager_url, {"image": test_image, "command": ["sleep", "60"]}).json()
    wait_state(orca.manager_url, task["id"], ("running",))
    body = requests.get(f"{orca.manager_url}/tasks/{task['id']}/wait", params={"timeout": 0.5}, timeout=10).json()
    assert (body["done"], body["timed_out"], body["task"]["state"]) == (False, True, "running")
    bad = requests.get(f"{orca.manager_url}/tasks/{task['id']}/wait", params={"timeout": "forever"}, timeout=5)
    assert bad.status_code == 400 and "timeout" in bad.json()["error"]


def test_run_to_completion_answers_with_exit_code_and_output(orca, test_image):
    command = ["sh", "-c", "echo hello; sleep 0.1; echo oops >&2; exit 3"]
    response = requests.post(f"{orca.manager_url}/tasks", params={"wait": 30}, timeout=40,
                             json={"task": {"image": test_image, "command": command, "restart_policy": "no"}})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"] == f"/tasks/{body['task']['id']}"
    assert (body["done"], body["timed_out"], body["exit_code"]) == (True, False, 3)
    assert body["task"]["state"] == "failed"
    assert body["output"] == {"text": "hello\noops\n", "bytes": 11, "truncated": False, "cut": None}


def test_run_to_completion_keeps_the_end_of_long_output(orca, test_image):
    command = ["sh", "-c", "seq 1 30000"]  # 168894 bytes
    body = requests.post(f"{orca.manager_url}/tasks", params={"wait": 30}, timeout=40,
                         json={"task": {"image": test_image, "command": command, "restart_policy": "no"}}).json()
    assert (body["done"], body["exit_code"]) == (True, 0)
    output = body["output"]
    assert (output["bytes"], output["truncated"], output["cut"]) == (168894, True, "head")
    assert len(output["text"]) <= 64 * 1024 and output["text"].endswith("29999\n30000\n")


def test_run_to_completion_that_outlasts_its_wait(orca, test_image):
    response = requests.post(f"{orca.manager_url}/tasks", params={"wait": 1}, timeout=10,
                             json={"task": {"image": test_image, "command": ["sh", "-c", "echo started; sleep 60"]}})
    body = response.json()
    assert (response.status_code, body["done"], body["timed_out"], body["exit_code"]) == (201, False, True, None)
    assert body["task"]["state"] in ("scheduled", "running")
    bad = requests.post(f"{orca.manager_url}/tasks", params={"wait": -1}, timeout=5, json={"task": {"image": test_image}})
    assert bad.status_code == 400 and "wait" in bad.json()["error"]
    wait_for(lambda: requests.delete(f"{orca.manager_url}/tasks/{body['task']['id']}", timeout=5).status_code == 202,
             what="the task to be stopped")
