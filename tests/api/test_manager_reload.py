"""Manager.reload(): a follower's refresh and a new leader's take-over, over one shared store."""
from __future__ import annotations

from manager.manager import Manager
from scheduler.round_robin import RoundRobin
from store import MemoryStore
from task import State, Task, TaskEvent, WorkerUnreachable
from tests.api.conftest import WORKERS, FakeWorkerClient


def _event(image: str = "busybox") -> TaskEvent:
    return TaskEvent(task=Task(image=image), state=State.RUNNING)


def test_a_follower_sees_the_leaders_writes_after_a_reload_indexes_included(clock):
    store = MemoryStore()
    leader = Manager(list(WORKERS), FakeWorkerClient(), RoundRobin(), store, clock=clock)
    follower = Manager(list(WORKERS), FakeWorkerClient(), RoundRobin(), store, clock=clock)
    ids = [leader.submit(_event()).id for _ in range(5)]
    assert follower.list() == []
    follower.reload()
    assert [t.id for t in follower.list()] == ids
    assert [t.id for t in follower.query_tasks(state="pending", limit=3).items] == ids[:3]
    assert follower.get(ids[0]).state is State.PENDING


def test_a_new_leader_gives_every_worker_a_liveness_period_and_finishes_the_work(clock):
    store = MemoryStore()
    workers = FakeWorkerClient()
    old = Manager(list(WORKERS), workers, RoundRobin(), store, clock=clock)
    task = old.submit(_event())
    new = Manager(list(WORKERS), workers, RoundRobin(), store, clock=clock)
    for node in new._nodes:  # as a follower it never heard from the workers: long ago, lost
        node.misses, node.lost = 99, True
    clock.advance(3600)
    new.reload()
    assert all(not n.lost and n.misses == 0 for n in new._nodes)
    workers.fail("stats", "*", WorkerUnreachable("cut off"))
    new.sync_nodes()  # one missed check is not a lost worker: nothing is rescheduled
    assert not any(n.lost for n in new._nodes)
    workers.heal()
    new.sync_nodes()
    new.dispatch_pending()
    assert [address for address, _ in workers.sent] and new.get(task.id).attempt == 1
    assert store.get("task", task.id)["attempt"] == 1  # the placement is durable
