"""Retention with real processes: a manager (SQLite store) and a worker, `python main.py`, on
the real Docker engine. A finished task purged by DELETE ?purge=true, or by ORCA_RETENTION, is
gone from the manager, from its store (a restarted manager does not know it) and from the
worker (its record and its container); a task that has not finished is not purged."""
from __future__ import annotations

import requests

from tests.integration.conftest import post_task, split_cluster, wait_for, wait_state


def container_ids(cluster, task_id: str) -> set[str]:
    return {c.id for c in cluster.containers() if c.labels.get("orca.task_id") == task_id}


def test_purge_forgets_a_finished_task_everywhere_and_refuses_a_running_one(cluster, test_image):
    manager, (worker,) = split_cluster(cluster, workers=1)
    url, worker_url = manager.manager_url, worker.worker_url(0)
    done = post_task(url, {"image": test_image, "command": ["sh", "-c", "exit 0"], "restart_policy": "no"}).json()
    running = post_task(url, {"image": test_image, "command": ["sleep", "300"]}).json()
    wait_state(url, done["id"], ("completed",), timeout=60)
    wait_state(url, running["id"], ("running",), timeout=60)
    assert requests.get(f"{worker_url}/tasks/{done['id']}", timeout=5).status_code == 200
    assert container_ids(cluster, done["id"])  # kept for its logs (ORCA_GC_AFTER)

    refused = requests.delete(f"{url}/tasks/{running['id']}?purge=true", timeout=5)
    assert refused.status_code == 409 and "stop it first" in refused.json()["error"]
    bad = requests.delete(f"{url}/tasks/{done['id']}?purge=perhaps", timeout=5)
    assert bad.status_code == 400 and "purge" in bad.json()["error"]

    purged = requests.delete(f"{url}/tasks/{done['id']}?purge=true", timeout=10)
    assert purged.status_code == 200 and purged.json()["id"] == done["id"]
    assert requests.get(f"{url}/tasks/{done['id']}", timeout=5).status_code == 404
    assert requests.get(f"{worker_url}/tasks/{done['id']}", timeout=5).status_code == 404
    assert not container_ids(cluster, done["id"])
    assert [t["id"] for t in requests.get(f"{url}/tasks", timeout=5).json()] == [running["id"]]

    manager.restart()  # kill -9, then the same store
    assert requests.get(f"{url}/tasks/{done['id']}", timeout=5).status_code == 404
    assert [t["id"] for t in requests.get(f"{url}/tasks", timeout=5).json()] == [running["id"]]
    assert wait_state(url, running["id"], ("running",))["attempt"] == 1  # untouched by the purge
    assert requests.get(f"{url}/tasks/{running['id']}", timeout=5).json()["state"] == "running"


def test_the_retention_purges_finished_tasks_by_itself(cluster, test_image):
    manager, (worker,) = split_cluster(cluster, workers=1, ORCA_RETENTION="2s")
    url, worker_url = manager.manager_url, worker.worker_url(0)
    done = post_task(url, {"image": test_image, "command": ["sh", "-c", "exit 3"], "restart_policy": "no"}).json()
    running = post_task(url, {"image": test_image, "command": ["sleep", "300"]}).json()
    wait_state(url, done["id"], ("failed",), timeout=60)

    def gone_everywhere() -> bool:
        return (requests.get(f"{url}/tasks/{done['id']}", timeout=5).status_code == 404
                and requests.get(f"{worker_url}/tasks/{done['id']}", timeout=5).status_code == 404)
    wait_for(gone_everywhere, timeout=30, what="the finished task to be purged by the manager and the worker")
    assert wait_state(url, running["id"], ("running",))["attempt"] == 1  # a running task is never purged
    metrics = requests.get(f"{url}/metrics", timeout=5).text
    assert 'orca_tasks{state="failed"} 0' in metrics
    manager.restart()
    assert requests.get(f"{url}/tasks/{done['id']}", timeout=5).status_code == 404


def test_a_purge_through_a_follower_stays_purged_across_the_leaders_death(cluster, pg_database, test_image):
    """Two managers on PostgreSQL: the purge is sent to the follower (which forwards it to the
    leader); both stop knowing the task, and after kill -9 of the leader the new leader does not
    bring it back nor place it again."""
    from tests.integration.test_managers import Managers

    managers = Managers(cluster, pg_database).start(workers=1, managers=2)
    leader = managers.leader()
    follower = next(m for m in managers.managers if m is not leader)
    url = leader.manager_url
    done = post_task(url, {"image": test_image, "command": ["sh", "-c", "exit 0"], "restart_policy": "no"}).json()
    running = post_task(url, {"image": test_image, "command": ["sleep", "300"]}).json()
    wait_state(url, done["id"], ("completed",), timeout=60)
    wait_for(lambda: requests.get(f"{follower.manager_url}/tasks/{done['id']}", timeout=5).json().get("state")
             == "completed", timeout=30, what="the follower to read the task's end")  # 404 until its reload
    wait_state(url, running["id"], ("running",), timeout=60)

    purged = requests.delete(f"{follower.manager_url}/tasks/{done['id']}?purge=true", timeout=30)
    assert purged.status_code == 200, purged.text
    assert requests.get(f"{url}/tasks/{done['id']}", timeout=5).status_code == 404
    wait_for(lambda: requests.get(f"{follower.manager_url}/tasks/{done['id']}", timeout=5).status_code == 404,
             timeout=30, what="the follower to stop knowing the purged task")

    leader.kill()
    assert managers.leader(among=[follower], other_than=url.removeprefix("http://")) is follower
    new = follower.manager_url
    assert wait_state(new, running["id"], ("running",), timeout=30)["attempt"] == 1
    assert requests.get(f"{new}/tasks/{done['id']}", timeout=5).status_code == 404
    assert [t["id"] for t in requests.get(f"{new}/tasks", timeout=5).json()] == [running["id"]]
    assert not container_ids(cluster, done["id"])
