"""Correctness under load (timing lives in bench/): bursts reach running, nothing is lost."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.docker


def test_a_burst_of_40_tasks_all_reach_running_over_both_workers(orca, cluster, test_image):
    body = {"task": {"image": test_image, "command": ["sleep", "60"]}}
    with ThreadPoolExecutor(40) as pool:
        responses = list(pool.map(lambda _: requests.post(f"{orca.manager_url}/tasks", json=body, timeout=30),
                                  range(40)))
    assert [r.status_code for r in responses] == [201] * 40
    ids = {r.json()["id"] for r in responses}

    def all_running():
        tasks = [t for t in requests.get(f"{orca.manager_url}/tasks", timeout=10).json() if t["id"] in ids]
        return tasks if len(tasks) == 40 and all(t["state"] == "running" for t in tasks) else None
    tasks = wait_for(all_running, timeout=120, interval=0.2, what="all 40 tasks running")
    assert {t["node"] for t in tasks} == {orca.worker_address(0), orca.worker_address(1)}
    containers = cluster.containers(all=False)
    assert len(containers) == 40
    assert {c.labels["orca.task_id"] for c in containers} == ids


def test_concurrent_posts_are_all_acknowledged_and_listed(cluster, test_image):
    manager = cluster.start("manager", workers=0, ORCA_WORKERS="127.0.0.1:1")  # no worker: intake only
    body = {"task": {"image": test_image, "command": ["true"]}}

    def post(_):
        with requests.Session() as session:
            return [session.post(f"{manager.manager_url}/tasks", json=body, timeout=10) for _ in range(25)]
    with ThreadPoolExecutor(16) as pool:
        responses = [r for batch in pool.map(post, range(16)) for r in batch]
    assert [r.status_code for r in responses] == [201] * 400
    listed = {t["id"] for t in requests.get(f"{manager.manager_url}/tasks", timeout=10).json()}
    assert listed == {r.json()["id"] for r in responses}
