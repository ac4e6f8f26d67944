"""Bulk submission: a list of task events in one POST /tasks (each answered on its own, the
new tasks recorded in one commit), and the JSON-RPC batch mapped onto it."""
import pytest

from manager.intake import MAX_SUBMIT
from manager.api import create_app
from manager.manager import Manager
from scheduler import RoundRobin
from store import MemoryStore
from task import Task, TaskEvent, Unavailable

IDS = ["0b9c8f4e-6a55-4d0e-9d3c-2f7b1d2a9e11", "7a0c2d64-1f0e-4d8b-8a3c-5b6e7f809a1b"]


def counting_commits(manager):
    """Count the manager's store writes that carry tasks."""
    commits = []
    save = manager._save
    manager._save = lambda tasks=(), events=(): (commits.append(len(list(tasks))), save(tasks, events))[1]
    return commits


def test_each_event_of_a_list_is_answered_and_the_new_tasks_share_one_commit(manager_client, manager):
    assert manager_client.post("/tasks", json={"task": {"id": IDS[1], "image": "busybox"}}).status_code == 201
    commits = counting_commits(manager)
    body = [{"task": {"image": "busybox"}}, {"task": {"image": "busybox", "cpu": "lots"}},
            {"task": {"id": IDS[0], "image": "busybox"}}, {"task": {"id": IDS[0], "image": "busybox"}},
            {"state": "completed", "task": {"id": IDS[1]}}, {"task": {"image": "busybox"}}]
    response = manager_client.post("/tasks", json=body)
    assert response.status_code == 200
    answers = response.get_json()
    assert [a["status"] for a in answers] == [201, 400, 201, 409, 202, 201]
    assert "task.cpu" in answers[1]["error"] and "already exists" in answers[3]["error"]
    assert answers[4]["task"]["desired_state"] == "stopped"
    new = [answers[n]["task"]["id"] for n in (0, 2, 5)]
    assert [t.id for t in manager.query_tasks().items] == [IDS[1], *new]
    assert {manager.get(i).state.value for i in new} == {"pending"}
    assert commits.count(3) == 1  # the three new tasks in one write


@pytest.mark.parametrize("body, status", [([], 400), ([{"task": {"image": "busybox"}}] * (MAX_SUBMIT + 1), 400)])
def test_an_empty_or_too_long_list_is_400(manager_client, manager, body, status):
    response = manager_client.post("/tasks", json=body)
    assert response.status_code == status and "list" in response.get_json()["error"]
    assert manager.list() == []


def test_wait_cannot_go_with_a_list(manager_client):
    response = manager_client.post("/tasks?wait=5", json=[{"task": {"image": "busybox"}}])
    assert response.status_code == 400 and "wait" in response.get_json()["error"]


class FailingStore(MemoryStore):
    def submit(self, items):
        items = list(items)
        if any(kind == "task" for kind, _, _ in items):
            def fail():
                raise OSError("disk full")
            return fail
        return super().submit(items)


def test_a_failed_commit_refuses_every_new_task_of_the_list_and_keeps_none(fake_workers, clock):
    manager = Manager(["w1:1"], fake_workers, RoundRobin(), store=FailingStore(), clock=clock)
    client = create_app(manager).test_client()
    answers = client.post("/tasks", json=[{"task": {"image": "busybox"}}] * 3).get_json()
    assert [a["status"] for a in answers] == [503] * 3 and "disk full" in answers[0]["error"]
    assert manager.list() == [] and manager.task_counts()["pending"] == 0
    with pytest.raises(Unavailable, match="disk full"):  # a single submit raises the same refusal
        manager.submit(TaskEvent(task=Task(image="busybox")))
    assert manager.list() == []


def test_a_json_rpc_batch_of_creates_is_one_bulk_submission(manager_client, manager):
    commits = counting_commits(manager)
    call = {"jsonrpc": "2.0", "method": "ContainerService.Create", "params": [{"image": "busybox"}]}
    batch = [{**call, "id": 1}, {**call, "id": 2, "params": [{"image": ""}]}, {**call, "id": 3},
             {"jsonrpc": "2.0", "method": "ContainerService.Create", "params": [{"image": "busybox"}]}]
    answers = manager_client.post("/jrpc", json=batch).get_json()
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[1]["error"]["code"] == -32602
    jobs = [answers[0]["result"]["job_id"], answers[2]["result"]["job_id"]]
    assert len(manager.list()) == 3  # the notification's task too
    assert all(manager.get(j).state.value == "pending" for j in jobs)
    assert commits.count(3) == 1
