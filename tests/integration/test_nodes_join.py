"""Nodes at runtime against real processes and the real engine: workers started later join
the manager with ORCA_MANAGER_URL and take work; a task that fits nowhere waits with the
reason and starts when a node with room joins; constraints hold; a drain moves a plain
task and completes; a removed node stays gone until its worker restarts."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import requests

from tests.integration.conftest import ROOT, post_task, wait_for, wait_state

SLEEPER = ["sh", "-c", "sleep 300"]


def start_manager(cluster):
    return cluster.start("manager", workers=0)


def join(cluster, manager, capacity: str, labels: str):
    """Start a worker that joins `manager`; return (process, node name) once the node is up."""
    worker = cluster.start("worker", workers=1, ORCA_MANAGER_URL=manager.manager_url, ORCA_NODE_CAPACITY=capacity,
                           ORCA_NODE_LABELS=labels)
    name = worker.env["ORCA_WORKER_NAME"]
    wait_for(lambda: node(manager, name).get("status") == "up", what=f"node {name} to join and be up")
    return worker, name


def node(manager, name: str) -> dict:
    answer = requests.get(f"{manager.manager_url}/nodes/{name}", timeout=5)
    return answer.json() if answer.ok else {}


def reason(manager, task_id: str) -> str | None:
    return requests.get(f"{manager.manager_url}/tasks/{task_id}", timeout=5).json()["pending_reason"]


def orca_cli(manager, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args, "--manager", manager.manager_url], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_a_task_that_fits_nowhere_waits_with_the_reason_until_a_node_with_room_joins(cluster, test_image):
    manager = start_manager(cluster)
    zone_a = [{"label": "zone", "op": "==", "value": "a"}]
    task = post_task(manager.manager_url, {"image": test_image, "command": SLEEPER, "cpu": 2,
                                           "constraints": zone_a}).json()
    wait_for(lambda: reason(manager, task["id"]) == "no node can take it: there are no nodes", what="no nodes")

    _, small = join(cluster, manager, "cpu=1", "zone=a")
    wait_for(lambda: reason(manager, task["id"]) == "no node can take it: 1 lacks cpu (needs 2.0)",
             what="the reason to name cpu")
    _, elsewhere = join(cluster, manager, "cpu=4,memory=2g", "zone=b")
    wait_for(lambda: reason(manager, task["id"]) == ("no node can take it: 1 fails constraint zone==a, "
                                                     "1 lacks cpu (needs 2.0)"), what="both reasons")
    assert requests.get(f"{manager.manager_url}/tasks/{task['id']}", timeout=5).json()["state"] == "pending"

    _, roomy = join(cluster, manager, "cpu=4", "zone=a,disk=ssd")
    running = wait_state(manager.manager_url, task["id"], ("running",), timeout=30)
    assert running["node"] == roomy and running["pending_reason"] is None
    joined = node(manager, roomy)
    assert joined["labels"] == {"zone": "a", "disk": "ssd"} and joined["capacity"]["cpu"] == 4.0
    assert joined["allocated"]["cpu"] == 2.0 and joined["id"]
    assert node(manager, elsewhere)["capacity"]["memory"] == 2 << 30

    # More tasks held to zone b all land on the one node there.
    others = [post_task(manager.manager_url, {"image": test_image, "command": SLEEPER,
                                              "constraints": [{"label": "zone", "op": "!=", "value": "a"}]}).json()
              for _ in range(2)]
    assert {wait_state(manager.manager_url, t["id"], ("running",), timeout=30)["node"] for t in others} == {elsewhere}


def test_a_drain_moves_a_plain_task_and_completes_and_a_removed_node_stays_gone(cluster, test_image):
    manager = start_manager(cluster)
    first, first_name = join(cluster, manager, "", "zone=a")
    task = post_task(manager.manager_url, {"image": test_image, "command": SLEEPER}).json()
    before = wait_state(manager.manager_url, task["id"], ("running",), timeout=30)
    assert before["node"] == first_name and before["attempt"] == 1
    second, second_name = join(cluster, manager, "", "zone=b")
    node_id = node(manager, first_name)["id"]

    drained = orca_cli(manager, "node", "drain", first_name, "--deadline", "120")
    assert drained.returncode == 0 and first_name in drained.stdout, drained.stderr

    def moved():
        now = requests.get(f"{manager.manager_url}/tasks/{task['id']}", timeout=5).json()
        return now if now["state"] == "running" and now["node"] == second_name else None
    after = wait_for(moved, 45, what="the task to run on the other node")
    assert after["attempt"] == 2 and after["restart_count"] == 0
    # Stop first, then move: the workers' records carry the engine's own times (Docker's
    # FinishedAt of the old container, read when it was stopped and removed; StartedAt of
    # the new one), one engine and one clock: the old copy had ended before the new started.
    old = requests.get(f"{first.worker_url(0)}/tasks/{task['id']}", timeout=5).json()
    new = requests.get(f"{second.worker_url(0)}/tasks/{task['id']}", timeout=5).json()
    assert (old["attempt"], old["state"], new["attempt"], new["state"]) == (1, "completed", 2, "running"), (old, new)
    assert old["finished_at"] and new["started_at"]
    assert _utc(old["finished_at"]) <= _utc(new["started_at"]), (old["finished_at"], new["started_at"])
    wait_for(lambda: node(manager, first_name).get("drain", "x") is None, 30, what="the drain to complete")
    assert node(manager, first_name)["eligible"] is False
    mine = [c for c in cluster.containers() if c.labels.get("orca.worker") == first_name]
    assert all(c.status != "running" for c in mine), [(c.name, c.status) for c in mine]

    listed = orca_cli(manager, "node", "ls")
    assert listed.returncode == 0 and "ineligible" in listed.stdout

    removed = orca_cli(manager, "node", "rm", first_name)
    assert removed.returncode == 0, removed.stderr
    assert requests.get(f"{manager.manager_url}/nodes/{first_name}", timeout=5).status_code == 404
    # The worker still runs; the manager neither polls nor re-registers it: work goes elsewhere.
    assert requests.get(f"{first.worker_url(0)}/stats", timeout=5).ok
    later = post_task(manager.manager_url, {"image": test_image, "command": SLEEPER}).json()
    assert wait_state(manager.manager_url, later["id"], ("running",), timeout=30)["node"] == second_name
    assert first_name not in {n["name"] for n in requests.get(f"{manager.manager_url}/nodes", timeout=5).json()}

    first.restart()  # a restarted worker joins again, as the same node
    wait_for(lambda: node(manager, first_name).get("status") == "up", 30, what="the worker to rejoin")
    assert node(manager, first_name)["id"] == node_id


def _utc(text: str) -> datetime:
    """An ISO 8601 UTC time as the workers write it (milliseconds, trailing Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
