"""What a failure leaves behind: a stop whose commit failed leaves its task in the work sets
(placed at the next pass, not at the 10 s rescan), a worker's reports whose commit failed are
undone and read again, and a send a worker answers with a 5xx makes
the next liveness pass ask that worker in full, even while its change feed answers."""
from __future__ import annotations

import threading

from manager.manager import Manager
from scheduler.round_robin import RoundRobin
from store import MemoryStore
from task import State, Task, TaskEvent, Unavailable, WorkerUnavailable
from tests.api.conftest import WORKERS, FakeWorkerClient


class FailingStore(MemoryStore):
    """A store whose next commit is held until `release` is set, then fails."""

    def __init__(self) -> None:
        super().__init__()
        self.held, self.release = threading.Event(), threading.Event()
        self.fail_next = False

    def submit(self, items):
        if not self.fail_next:
            return super().submit(items)
        self.fail_next = False

        def wait():
            self.held.set()
            assert self.release.wait(10)
            raise OSError("disk full")
        return wait


def test_a_stop_whose_commit_failed_leaves_its_task_to_be_placed_at_the_next_pass(clock):
    store, workers = FailingStore(), FakeWorkerClient()
    manager = Manager(list(WORKERS), workers, RoundRobin(), store, clock=clock)
    manager.sync_nodes()
    manager.dispatch_pending()  # the rescan is done: the next one is 10 s away on this clock
    task = manager.submit(TaskEvent(task=Task(image="busybox"), state=State.RUNNING))
    store.fail_next = True
    failed: list[Exception] = []

    def stop() -> None:
        try:
            manager.stop(task.id)
        except Unavailable as exc:
            failed.append(exc)
    stopping = threading.Thread(target=stop)
    stopping.start()
    assert store.held.wait(10)
    manager.dispatch_pending()  # while the stop commits, the task is left alone
    assert workers.sent == []
    store.release.set()
    stopping.join(10)
    assert failed and manager.get(task.id).desired_state != "stopped"
    manager.dispatch_pending()
    assert manager.get(task.id).attempt == 1 and len(workers.sent) == 1


def test_a_send_answered_with_a_5xx_makes_the_next_pass_check_that_worker_in_full(clock):
    workers = FakeWorkerClient()
    manager = Manager(list(WORKERS), workers, RoundRobin(), MemoryStore(), clock=clock)
    manager.fresh_for, manager.refresh_after = 2.5, 15.0
    manager.sync_nodes()  # first pass: every worker checked in full

    def feeds_answer() -> None:
        with manager._lock:
            for node in manager._nodes:
                node.record_answer(clock())
    clock.advance(1.0)
    feeds_answer()
    for address in WORKERS:
        workers.engines[address] = {"reachable": False, "error": "docker engine unreachable"}
    manager.sync_nodes()
    assert all(n.engine.get("reachable") for n in manager.nodes())  # fresh feeds: not asked
    workers.fail("send_event", "*", WorkerUnavailable("worker answered 503"))
    task = manager.submit(TaskEvent(task=Task(image="busybox"), state=State.RUNNING))
    manager.dispatch_pending()
    placed_on = manager.get(task.id).node
    feeds_answer()
    manager.sync_nodes()
    engines = {n.name: n.engine.get("reachable") for n in manager.nodes()}
    assert engines[placed_on] is False
    assert all(engines[name] for name in WORKERS if name != placed_on)  # the others still not asked


def test_reports_whose_commit_failed_are_undone_and_read_again(clock):
    """The manager applies a worker's feed, then the store fails the commit: memory goes back
    to what is durable and the feed's cursor stays, so the next read brings the same reports
    (before, the cursor had moved on and the store never got them)."""
    store, workers = FailingStore(), FakeWorkerClient()
    manager = Manager(list(WORKERS), workers, RoundRobin(), store, clock=clock)
    manager.sync_nodes()
    task = manager.submit(TaskEvent(task=Task(image="busybox"), state=State.RUNNING))
    manager.dispatch_pending()
    node = manager.get(task.id).node
    manager.sync_tasks()
    assert manager.get(task.id).state is State.SCHEDULED
    workers.report(node, task.id, state="running", started_at="2026-12-01T00:00:00Z")
    store.fail_next = True
    store.release.set()
    manager.sync_tasks()
    assert manager.get(task.id).state is State.SCHEDULED
    assert store.get("task", task.id)["state"] == "scheduled"
    manager.sync_tasks()
    assert manager.get(task.id).state is State.RUNNING
    assert store.get("task", task.id)["state"] == "running"
