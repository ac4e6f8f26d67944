"""Nothing hangs on a pull, with real `python main.py` processes and the real Docker engine:
the image comes from a "registry" on loopback that accepts connections and never answers, so
dockerd's pull hangs for as long as the registry stays open.

- the pull fails the task after ORCA_PULL_TIMEOUT, naming the image;
- stops never wait behind a start stuck in a pull (even with one start thread), neither the
  stop of another task nor the stop of the task being pulled;
- the process shuts down within seconds while a pull hangs.
"""
from __future__ import annotations

import signal
import uuid

import pytest
import requests

from tests.integration.conftest import post_task, wait_for, wait_state
from tests.integration.test_crash_windows import HungRegistry

pytestmark = pytest.mark.docker


def hung_image(registry: HungRegistry) -> str:
    return f"127.0.0.1:{registry.port}/orca-hung-{uuid.uuid4().hex[:12]}:v1"


def submit(orca, image: str, command: list[str] | None = None) -> str:
    task = {"id": str(uuid.uuid4()), "image": image, "restart_policy": "no"}
    if command:
        task["command"] = command
    response = post_task(orca.manager_url, task)
    assert response.status_code == 201, response.text
    return task["id"]


def pulling(orca, registry: HungRegistry, task_id: str, connections: int = 1) -> None:
    """Wait until the worker has the task scheduled and dockerd is pulling from the registry."""
    def check():
        task = requests.get(f"{orca.worker_url(0)}/tasks/{task_id}", timeout=5)
        return task.ok and task.json()["state"] == "scheduled" and registry.connections >= connections
    wait_for(check, timeout=30, what=f"task {task_id} pulling")


def test_a_pull_that_hangs_fails_the_task_after_orca_pull_timeout_naming_the_image(cluster, test_image):
    orca = cluster.start("all", workers=1, ORCA_PULL_TIMEOUT="2")
    with HungRegistry() as registry:
        image = hung_image(registry)
        task_id = submit(orca, image)
        failed = wait_state(orca.manager_url, task_id, ("failed", "completed"), timeout=60)
        assert failed["state"] == "failed", failed
        assert image in failed["error"] and "ORCA_PULL_TIMEOUT" in failed["error"], failed["error"]
        assert registry.connections >= 1  # it really was pulling from there
        # The worker goes on starting other tasks.
        other = submit(orca, test_image, ["true"])
        assert wait_state(orca.manager_url, other, ("completed", "failed"), timeout=30)["state"] == "completed"


def test_stops_never_wait_behind_a_start_stuck_in_a_pull(cluster, test_image):
    orca = cluster.start("all", workers=1, ORCA_START_THREADS="1")  # the one start thread will be stuck
    with HungRegistry() as registry:
        running = submit(orca, test_image, ["sleep", "300"])
        wait_state(orca.manager_url, running, ("running",), timeout=30)
        stuck = submit(orca, hung_image(registry))
        pulling(orca, registry, stuck)
        # The stop of another task goes through at once, and so does the stop of the task
        # whose start is waiting out the pull (it never starts).
        for task_id in (running, stuck):
            assert requests.delete(f"{orca.manager_url}/tasks/{task_id}", timeout=5).status_code == 202
        for task_id in (running, stuck):
            done = wait_state(orca.manager_url, task_id, ("completed", "failed"), timeout=30)
            assert done["state"] == "completed", done
        assert registry.connections >= 1 and not [c for c in cluster.containers() if c.status == "running"]


def test_shutdown_is_prompt_while_a_pull_hangs(cluster, test_image):
    orca = cluster.start("all", workers=1)  # the default ORCA_PULL_TIMEOUT: 300 s
    with HungRegistry() as registry:
        task_id = submit(orca, hung_image(registry))
        pulling(orca, registry, task_id)
        assert orca.signal(signal.SIGTERM, timeout=15) == 0  # fails the test if it takes longer
        assert "worker" in orca.log() and "stopped" in orca.log()
