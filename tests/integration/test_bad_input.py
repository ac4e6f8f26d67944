"""Bad input to the real manager and worker: a JSON error naming the problem, never a 500."""
from __future__ import annotations

import pytest
import requests

from tests.integration.conftest import wait_state

pytestmark = pytest.mark.docker

JSON = {"Content-Type": "application/json"}
BAD_BODIES = [
    ("{not json", 400, "malformed JSON"),
    ("true", 400, "body"),
    ('"text"', 400, "body"),
    ("{}", 400, "task"),
    ('{"task": {}}', 400, "task.image"),
    ('{"task": {"image": ""}}', 400, "task.image"),
    ('{"task": {"image": 5}}', 400, "task.image"),
    ('{"task": {"image": "x", "bogus": 1}}', 400, "task.bogus"),
    ('{"task": {"image": "x"}, "extra": true}', 400, "extra"),
    ('{"task": {"image": "x", "cpu": -1}}', 400, "task.cpu"),
    ('{"task": {"image": "x", "cpu": "2"}}', 400, "task.cpu"),
    ('{"task": {"image": "x", "memory": -5}}', 400, "task.memory"),
    ('{"task": {"image": "x", "memory": "lots"}}', 400, "task.memory"),
    ('{"task": {"image": "x", "command": "echo hi"}}', 400, "task.command"),
    ('{"task": {"image": "x", "env": {"A": 1}}}', 400, "task.env"),
    ('{"task": {"image": "x", "ports": {"http": null}}}', 400, "task.ports"),
    ('{"task": {"image": "x", "id": "../../etc"}}', 400, "task.id"),
    ('{"task": {"image": "x"}, "state": "exploded"}', 400, "state"),
]


@pytest.mark.parametrize("body, status, names", BAD_BODIES)
@pytest.mark.parametrize("target", ["manager", "worker"])
def test_bad_bodies_are_rejected_with_a_json_error_naming_the_field(orca, target, body, status, names):
    url = orca.manager_url if target == "manager" else orca.worker_url(0)
    response = requests.post(f"{url}/tasks", data=body, headers=JSON, timeout=5)
    assert response.status_code == status
    assert names in response.json()["error"]


def test_a_list_of_bad_events_answers_each_with_its_error(orca):
    response = requests.post(f"{orca.manager_url}/tasks", data='[1, {"task": {}}]', headers=JSON, timeout=5)
    assert response.status_code == 200
    assert [(a["status"], "task" in a) for a in response.json()] == [(400, False), (400, False)]
    assert "body" in response.json()[0]["error"] and "task.image" in response.json()[1]["error"]
    worker = requests.post(f"{orca.worker_url(0)}/tasks", data="[1, 2]", headers=JSON, timeout=5)
    assert worker.status_code == 400 and "body" in worker.json()["error"]


@pytest.mark.parametrize("target", ["manager", "worker"])
def test_protocol_errors_are_json(orca, target):
    url = orca.manager_url if target == "manager" else orca.worker_url(0)
    cases = [
        (requests.post(f"{url}/tasks", data="image=x", headers={"Content-Type": "text/plain"}, timeout=5), 415),
        (requests.get(f"{url}/tasks/00000000-0000-0000-0000-000000000000", timeout=5), 404),
        (requests.get(f"{url}/tasks/not-a-uuid", timeout=5), 404),
        (requests.delete(f"{url}/tasks/00000000-0000-0000-0000-000000000000", timeout=5), 404),
        (requests.get(f"{url}/nowhere", timeout=5), 404),
        (requests.put(f"{url}/tasks", json={}, timeout=5), 405),
        (requests.post(f"{url}/tasks", data=b"x" * (2 * 1024 * 1024), headers=JSON, timeout=10), 413),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_rejected_requests_change_nothing_and_jobs_keep_running(orca, test_image):
    for body, _, _ in BAD_BODIES:
        requests.post(f"{orca.manager_url}/tasks", data=body, headers=JSON, timeout=5)
    assert requests.get(f"{orca.manager_url}/tasks", timeout=5).json() == []
    task = requests.post(f"{orca.manager_url}/tasks", json={"task": {"image": test_image, "command": ["true"]}},
                         timeout=5).json()
    assert wait_state(orca.manager_url, task["id"], ("completed",))["exit_code"] == 0


def test_duplicate_task_id_is_a_conflict(orca, test_image):
    body = {"task": {"id": "6f1c1f55-3a7e-4a55-9d64-0a4f2f8b8b01", "image": test_image, "command": ["sleep", "30"]}}
    assert requests.post(f"{orca.manager_url}/tasks", json=body, timeout=5).status_code == 201
    again = requests.post(f"{orca.manager_url}/tasks", json=body, timeout=5)
    assert again.status_code == 409 and "already exists" in again.json()["error"]
