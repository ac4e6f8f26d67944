"""/metrics and /openapi.json of real processes against the real engine: the counters and
gauges follow a task that runs and one whose image cannot be had, and what the routes answer
about real tasks (Docker's times, container ids, errors) validates against the documents."""
from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_openapi_metrics import conforms
from tests.integration.conftest import post_task, wait_state

MISSING_IMAGE = "127.0.0.1:1/none:1"  # a refused pull: fails fast, and only on loopback


def metrics(base_url: str) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"{base_url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_follow_a_run_and_a_failed_start(cluster, test_image):
    orca = cluster.start("all", workers=1, ORCA_STORE="memory")
    done = post_task(orca.manager_url, {"image": test_image, "command": ["true"], "restart_policy": "no"}).json()
    failed = post_task(orca.manager_url, {"image": MISSING_IMAGE, "restart_policy": "no"}).json()
    wait_state(orca.manager_url, done["id"], ("completed",))
    wait_state(orca.manager_url, failed["id"], ("failed",))

    worker = metrics(orca.worker_url(0))
    assert worker[("orca_container_starts_total", ())] == 1
    assert worker[("orca_container_start_failures_total", ())] == 1
    assert worker[("orca_container_exits_total", (("outcome", "completed"),))] == 1
    assert worker[("orca_worker_tasks", (("state", "failed"),))] == 1

    manager = metrics(orca.manager_url)
    assert manager[("orca_tasks", (("state", "completed"),))] == 1
    assert manager[("orca_tasks", (("state", "failed"),))] == 1
    assert manager[("orca_tasks", (("state", "pending"),))] == 0
    assert manager[("orca_events_pending", ())] == 0
    assert manager[("orca_dispatch_seconds_count", ())] == 2
    node = (("worker", orca.worker_address(0)),)
    assert manager[("orca_worker_up", node)] == 1
    assert manager[("orca_engine_reachable", node)] == 1


def test_real_answers_validate_against_the_documents(cluster, test_image):
    orca = cluster.start("all", workers=1, ORCA_STORE="memory")
    manager_doc = requests.get(f"{orca.manager_url}/openapi.json", timeout=5).json()
    worker_doc = requests.get(f"{orca.worker_url(0)}/openapi.json", timeout=5).json()
    running = post_task(orca.manager_url, {"image": test_image, "command": ["sleep", "30"],
                                           "ports": {"8080": None}}).json()
    failed = post_task(orca.manager_url, {"image": MISSING_IMAGE, "restart_policy": "no"}).json()
    wait_state(orca.manager_url, running["id"], ("running",))
    wait_state(orca.manager_url, failed["id"], ("failed",))
    run = requests.post(f"{orca.manager_url}/tasks?wait=10", json={"task": {"image": test_image,
                                                                           "command": ["echo", "hi"]}}, timeout=15)
    assert run.status_code == 201 and run.json()["output"]["text"] == "hi\n"
    conforms(manager_doc, "POST", "/tasks", run)

    for path, url in [("/tasks", "/tasks"), ("/tasks/{task_id}", f"/tasks/{running['id']}"),
                      ("/tasks/{task_id}", f"/tasks/{failed['id']}"), ("/nodes", "/nodes"), ("/health", "/health"),
                      ("/tasks/{task_id}/logs", f"/tasks/{running['id']}/logs?tail=1")]:
        conforms(manager_doc, "GET", path, requests.get(orca.manager_url + url, timeout=5))
    for path, url in [("/tasks", "/tasks"), ("/tasks", "/tasks?since=0"), ("/tasks/{task_id}", f"/tasks/{running['id']}"),
                      ("/stats", "/stats"), ("/health", "/health")]:
        conforms(worker_doc, "GET", path, requests.get(orca.worker_url(0) + url, timeout=5))
    conforms(manager_doc, "DELETE", "/tasks/{task_id}",
             requests.delete(f"{orca.manager_url}/tasks/{running['id']}", timeout=5))
