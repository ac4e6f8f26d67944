"""The manager's HTTP API and its passes, with Flask's test client and a fake worker client.

FakeWorkerClient (tests/api/conftest.py) answers the manager's WorkerAPI calls from memory;
it checks placement, retry and bookkeeping only. Real HTTP to real workers is covered by the
integration tests.
"""
import pytest

from task import WorkerRejected, WorkerUnavailable

TASK_ID = "0b9c8f4e-6a55-4d0e-9d3c-2f7b1d2a9e11"
EVENT_ID = "5d1f7e0a-3c2b-4b8e-9f6a-1e2d3c4b5a69"
W1, W2 = "w1:1", "w2:2"


def post(client, task_id=None, **task_fields):
    task = {"image": "busybox", **task_fields}
    if task_id:
        task["id"] = task_id
    return client.post("/tasks", json={"task": task})


def post_many(client, count):
    ids = []
    for _ in range(count):
        response = post(client)
        assert response.status_code == 201
        ids.append(response.get_json()["id"])
    return ids


def get(client, task_id):
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 200
    return response.get_json()


def assert_json_error(response, status, *words):
    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["error"]


def placed(manager, fake_workers):
    """Bring the workers up and dispatch; return where each event went."""
    manager.sync_nodes()
    manager.dispatch_pending()
    return [address for address, _ in fake_workers.sent]


# ----- requests


def test_post_creates_a_pending_task(manager_client, manager):
    response = post(manager_client, task_id=TASK_ID, name="web", memory="64m")
    assert response.status_code == 201
    assert response.headers["Location"] == f"/tasks/{TASK_ID}"
    task = response.get_json()
    assert (task["id"], task["state"], task["name"], task["memory"]) == (TASK_ID, "pending", "web", 64 << 20)
    assert task["node"] is None and task["created_at"]
    assert manager.pending_count() == 1


def test_post_generates_an_id_and_location(manager_client):
    response = post(manager_client)
    task_id = response.get_json()["id"]
    assert response.headers["Location"] == f"/tasks/{task_id}"
    assert get(manager_client, task_id)["state"] == "pending"


def test_get_list_and_one(manager_client):
    assert manager_client.get("/tasks").get_json() == []
    ids = post_many(manager_client, 3)
    listed = manager_client.get("/tasks")
    assert listed.status_code == 200
    assert [t["id"] for t in listed.get_json()] == ids  # oldest first
    one = get(manager_client, ids[1])
    assert one["id"] == ids[1] and one["image"] == "busybox"


def test_task_json_has_the_contract_fields(manager_client):
    contract = {"id", "name", "state", "image", "command", "env", "cpu", "memory", "disk", "ports",
                "host_ports", "node", "container_id", "exit_code", "error", "restart_count",
                "created_at", "started_at", "finished_at"}
    assert contract <= set(post(manager_client).get_json())


def test_duplicate_task_id_is_409(manager_client, manager):
    assert post(manager_client, task_id=TASK_ID).status_code == 201
    assert_json_error(post(manager_client, task_id=TASK_ID), 409, TASK_ID)
    assert manager.pending_count() == 1
    assert len(manager_client.get("/tasks").get_json()) == 1


def test_duplicate_event_id_is_409(manager_client):
    body = {"id": EVENT_ID, "task": {"image": "busybox"}}
    assert manager_client.post("/tasks", json=body).status_code == 201
    assert_json_error(manager_client.post("/tasks", json=body), 409, EVENT_ID)


ERRORS = {
    "unknown-id": ("get", f"/tasks/{TASK_ID}", {}, 404, TASK_ID),
    "delete-unknown-id": ("delete", f"/tasks/{TASK_ID}", {}, 404, TASK_ID),
    "unknown-route": ("get", "/jobs", {}, 404, "/jobs"),
    "put-tasks": ("put", "/tasks", {"json": {}}, 405, "PUT"),
    "delete-tasks": ("delete", "/tasks", {}, 405, "DELETE"),
    "post-one-task": ("post", f"/tasks/{TASK_ID}", {"json": {}}, 405, "POST"),
    "text-plain": ("post", "/tasks", {"data": '{"task": {"image": "busybox"}}', "content_type": "text/plain"},
                   415, "JSON"),
    "no-content-type": ("post", "/tasks", {"data": '{"task": {"image": "busybox"}}'}, 415, "JSON"),
    "malformed-json": ("post", "/tasks", {"data": '{"task": {"image": ', "content_type": "application/json"},
                       400, "malformed JSON"),
    "bad-utf8": ("post", "/tasks", {"data": b'{"task": "\xff"}', "content_type": "application/json"},
                 400, "malformed JSON"),
    "deep-nesting": ("post", "/tasks", {"data": "[" * 100000, "content_type": "application/json"},
                     400, "malformed JSON"),
    "body-not-object": ("post", "/tasks", {"json": "busybox"}, 400, "body"),
    "bad-field": ("post", "/tasks", {"json": {"task": {"image": "busybox", "cpu": "lots"}}}, 400, "task.cpu"),
    "too-large": ("post", "/tasks", {"data": '{"task": {"image": "busybox", "name": "' + "a" * (2 << 20) + '"}}',
                                     "content_type": "application/json"}, 413, "larger"),
    "stop-unknown-by-post": ("post", "/tasks", {"json": {"state": "completed", "task": {"id": TASK_ID}}},
                             404, TASK_ID),
}


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "word"), ERRORS.values(), ids=ERRORS.keys())
def test_errors_are_json_with_a_fitting_status(manager_client, manager, method, path, kwargs, status, word):
    response = getattr(manager_client, method)(path, **kwargs)
    assert_json_error(response, status, word)
    assert manager.list() == []  # nothing was accepted


def test_delete_pending_task_cancels_it(manager_client, manager, fake_workers):
    task_id = post(manager_client).get_json()["id"]
    response = manager_client.delete(f"/tasks/{task_id}")
    assert response.status_code == 202
    assert response.get_json()["state"] == "completed"
    task = get(manager_client, task_id)
    assert task["state"] == "completed" and task["finished_at"]
    assert manager.pending_count() == 0
    placed(manager, fake_workers)
    assert fake_workers.sent == [] and fake_workers.stops == []


def test_delete_completed_task_is_409(manager_client):
    task_id = post(manager_client).get_json()["id"]
    manager_client.delete(f"/tasks/{task_id}")
    assert_json_error(manager_client.delete(f"/tasks/{task_id}"), 409, task_id, "completed")


def test_stop_by_post_of_a_pending_task(manager_client):
    task_id = post(manager_client).get_json()["id"]
    response = manager_client.post("/tasks", json={"state": "completed", "task": {"id": task_id}})
    assert response.status_code == 202
    assert response.get_json()["state"] == "completed"


def test_closed_manager_refuses_with_503(manager_client, manager):
    manager.close_intake()
    assert_json_error(post(manager_client), 503, "shutting down")


# ----- dispatch and sync passes


def test_nothing_is_dispatched_before_workers_are_seen(manager_client, manager, fake_workers):
    post_many(manager_client, 2)
    assert manager.dispatch_pending() == 0
    assert manager.pending_count() == 2
    assert fake_workers.sent == []


def test_nodes_after_sync(manager_client, manager):
    before = manager_client.get("/nodes").get_json()
    assert [(n["name"], n["state"]) for n in before] == [(W1, "down"), (W2, "down")]
    manager.sync_nodes()
    nodes = manager_client.get("/nodes").get_json()
    assert [(n["name"], n["address"], n["state"]) for n in nodes] == [(W1, W1, "up"), (W2, W2, "up")]
    assert nodes[0]["cores"] == 4 and nodes[0]["memory"] == 8 << 30 and nodes[0]["last_seen"]
    assert nodes[0]["stats"]["hostname"] == "test-host"
    assert "misses" not in nodes[0]


def test_dispatch_alternates_round_robin(manager_client, manager, fake_workers):
    ids = post_many(manager_client, 4)
    assert sorted(placed(manager, fake_workers)) == [W1, W1, W2, W2]
    assert manager.pending_count() == 0
    assert [get(manager_client, i)["node"] for i in ids] == [W1, W2, W1, W2]
    assert {get(manager_client, i)["state"] for i in ids} == {"scheduled"}
    # Each event carried the task's spec, to its node, in submission order per node (one
    # batch per node).
    assert [(address, event["task"]["id"]) for address, event in fake_workers.sent] == \
        [(W1, ids[0]), (W1, ids[2]), (W2, ids[1]), (W2, ids[3])]
    assert {event["state"] for _, event in fake_workers.sent} == {"running"}


def test_a_failed_send_is_retried_on_the_same_worker_never_elsewhere(manager_client, manager, fake_workers, clock):
    """A send that fails may still have arrived: sending the attempt to another worker could
    run it twice. It stays with its worker and is sent again after a backoff."""
    ids = post_many(manager_client, 2)
    manager.sync_nodes()
    fake_workers.fail("send_event", W1, WorkerUnavailable("read timeout"))
    assert manager.dispatch_pending() == 1
    assert [address for address, _ in fake_workers.sent] == [W2]
    assert [get(manager_client, i)["node"] for i in ids] == [W1, W2]
    assert [get(manager_client, i)["attempt"] for i in ids] == [1, 1]
    assert manager.nodes()[0].state == "up"  # a failed send is not a missed liveness check
    fake_workers.heal()
    assert manager.dispatch_pending() == 0  # backing off
    clock.advance(1.0)
    assert manager.dispatch_pending() == 1
    assert [address for address, _ in fake_workers.sent] == [W2, W1]
    assert [event["attempt"] for _, event in fake_workers.sent] == [1, 1]


def test_all_workers_unavailable_keeps_the_attempts_until_later(manager_client, manager, fake_workers, clock):
    ids = post_many(manager_client, 3)
    manager.sync_nodes()
    fake_workers.fail("send_event", "*", WorkerUnavailable("connection refused"))
    assert manager.dispatch_pending() == 0
    assert manager.pending_count() == 3
    assert [get(manager_client, i)["state"] for i in ids] == ["scheduled"] * 3  # placed, recorded, not sent
    assert [get(manager_client, i)["node"] for i in ids] == [W1, W2, W1]
    assert fake_workers.sent == []

    fake_workers.heal()
    manager.sync_nodes()
    clock.advance(1.0)
    assert manager.dispatch_pending() == 3
    assert manager.pending_count() == 0
    assert sorted(event["task"]["id"] for _, event in fake_workers.sent) == sorted(ids)
    assert [get(manager_client, i)["state"] for i in ids] == ["scheduled"] * 3


def test_worker_rejection_fails_the_task(manager_client, manager, fake_workers):
    task_id = post(manager_client).get_json()["id"]
    manager.sync_nodes()
    fake_workers.fail("send_event", W1, WorkerRejected("task.memory must be at least 6m"))
    assert manager.dispatch_pending() == 1
    task = get(manager_client, task_id)
    assert task["state"] == "failed"
    assert "task.memory must be at least 6m" in task["error"]
    assert W1 in task["error"]
    assert task["finished_at"]
    assert manager.pending_count() == 0


def test_sync_tasks_merges_remote_changes(manager_client, manager, fake_workers):
    ids = post_many(manager_client, 2)
    placed(manager, fake_workers)
    manager.sync_tasks()
    assert [get(manager_client, i)["state"] for i in ids] == ["scheduled", "scheduled"]

    fake_workers.report(W1, ids[0], state="running", container_id="abc123", host_ports={"8080/tcp": 32768},
                        started_at="2024-01-01T00:00:01.000Z")
    manager.sync_tasks()
    first = get(manager_client, ids[0])
    assert (first["state"], first["container_id"], first["node"]) == ("running", "abc123", W1)
    assert first["host_ports"] == {"8080/tcp": 32768}
    assert first["started_at"] == "2024-01-01T00:00:01.000Z"
    assert get(manager_client, ids[1])["state"] == "scheduled"  # w2 reported nothing new

    fake_workers.report(W1, ids[0], state="failed", exit_code=3, error="exited with code 3",
                        finished_at="2024-01-01T00:00:09.000Z")
    manager.sync_tasks()
    first = get(manager_client, ids[0])
    assert (first["state"], first["exit_code"], first["error"]) == ("failed", 3, "exited with code 3")
    assert first["finished_at"] == "2024-01-01T00:00:09.000Z"


def test_sync_tasks_ignores_a_report_from_the_wrong_worker(manager_client, manager, fake_workers):
    task_id = post(manager_client).get_json()["id"]
    placed(manager, fake_workers)  # on w1
    fake_workers.report(W2, task_id, state="running", container_id="elsewhere")
    manager.sync_tasks()
    task = get(manager_client, task_id)
    assert (task["state"], task["node"], task["container_id"]) == ("scheduled", W1, None)


def test_sync_tasks_does_not_revive_a_finished_task(manager_client, manager, fake_workers):
    task_id = post(manager_client).get_json()["id"]
    placed(manager, fake_workers)
    fake_workers.report(W1, task_id, state="completed", exit_code=0)
    manager.sync_tasks()
    assert get(manager_client, task_id)["state"] == "completed"
    fake_workers.report(W1, task_id, state="running", container_id="late")
    manager.sync_tasks()
    task = get(manager_client, task_id)
    assert (task["state"], task["exit_code"]) == ("completed", 0)


def test_delete_of_a_placed_task_stops_it_on_its_worker(manager_client, manager, fake_workers):
    ids = post_many(manager_client, 2)
    placed(manager, fake_workers)
    response = manager_client.delete(f"/tasks/{ids[1]}")
    assert response.status_code == 202
    assert response.get_json()["state"] == "scheduled"  # the stop is asynchronous
    assert manager.dispatch_pending() == 1
    assert fake_workers.stops == [(W2, ids[1])]
    task = get(manager_client, ids[1])
    assert (task["state"], task["exit_code"]) == ("completed", 137)
    assert get(manager_client, ids[0])["state"] == "scheduled"


def test_stop_waits_while_its_worker_is_unavailable(manager_client, manager, fake_workers, clock):
    task_id = post(manager_client).get_json()["id"]
    placed(manager, fake_workers)
    manager_client.delete(f"/tasks/{task_id}")
    fake_workers.fail("stop_task", W1, WorkerUnavailable("timeout"))
    assert manager.dispatch_pending() == 0
    assert manager.pending_count() == 1
    assert get(manager_client, task_id)["desired_state"] == "stopped"
    fake_workers.heal()
    clock.advance(1.0)
    assert manager.dispatch_pending() == 1
    assert get(manager_client, task_id)["state"] == "completed"


def test_delete_while_the_event_is_in_flight_stops_the_task(manager_client, manager, fake_workers):
    """A DELETE that lands while dispatch_pending is sending the run event (lock not held)
    cancels the task; the placement that follows must send a stop to that worker."""
    task_id = post(manager_client).get_json()["id"]
    manager.sync_nodes()
    original = fake_workers.send_event

    def send_then_delete(address, event):
        answer = original(address, event)
        assert manager_client.delete(f"/tasks/{task_id}").status_code == 202
        return answer

    fake_workers.send_event = send_then_delete
    manager.dispatch_pending()
    manager.dispatch_pending()  # the stop is reconciled on the next pass
    assert fake_workers.stops == [(W1, task_id)]
    task = get(manager_client, task_id)
    assert (task["state"], task["node"]) == ("completed", W1)
    assert manager.pending_count() == 0


def test_one_bad_event_does_not_lose_the_others(manager_client, manager, fake_workers):
    placed_id = post(manager_client).get_json()["id"]
    placed(manager, fake_workers)  # on w1
    waiting_id = post(manager_client).get_json()["id"]  # queued: its run event
    manager_client.delete(f"/tasks/{placed_id}")  # queued after it: a stop for w1
    fake_workers.fail("send_event", "*", WorkerUnavailable("connection refused"))
    fake_workers.fail("stop_task", W1, WorkerRejected("worker refused the stop"))

    escaped = None
    try:
        manager.dispatch_pending()
    except Exception as exc:  # the pass should log it and move on
        escaped = exc
    # The run event that only had to wait for a worker must still be queued.
    assert manager.pending_count() >= 1, "the deferred run event was dropped"
    assert escaped is None
    fake_workers.heal()
    manager.sync_nodes()
    manager.dispatch_pending()
    assert get(manager_client, waiting_id)["state"] == "scheduled"
