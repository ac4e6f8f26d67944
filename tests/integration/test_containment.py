"""Containers are contained, on the real engine: a pids limit, json-file log rotation with a
size cap, and no NET_RAW, for every task container unless the task says otherwise (pids)."""
from __future__ import annotations

import glob
import os
import uuid

import pytest
import requests

from tests.integration.conftest import Cluster, post_task, wait_for, wait_state

pytestmark = pytest.mark.docker

LOG_CAP = 1024 * 1024  # ORCA_LOG_MAX_SIZE for this module, so the writer needs only ~20 MiB
LOG_FILES = 2
NET_RAW_BIT = 1 << 13  # CAP_NET_RAW in /proc/<pid>/status masks


@pytest.fixture(scope="module")
def contained(tmp_path_factory, docker_client, test_image):
    cluster = Cluster(tmp_path_factory.mktemp("contained"), docker_client)
    orca = cluster.start("all", workers=1, ORCA_LOG_MAX_SIZE="1m", ORCA_LOG_MAX_FILES=str(LOG_FILES),
                         ORCA_RESTART_BACKOFF="0")
    yield orca
    cluster.close()


def run(orca, test_image, command: list[str], **fields) -> dict:
    task = {"id": str(uuid.uuid4()), "image": test_image, "command": command, "restart_policy": "no", **fields}
    response = post_task(orca.manager_url, task)
    assert response.status_code == 201, response.text
    return task


def container_of(orca, docker_client, task_id: str):
    running = wait_state(orca.manager_url, task_id, ("running", "completed", "failed"))
    assert running["container_id"], running
    return docker_client.containers.get(running["container_id"])


def output(orca, task_id: str) -> str:
    return requests.get(f"{orca.manager_url}/tasks/{task_id}/logs", timeout=10).text


def output_ending(orca, task_id: str, last: str) -> str:
    """The task's output once it holds `last` (a busy worker may answer a read late)."""
    def holds() -> str | None:
        text = output(orca, task_id)
        return text if last in text else None
    return wait_for(holds, timeout=30, what=f"the output of task {task_id} to hold {last!r}")


def test_every_container_has_a_pids_limit_log_rotation_and_no_net_raw(contained, test_image, docker_client):
    task = run(contained, test_image, ["sleep", "300"])
    host = container_of(contained, docker_client, task["id"]).attrs["HostConfig"]
    assert host["PidsLimit"] == 1024  # ORCA_PIDS_LIMIT's default
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": str(LOG_CAP), "max-file": str(LOG_FILES)}}
    assert "NET_RAW" in host["CapDrop"]
    requests.delete(f"{contained.manager_url}/tasks/{task['id']}", timeout=5)


def test_a_task_may_set_its_own_pids_limit_within_bounds(contained, test_image, docker_client):
    task = run(contained, test_image, ["sleep", "300"], pids=64)
    assert container_of(contained, docker_client, task["id"]).attrs["HostConfig"]["PidsLimit"] == 64
    requests.delete(f"{contained.manager_url}/tasks/{task['id']}", timeout=5)
    refused = post_task(contained.manager_url, {"image": test_image, "pids": 1 << 20})
    assert refused.status_code == 400 and "task.pids" in refused.json()["error"]


def test_a_task_has_no_raw_sockets(contained, test_image):
    probe = "grep CapEff /proc/self/status; arping -c 1 -w 1 -I eth0 127.0.0.1; echo arping=$?"
    task = run(contained, test_image, ["sh", "-c", probe])
    wait_state(contained.manager_url, task["id"], ("completed", "failed"))
    text = output_ending(contained, task["id"], "arping=")
    effective = int(next(line for line in text.splitlines() if line.startswith("CapEff")).split()[1], 16)
    assert effective and not effective & NET_RAW_BIT, text
    assert "Operation not permitted" in text and "arping=0" not in text, text


def test_a_fork_bomb_is_contained_and_the_worker_keeps_working(contained, test_image, docker_client):
    bomb = run(contained, test_image, ["sh", "-c", "b() { b | b & }; b; sleep 300"], pids=48)
    container = container_of(contained, docker_client, bomb["id"])
    # It reaches its limit and stays there: forks beyond it fail.
    wait_for(lambda: "can't fork" in output(contained, bomb["id"]), timeout=30, what="forks refused")
    assert container.stats(stream=False)["pids_stats"]["current"] <= 48
    # The worker still starts, runs and reports another task, and answers its API.
    other = run(contained, test_image, ["sh", "-c", "echo still-here"])
    done = wait_state(contained.manager_url, other["id"], ("completed", "failed"), timeout=60)
    assert done["state"] == "completed" and output_ending(contained, other["id"], "still-here").strip() == "still-here"
    assert requests.get(f"{contained.worker_url(0)}/health", timeout=5).json()["status"] == "ok"
    stopped = requests.delete(f"{contained.manager_url}/tasks/{bomb['id']}", timeout=5)
    assert stopped.status_code == 202
    wait_state(contained.manager_url, bomb["id"], ("completed", "failed"), timeout=60)


def test_output_written_as_fast_as_possible_stays_under_the_log_cap(contained, test_image, docker_client):
    written = 24 * LOG_CAP  # 24 times the size of one log file
    task = run(contained, test_image, ["sh", "-c", f"yes 0123456789abcdef0123456789abcdef | head -c {written}"])
    container = container_of(contained, docker_client, task["id"])
    wait_state(contained.manager_url, task["id"], ("completed",), timeout=120)
    container.reload()
    files = glob.glob(container.attrs["LogPath"] + "*")
    on_disk = sum(os.path.getsize(path) for path in files)
    assert 1 < len(files) <= LOG_FILES, files  # rotated, and no more files than allowed
    assert LOG_CAP <= on_disk <= LOG_FILES * LOG_CAP + 4096, (on_disk, files)
