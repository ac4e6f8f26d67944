"""Regressions of the review of the node routes and drains (issue 13): a drain's stop-then-move
survives a manager restart and a take-over; a placement is not recorded on a node removed,
drained or made ineligible while it was being decided; node writes that fail are undone in
memory; a `null` drain body is refused. API tier, with the fake workers; the simulation
(tests/sim/test_drain_restart_sim.py) checks the restart case against the state model."""
import pytest

from manager.api import create_app
from manager.manager import Manager
from scheduler import Spread
from store import MemoryStore
from task import Task, WorkerUnavailable
from task import lifecycle
from tests.api.conftest import WORKERS

W1, W2 = WORKERS


class FailingStore(MemoryStore):
    """A MemoryStore whose commits fail while `fail` is set (a full disk, a lost database)."""

    fail = False

    def submit(self, items):
        if self.fail:
            def wait():
                raise RuntimeError("disk full")
            return wait
        return super().submit(items)


def manager_on(store, fake_workers, clock):
    manager = Manager(list(WORKERS), fake_workers, Spread(), store=store, clock=clock)
    manager.sync_nodes()
    return manager


def running_on_w1(mgr, client, fake_workers):
    """A task running on W1 (W2 ineligible while it is placed, then eligible again)."""
    client.post(f"/nodes/{W2}/eligibility", json={"eligible": False})
    tid = client.post("/tasks", json={"task": {"image": "busybox"}}).get_json()["id"]
    mgr.dispatch_pending()
    fake_workers.report(W1, tid, state="running")
    mgr.sync_tasks()
    assert mgr.get(tid).node == W1 and mgr.get(tid).state.value == "running"
    assert client.post(f"/nodes/{W2}/eligibility", json={"eligible": True}).status_code == 200
    return tid


def w1_copy(fake_workers, tid):
    return fake_workers._tasks[W1][tid]  # noqa: SLF001 - the fake worker's record of its copy


def drain_with_kill_undelivered(mgr, client, fake_workers, tid):
    fake_workers.fail("stop_task", W1, WorkerUnavailable("slow"))  # the kill order is not delivered
    assert client.post(f"/nodes/{W1}/drain", json={"deadline": 600}).status_code == 202
    mgr.drain_nodes()
    mgr.dispatch_pending()
    moved = mgr.get(tid)
    assert moved.node is None and moved.moving_from == {"node": W1, "attempt": 1}
    assert w1_copy(fake_workers, tid)["state"] == "running"


@pytest.mark.parametrize("how", ["restart", "take-over"])
def test_a_moved_task_waits_for_its_old_copy_across_a_restart_and_a_take_over(fake_workers, clock, how):
    store = MemoryStore()
    mgr = manager_on(store, fake_workers, clock)
    follower = manager_on(store, fake_workers, clock)  # a standby manager sharing the store
    client = create_app(mgr).test_client()
    tid = running_on_w1(mgr, client, fake_workers)
    drain_with_kill_undelivered(mgr, client, fake_workers, tid)

    if how == "restart":
        new = manager_on(store, fake_workers, clock)
    else:
        follower.reload()
        new = follower
    for _ in range(3):  # before any read of W1, and with the kill still undelivered
        new.dispatch_pending()
        clock.advance(10)
    task = new.get(tid)
    assert task.node is None and task.attempt == 1, "placed while its old copy still runs on W1"
    assert new.node(W1).drain is not None, "drain completed while attempt 1 still runs on W1"
    assert [a for a, e in fake_workers.sent if e["task"]["id"] == tid and e["attempt"] > 1] == []

    fake_workers.heal()  # the kill order gets through: the old copy stops, then the task moves
    for _ in range(3):
        new.dispatch_pending()
        new.sync_tasks()
        clock.advance(10)
    task = new.get(tid)
    assert w1_copy(fake_workers, tid)["state"] == "completed"
    assert (task.node, task.attempt, task.moving_from) == (W2, 2, None)
    assert new.node(W1).drain is None  # drained: nothing of ours is left on W1
    assert (W1, tid) in fake_workers.stops
    assert store.get("task", tid)["moving_from"] is None


def test_a_restart_with_the_old_copy_already_stopped_places_the_task(fake_workers, clock):
    store = MemoryStore()
    mgr = manager_on(store, fake_workers, clock)
    client = create_app(mgr).test_client()
    tid = running_on_w1(mgr, client, fake_workers)
    drain_with_kill_undelivered(mgr, client, fake_workers, tid)
    fake_workers.report(W1, tid, state="completed")  # the copy ended on its own meanwhile
    fake_workers.heal()
    new = manager_on(store, fake_workers, clock)
    new.dispatch_pending()  # the kill is sent again; the worker has it ended
    new.dispatch_pending()
    assert (new.get(tid).node, new.get(tid).attempt) == (W2, 2)


def test_a_placement_is_not_recorded_on_a_node_removed_while_it_was_chosen(fake_workers, clock):
    mgr = manager_on(MemoryStore(), fake_workers, clock)
    client = create_app(mgr).test_client()
    real_place = mgr._scheduler.place
    answers = []

    def place(task, cluster):  # the decision is taken; an operator acts before it is recorded
        placement = real_place(task, cluster)
        mgr._lock.release()
        try:
            name = placement.node.name
            answers.append(client.post(f"/nodes/{name}/eligibility", json={"eligible": False}).status_code)
            answers.append(client.delete(f"/nodes/{name}").status_code)
        finally:
            mgr._lock.acquire()
        return placement

    mgr._scheduler.place = place
    tid = client.post("/tasks", json={"task": {"image": "busybox"}}).get_json()["id"]
    mgr.dispatch_pending()
    mgr._scheduler.place = real_place
    assert answers == [200, 200]
    removed = W1 if W1 not in [n["name"] for n in client.get("/nodes").get_json()] else W2
    for _ in range(3):
        clock.advance(30)
        mgr.sync_nodes()
        mgr.dispatch_pending()
    task = client.get(f"/tasks/{tid}").get_json()
    assert task["node"] is not None and task["node"] != removed
    assert task["node"] in [n["name"] for n in client.get("/nodes").get_json()]
    assert all(address != removed for address, _ in fake_workers.sent)


@pytest.mark.parametrize("change", ["ineligible", "drain"])
def test_a_placement_is_not_recorded_on_a_node_that_stopped_taking_tasks_meanwhile(fake_workers, clock, change):
    mgr = manager_on(MemoryStore(), fake_workers, clock)
    client = create_app(mgr).test_client()
    real_place = mgr._scheduler.place
    chosen = []

    def place(task, cluster):
        placement = real_place(task, cluster)
        mgr._lock.release()
        try:
            name = placement.node.name
            chosen.append(name)
            if change == "drain":
                answer = client.post(f"/nodes/{name}/drain", json={"deadline": 60})
            else:
                answer = client.post(f"/nodes/{name}/eligibility", json={"eligible": False})
            assert answer.status_code in (200, 202)
        finally:
            mgr._lock.acquire()
        return placement

    mgr._scheduler.place = place
    tid = client.post("/tasks", json={"task": {"image": "busybox"}}).get_json()["id"]
    mgr.dispatch_pending()
    mgr._scheduler.place = real_place
    mgr.dispatch_pending()
    task = mgr.get(tid)
    assert chosen and task.node not in (None, chosen[0]) and task.attempt == 1
    assert [a for a, _ in fake_workers.sent] == [task.node]


def test_a_task_recorded_on_a_removed_node_is_placed_again(fake_workers, clock):
    store = MemoryStore()
    mgr = manager_on(store, fake_workers, clock)
    task = Task(image="busybox", state=lifecycle.State.PENDING)
    lifecycle.place(task, W1)  # a placement recorded on W1 by a manager that lost the race...
    store.submit([("task", task.id, task.to_dict()),
                  ("node", W1, {"name": W1, "removed": True})])()  # ...with W1's removal
    mgr.reload()
    assert W1 not in [n.name for n in mgr.nodes()]
    mgr.dispatch_pending()
    mgr.dispatch_pending()
    moved = mgr.get(task.id)
    assert (moved.node, moved.attempt, moved.restart_count) == (W2, 2, 0)
    assert [a for a, e in fake_workers.sent if e["task"]["id"] == task.id] == [W2]


def test_node_writes_that_fail_are_undone_and_answer_503(fake_workers, clock):
    store = FailingStore()
    mgr = manager_on(store, fake_workers, clock)
    client = create_app(mgr).test_client()
    assert client.post(f"/nodes/{W2}/eligibility", json={"eligible": False}).status_code == 200
    records = {r["name"]: dict(r) for r in store.list("node")}
    store.fail = True

    drain = client.post(f"/nodes/{W1}/drain", json={})
    assert drain.status_code == 503 and "could not be recorded" in drain.get_json()["error"]
    assert mgr.node(W1).drain is None and mgr.node(W1).eligible
    eligible = client.post(f"/nodes/{W2}/eligibility", json={"eligible": True})
    assert eligible.status_code == 503 and mgr.node(W2).eligible is False
    removal = client.delete(f"/nodes/{W2}")
    assert removal.status_code == 503 and mgr.has_node(W2)
    joined = client.post("/nodes", json={"name": "w3", "address": "w3:3"})
    assert joined.status_code == 503 and not mgr.has_node("w3")
    rejoined = client.post("/nodes", json={"name": W1, "address": W1, "labels": {"zone": "b"}})
    assert rejoined.status_code == 503 and mgr.node(W1).labels == {}

    # Nothing acts on the changes refused: a task still goes to W1, no drain moves it.
    store.fail = False
    tid = client.post("/tasks", json={"task": {"image": "busybox"}}).get_json()["id"]
    mgr.dispatch_pending()
    mgr.drain_nodes()
    assert mgr.get(tid).node == W1
    assert {r["name"]: dict(r) for r in store.list("node")} == records
    assert sorted(n.name for n in manager_on(store, fake_workers, clock).nodes()) == sorted(n.name for n in mgr.nodes())


def test_a_failed_drain_cancel_keeps_the_drain(fake_workers, clock):
    store = FailingStore()
    mgr = manager_on(store, fake_workers, clock)
    client = create_app(mgr).test_client()
    assert client.post(f"/nodes/{W1}/drain", json={"deadline": 60}).status_code == 202
    store.fail = True
    assert client.post(f"/nodes/{W1}/drain", json={"cancel": True}).status_code == 503
    assert mgr.node(W1).drain is not None and mgr.node(W1).eligible is False
    store.fail = False
    assert client.post(f"/nodes/{W1}/drain", json={"cancel": True}).status_code == 202
    assert mgr.node(W1).drain is None


def test_a_drain_with_a_null_body_is_refused(fake_workers, clock):
    mgr = manager_on(MemoryStore(), fake_workers, clock)
    client = create_app(mgr).test_client()
    answer = client.post(f"/nodes/{W1}/drain", data="null", content_type="application/json")
    assert answer.status_code == 400
    assert "body" in answer.get_json()["error"]
    assert mgr.node(W1).drain is None and mgr.node(W1).eligible
    assert client.post(f"/nodes/{W1}/drain").status_code == 202  # no body at all: the defaults
