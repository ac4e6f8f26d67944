"""Batched orders: the worker's POST /tasks/batch (one answer per order) and the manager's
batched dispatch over it, with Flask's test client and the fake runtime."""
import pytest

from manager.client import order_answer
from task import NotFound, WorkerRejected, WorkerUnavailable
from task.wire import MAX_BATCH

IDS = ["0b9c8f4e-6a55-4d0e-9d3c-2f7b1d2a9e11", "7a0c2d64-1f0e-4d8b-8a3c-5b6e7f809a1b",
       "3e5a1c2b-9d8f-4a6e-b7c0-1d2e3f4a5b6c"]


def run(task_id, attempt=1):
    return {"state": "running", "task": {"id": task_id, "image": "busybox"}, "attempt": attempt}


def stop(task_id, attempt):
    return {"state": "completed", "task": {"id": task_id}, "attempt": attempt}


def test_each_order_of_a_batch_is_answered_on_its_own_in_order(worker_client, worker, runtime, wait):
    body = [run(IDS[0]), run(IDS[1], attempt=2), {"task": {"id": IDS[2]}}, run(IDS[0]), stop(IDS[1], 2),
            stop(IDS[2], 5)]
    response = worker_client.post("/tasks/batch", json=body)
    assert response.status_code == 200
    answers = response.get_json()
    assert [a["status"] for a in answers] == [201, 201, 400, 200, 202, 202]
    assert "image" in answers[2]["error"] and "task" not in answers[2]
    assert [answers[n]["task"]["attempt"] for n in (0, 1, 3, 4, 5)] == [1, 2, 1, 2, 5]
    assert answers[5]["task"]["state"] == "completed"  # an attempt it never got: a tombstone
    worker.run_pending()
    wait(lambda: IDS[0] in runtime.start_calls and worker.db.get(IDS[1]).state.value == "completed")
    assert IDS[2] not in runtime.start_calls  # its attempt 5 was stopped before it ever came
    assert [s.task_id for s in runtime.containers()] == [IDS[0]]


@pytest.mark.parametrize("body", [{}, [], "x", [run(IDS[0])] * (MAX_BATCH + 1)])
def test_a_batch_that_is_not_a_list_of_orders_is_400(worker_client, body):
    response = worker_client.post("/tasks/batch", json=body)
    assert response.status_code == 400 and "list" in response.get_json()["error"]


def test_a_batch_while_not_ready_answers_503_per_order(worker_client, worker):
    worker.ready = False
    answers = worker_client.post("/tasks/batch", json=[run(IDS[0]), run(IDS[1])]).get_json()
    assert [a["status"] for a in answers] == [503, 503]


@pytest.mark.parametrize("answer, kind", [
    ({"status": 503, "error": "busy"}, WorkerUnavailable), ({"status": 404, "error": "gone"}, NotFound),
    ({"status": 400, "error": "bad"}, WorkerRejected), ({"status": 201}, WorkerUnavailable),
    ("nonsense", WorkerUnavailable), ({"status": "201", "task": {}}, WorkerUnavailable),
])
def test_the_manager_maps_each_batch_answer_to_the_error_a_single_send_would_raise(answer, kind):
    assert isinstance(order_answer("w:1", answer), kind)


def test_the_manager_sends_one_batch_per_node_and_records_placements_in_one_commit(manager_client, manager,
                                                                                   fake_workers):
    commits = []
    save = manager._save
    manager._save = lambda tasks=(), events=(): (commits.append(len(list(tasks))), save(tasks, events))[1]
    for _ in range(6):
        assert manager_client.post("/tasks", json={"task": {"image": "busybox"}}).status_code == 201
    commits.clear()
    manager.sync_nodes()
    calls = []
    send = fake_workers.send_orders
    fake_workers.send_orders = lambda address, events: (calls.append((address, len(events))),
                                                        send(address, events))[1]
    manager.dispatch_pending()
    assert sorted(calls) == [("w1:1", 3), ("w2:2", 3)]
    assert commits[0] == 6  # the six new attempts, in one write
    assert {t.state.value for t in manager.list()} == {"scheduled"}
