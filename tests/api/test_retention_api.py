"""Retention: DELETE /tasks/<id>?purge=true and the periodic purge of finished tasks, on the
manager (fake worker client, fake clocks) and on the worker (fake runtime).

Real processes, the real store and Docker are covered by tests/integration/test_retention.py.
"""
from datetime import datetime, timezone

import pytest

from common.config import ConfigError, from_env
from manager.api import create_app
from manager.manager import Manager
from scheduler import RoundRobin
from store import MemoryStore
from task import State, Task, TaskEvent
from worker.retention import Purger

W1 = "w1:1"
ENDED = "2024-01-01T00:00:09.000Z"
ENDED_AT = datetime(2024, 1, 1, 0, 0, 9, tzinfo=timezone.utc).timestamp()


def assert_error(response, status, *words):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    for word in words:
        assert word in body["error"]


def submit(client) -> str:
    response = client.post("/tasks", json={"task": {"image": "busybox"}})
    assert response.status_code == 201
    return response.get_json()["id"]


def run_to_end(manager, fake_workers, task_id, state="completed"):
    """Place the task, then have its worker report it running and then ended at ENDED."""
    manager.sync_nodes()
    manager.dispatch_pending()
    node = manager.get(task_id).node
    fake_workers.report(node, task_id, state="running", container_id="c1")
    manager.sync_tasks()
    fake_workers.report(node, task_id, state=state, exit_code=0, finished_at=ENDED)
    manager.sync_tasks()
    assert manager.get(task_id).state.value == state
    return node


# ----- the route


def test_purge_of_a_finished_task_forgets_it_everywhere(manager_client, manager, fake_workers):
    keep, gone = submit(manager_client), submit(manager_client)
    node = run_to_end(manager, fake_workers, gone)
    before = manager.events.since(0)[1]
    response = manager_client.delete(f"/tasks/{gone}?purge=true")
    assert response.status_code == 200
    assert response.get_json()["id"] == gone and response.get_json()["state"] == "completed"
    assert_error(manager_client.get(f"/tasks/{gone}"), 404, gone)
    assert [t["id"] for t in manager_client.get("/tasks").get_json()] == [keep]
    assert manager.task_counts()["completed"] == 0 and sum(manager.task_counts().values()) == 1
    assert manager.store.get("task", gone) is None
    assert [e["task_id"] for e in manager.store.list("event")] == [keep]  # its intake event went with it
    assert fake_workers.purged == [(node, gone)]
    events, _ = manager.events.since(before)
    assert [(e["kind"], e["data"]["id"]) for e in events if e["topic"] == "task"] == [("removed", gone)]
    assert_error(manager_client.delete(f"/tasks/{gone}?purge=true"), 404)  # a second purge: gone


def test_purge_refuses_a_task_that_has_not_finished(manager_client, manager, fake_workers):
    task_id = submit(manager_client)
    assert_error(manager_client.delete(f"/tasks/{task_id}?purge=true"), 409, "pending", "stop it first")
    manager.sync_nodes()
    manager.dispatch_pending()
    fake_workers.report(manager.get(task_id).node, task_id, state="running", container_id="c1")
    manager.sync_tasks()
    assert_error(manager_client.delete(f"/tasks/{task_id}?purge=1"), 409, "running")
    assert manager_client.get(f"/tasks/{task_id}").status_code == 200
    assert fake_workers.purged == []


@pytest.mark.parametrize("value", ["maybe", "2", "TRUEISH"])
def test_purge_with_a_bad_value_is_400_naming_it(manager_client, value):
    task_id = submit(manager_client)
    assert_error(manager_client.delete(f"/tasks/{task_id}?purge={value}"), 400, "purge")
    assert manager_client.get(f"/tasks/{task_id}").get_json()["desired_state"] == "running"


def test_purge_of_an_unknown_task_is_404(manager_client):
    assert_error(manager_client.delete("/tasks/0b9c8f4e-6a55-4d0e-9d3c-2f7b1d2a9e11?purge=true"), 404)


def test_plain_delete_and_purge_false_still_stop(manager_client):
    task_id = submit(manager_client)
    response = manager_client.delete(f"/tasks/{task_id}?purge=false")
    assert response.status_code == 202 and response.get_json()["desired_state"] == "stopped"


def test_purge_waits_for_a_worker_whose_copy_still_runs(manager_client, manager, fake_workers):
    task_id = submit(manager_client)
    node = run_to_end(manager, fake_workers, task_id, state="failed")
    fake_workers.report(node, task_id, state="running")  # its copy there has not ended (reported late)
    assert_error(manager_client.delete(f"/tasks/{task_id}?purge=true"), 409, "has not finished")
    assert manager.get(task_id).state is State.FAILED


def test_purge_goes_on_when_the_worker_is_unreachable(manager_client, manager, fake_workers):
    from task import WorkerUnavailable

    task_id = submit(manager_client)
    node = run_to_end(manager, fake_workers, task_id)
    fake_workers.fail("purge_task", node, WorkerUnavailable("down"))
    assert manager_client.delete(f"/tasks/{task_id}?purge=true").status_code == 200
    assert manager.store.get("task", task_id) is None


def test_a_purge_whose_commit_fails_is_not_answered_and_keeps_the_task(manager, fake_workers):
    class FailingStore(MemoryStore):
        fail = False

        def submit(self, items):
            items = list(items)
            if self.fail and any(value is None for _, _, value in items):
                def wait():
                    raise OSError("disk full")
                return wait
            return super().submit(items)

    store = FailingStore()
    manager = Manager([W1], fake_workers, RoundRobin(), store=store)
    client = create_app(manager).test_client()
    task_id = submit(client)
    run_to_end(manager, fake_workers, task_id)
    store.fail = True
    assert_error(client.delete(f"/tasks/{task_id}?purge=true"), 503, "could not be recorded")
    assert client.get(f"/tasks/{task_id}").status_code == 200 and store.get("task", task_id) is not None
    store.fail = False
    assert client.delete(f"/tasks/{task_id}?purge=true").status_code == 200


# ----- the periodic pass


def test_purge_finished_purges_only_what_ended_more_than_the_retention_ago(manager_client, manager, fake_workers):
    manager.retention = 3600.0
    old, running = submit(manager_client), submit(manager_client)
    run_to_end(manager, fake_workers, old, state="failed")
    manager.wall_clock = lambda: ENDED_AT + 3599
    assert manager.purge_finished() == 0
    manager.wall_clock = lambda: ENDED_AT + 3601
    assert manager.purge_finished() == 1
    assert [t.id for t in manager.list()] == [running]
    assert manager.store.get("task", old) is None
    manager.retention = None
    manager.wall_clock = lambda: ENDED_AT + 10 ** 9
    assert manager.purge_finished() == 0  # off: the running one is never purged anyway


def test_a_task_ended_without_a_finish_time_ages_from_when_the_pass_first_saw_it(manager_client, manager):
    manager.retention = 60.0
    task_id = submit(manager_client)
    manager._tasks[task_id].state = State.COMPLETED  # as a report without finished_at leaves it
    manager._index.update(manager._tasks[task_id])
    now = [5_000_000_000.0]
    manager.wall_clock = lambda: now[0]
    assert manager.purge_finished() == 0
    now[0] += 61
    assert manager.purge_finished() == 1


def test_a_purged_task_is_never_sent_again_and_a_copy_still_running_is_stopped(manager_client, manager, fake_workers):
    task_id = submit(manager_client)
    node = run_to_end(manager, fake_workers, task_id)
    fake_workers.fail("purge_task", node, __import__("task").WorkerUnavailable("down"))
    assert manager_client.delete(f"/tasks/{task_id}?purge=true").status_code == 200
    sent = len(fake_workers.sent)
    fake_workers.report(node, task_id, state="running", attempt=1)  # a copy that still runs there
    manager.sync_tasks()
    manager.dispatch_pending()
    assert len(fake_workers.sent) == sent  # never sent (nor placed) again
    assert (node, task_id) in fake_workers.stops  # the stray copy was stopped
    assert manager_client.get(f"/tasks/{task_id}").status_code == 404


def test_a_task_the_manager_never_held_is_left_alone(manager, fake_workers):
    manager.sync_nodes()
    stranger = "1d2e3f40-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
    fake_workers.report(W1, stranger, state="running", attempt=1)  # posted to the worker directly
    manager.sync_tasks()
    manager.send_kills()
    assert fake_workers.stops == []


def test_the_tombstone_outlives_a_restart_and_is_buried_after_the_retention(manager_client, manager, fake_workers):
    manager.retention = 3600.0
    task_id = submit(manager_client)
    node = run_to_end(manager, fake_workers, task_id)
    fake_workers.fail("purge_task", node, __import__("task").WorkerUnavailable("down"))
    assert manager_client.delete(f"/tasks/{task_id}?purge=true").status_code == 200
    assert manager.store.get("purged", task_id) is not None
    again = Manager(["w1:1", "w2:2"], fake_workers, RoundRobin(), store=manager.store)
    again.sync_nodes()
    fake_workers.report(node, task_id, state="running", attempt=1)  # the copy that still runs there
    again.sync_tasks()
    again.send_kills()
    assert (node, task_id) in fake_workers.stops  # stopped by the restarted manager too
    again.retention = 3600.0
    now = manager.store.get("purged", task_id)["at"]
    again.wall_clock = lambda: now + 3599
    again.purge_finished()
    assert again.was_purged(task_id)
    again.wall_clock = lambda: now + 3601
    again.purge_finished()
    assert not again.was_purged(task_id) and manager.store.count("purged") == 0


def test_a_purge_racing_a_reload_does_not_bring_the_task_back(fake_workers):
    class HookedStore(MemoryStore):
        hook = None

        def list(self, kind):
            listed = super().list(kind)
            if kind == "task" and self.hook is not None:
                hook, self.hook = self.hook, None
                hook()  # the purge runs after the reload read the task
            return listed

    store = HookedStore()
    manager = Manager([W1], fake_workers, RoundRobin(), store=store)
    client = create_app(manager).test_client()
    task_id = submit(client)
    run_to_end(manager, fake_workers, task_id)
    store.hook = lambda: manager.purge(task_id)
    manager.reload()
    assert client.get(f"/tasks/{task_id}").status_code == 404
    assert manager.task_counts()["completed"] == 0
    assert Manager([W1], fake_workers, RoundRobin(), store=store).list() == []  # and after a restart


def test_a_restarted_manager_does_not_know_a_purged_task(manager_client, manager, fake_workers):
    task_id = submit(manager_client)
    run_to_end(manager, fake_workers, task_id)
    assert manager_client.delete(f"/tasks/{task_id}?purge=true").status_code == 200
    again = Manager(["w1:1", "w2:2"], fake_workers, RoundRobin(), store=manager.store)
    assert again.list() == [] and again.task_counts()["completed"] == 0
    # its id may be used again once purged: it names nothing any more
    event = TaskEvent(task=Task(id=task_id, image="busybox"))
    assert again.submit(event).state is State.PENDING


# ----- the worker


def finished_on_worker(worker, runtime, wait, exit_code=0):
    task = Task(id="6f1c2e0a-3c2b-4b8e-9f6a-1e2d3c4b5a69", image="busybox", attempt=1, restart_policy="no")
    runtime.exit_on_start = exit_code
    worker.submit(TaskEvent(task=task))
    worker.run_pending()
    wait(lambda: worker.db.get(task.id) and worker.db.get(task.id).state.is_terminal)
    return worker.db.get(task.id)


def test_worker_purge_route(worker, runtime, worker_client, wait):
    task = finished_on_worker(worker, runtime, wait)
    assert_error(worker_client.delete(f"/tasks/{task.id}?purge=nope"), 400, "purge")
    response = worker_client.delete(f"/tasks/{task.id}?purge=true")
    assert response.status_code == 200 and response.get_json()["id"] == task.id
    assert worker.db.get(task.id) is None
    assert task.container_id in runtime.remove_calls
    assert_error(worker_client.delete(f"/tasks/{task.id}?purge=true"), 404)
    assert worker.db.changed_since(0)[1] == []


def test_worker_refuses_to_purge_a_running_task(worker, runtime, worker_client, wait):
    task = Task(id="6f1c2e0a-3c2b-4b8e-9f6a-1e2d3c4b5a69", image="busybox", attempt=1)
    worker.submit(TaskEvent(task=task))
    worker.run_pending()
    wait(lambda: worker.db.get(task.id).state is State.RUNNING)
    assert_error(worker_client.delete(f"/tasks/{task.id}?purge=true"), 409, "running")
    assert worker.db.get(task.id) is not None


def test_worker_purges_by_itself_only_what_the_manager_has_read(worker, runtime, wait):
    task = finished_on_worker(worker, runtime, wait)
    purger = Purger(worker, retention=3600.0)
    later = ENDED_AT + 3601  # FakeRuntime's containers finish at ENDED
    assert purger.purge_finished(now=later) == 0  # the manager has not read its end yet
    purger.acknowledge(task.version - 1)
    assert purger.purge_finished(now=later) == 0
    purger.acknowledge(task.version)
    assert purger.purge_finished(now=ENDED_AT + 3599) == 0  # not old enough
    assert purger.purge_finished(now=later) == 1
    assert worker.db.get(task.id) is None
    assert Purger(worker, retention=None).purge_finished(now=later) == 0


def test_the_change_feed_read_is_the_acknowledgement(worker, runtime, worker_client, wait):
    task = finished_on_worker(worker, runtime, wait)
    purger = Purger(worker, retention=1.0)
    from worker.api import create_app as create_worker_app

    client = create_worker_app(worker, stats=dict, purger=purger).test_client()
    version = int(client.get("/tasks?since=0").headers["X-Orca-Version"])
    assert purger.purge_finished(now=ENDED_AT + 10) == 0
    client.get(f"/tasks?since={version}")
    assert purger.purge_finished(now=ENDED_AT + 10) == 1 and worker.db.get(task.id) is None


# ----- configuration


@pytest.mark.parametrize("raw, seconds", [("", 86400.0), ("90", 90.0), ("15m", 900.0), ("24h", 86400.0),
                                          ("7d", 604800.0), ("off", None), (" OFF ", None)])
def test_orca_retention_values(raw, seconds):
    assert from_env({"ORCA_RETENTION": raw}).retention == seconds


@pytest.mark.parametrize("raw", ["0", "-5", "soon", "24x", "nan", "100000d"])
def test_orca_retention_refuses_bad_values_naming_it(raw):
    with pytest.raises(ConfigError, match="ORCA_RETENTION"):
        from_env({"ORCA_RETENTION": raw})


# ----- services


def test_a_service_replica_is_purged_only_once_its_service_no_longer_counts_it(manager, fake_workers, clock):
    from manager.services import Services

    services = Services(manager, manager.store, clock=clock, replace_delay=5.0)
    client = create_app(manager, services=services).test_client()
    assert client.post("/services", json={"name": "web", "replicas": 1,
                                          "task": {"image": "busybox", "command": ["sleep", "60"]}}).status_code == 201

    def settle():
        manager.sync_nodes()
        for _ in range(3):
            services.reconcile_services()
            manager.dispatch_pending()
            for task in manager.list():
                if task.state is State.SCHEDULED and task.node:
                    fake_workers.report(task.node, task.id, state="running", attempt=task.attempt)
            manager.sync_tasks()
    settle()
    (first,) = manager.list()
    fake_workers.report(first.node, first.id, state="failed", attempt=first.attempt, exit_code=1,
                        error="exited with code 1", finished_at=ENDED)
    manager.sync_tasks()
    assert_error(client.delete(f"/tasks/{first.id}?purge=true"), 409, "service web", "replaces it first")
    services.reconcile_services()
    assert_error(client.delete(f"/tasks/{first.id}?purge=true"), 409, "replaces it first")
    clock.advance(6.0)
    settle()  # the replacement is placed and runs
    assert len(manager.list()) == 2
    assert client.delete(f"/tasks/{first.id}?purge=true").status_code == 200
    settle()  # the purge changes nothing the service decides: one replica, no new placement
    live = [t for t in manager.list() if not t.state.is_terminal]
    assert len(manager.list()) == len(live) == 1 and live[0].state is State.RUNNING
    assert client.get("/services/web").get_json()["running"] == 1
