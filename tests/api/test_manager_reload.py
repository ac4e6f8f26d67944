"""Manager.reload(): a follower's refresh and a new leader's take-over, over one shared store."""
from __future__ import annotations

import threading

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


class HeldStore(MemoryStore):
    """A store whose next commit lands only when `release` is set (a slow database)."""

    def __init__(self) -> None:
        super().__init__()
        self.held, self.release = threading.Event(), threading.Event()
        self.hold_next = False
        self.after_task_list = None

    def list(self, kind: str):
        found = super().list(kind)
        if kind == "event" and self.after_task_list is not None:
            land, self.after_task_list = self.after_task_list, None
            land()  # after the reload read the tasks, before it takes the manager's lock
        return found

    def submit(self, items):
        if not self.hold_next:
            return super().submit(items)
        self.hold_next = False
        items = list(items)

        def wait():
            self.held.set()
            assert self.release.wait(10)
            super(HeldStore, self).submit(items)()
        return wait


def _kept_then_placed_once(manager: Manager, store: MemoryStore, task_id: str) -> None:
    """The acknowledged task is durable, pending in memory, then placed (attempt 1, durable)."""
    assert store.get("task", task_id) is not None
    assert manager.get(task_id).state is State.PENDING
    manager.sync_nodes()
    manager.dispatch_pending()
    assert manager.get(task_id).attempt == 1 and store.get("task", task_id)["attempt"] == 1


def test_a_task_whose_intake_commits_after_a_reload_is_kept_and_placed(clock):
    """A new leader's take-over reload reads the store while an intake's commit is in flight:
    the task must neither vanish from memory nor be left unplaced once the commit lands."""
    store = HeldStore()
    workers = FakeWorkerClient()
    manager = Manager(list(WORKERS), workers, RoundRobin(), store, clock=clock)
    manager.submit(_event())
    store.hold_next = True
    submitted: list = []
    intake = threading.Thread(target=lambda: submitted.append(manager.submit(_event())))
    intake.start()
    assert store.held.wait(10)
    manager.reload()  # the store does not have the second task yet
    store.release.set()
    intake.join(10)
    _kept_then_placed_once(manager, store, submitted[0].id)


def test_a_task_whose_intake_commits_while_a_reload_reads_is_kept_and_placed(clock):
    """The intake's commit lands after the reload read the tasks and before it takes the lock:
    by then the intake is acknowledged and no longer marked uncommitted, but the reload's
    snapshot lacks it."""
    store = HeldStore()
    manager = Manager(list(WORKERS), FakeWorkerClient(), RoundRobin(), store, clock=clock)
    store.hold_next = True
    submitted: list = []
    intake = threading.Thread(target=lambda: submitted.append(manager.submit(_event())))
    intake.start()
    assert store.held.wait(10)

    def land() -> None:
        store.release.set()
        intake.join(10)
    store.after_task_list = land
    manager.reload()
    _kept_then_placed_once(manager, store, submitted[0].id)
