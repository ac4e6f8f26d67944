"""What a failure leaves behind: a stop whose commit failed leaves its task in the work sets
(placed at the next pass, not at the 10 s rescan), a worker's reports whose commit failed are
kept in memory and written at the next pass (also when a user's change to the same task
commits, or fails, meanwhile), and a send a worker answers with a 5xx makes
the next liveness pass ask that worker in full, even while its change feed answers."""
from __future__ import annotations

import threading

import pytest

from manager.manager import Manager
from scheduler.round_robin import RoundRobin
from store import MemoryStore
from task import State, Task, TaskEvent, Unavailable, WorkerUnavailable, WorkerUnreachable
from tests.api.conftest import WORKERS, FakeWorkerClient


def test_a_stop_whose_commit_failed_leaves_its_task_to_be_placed_at_the_next_pass(clock):
    store, workers = GatedStore(), FakeWorkerClient()
    manager = Manager(list(WORKERS), workers, RoundRobin(), store, clock=clock)
    manager.sync_nodes()
    manager.dispatch_pending()  # the rescan is done: the next one is 10 s away on this clock
    task = manager.submit(TaskEvent(task=Task(image="busybox"), state=State.RUNNING))
    held, release = store.hold_next()
    stopping, failed = stop_in_thread(manager, task.id)
    assert held.wait(10)
    manager.dispatch_pending()  # while the stop commits, the task is left alone
    assert workers.sent == []
    release.set()
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


class GatedStore(MemoryStore):
    """A store whose next commits (one per gate added) are each held until released, then fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[tuple[threading.Event, threading.Event]] = []

    def hold_next(self) -> tuple[threading.Event, threading.Event]:
        gate = (threading.Event(), threading.Event())  # (held, release)
        self.gates.append(gate)
        return gate

    def submit(self, items):
        if not self.gates:
            return super().submit(items)
        held, release = self.gates.pop(0)

        def wait():
            held.set()
            assert release.wait(10)
            raise OSError("disk full")
        return wait


def running_on_worker(clock):
    """A manager whose task the worker has just reported running (not read yet)."""
    store, workers = GatedStore(), FakeWorkerClient()
    manager = Manager(list(WORKERS), workers, RoundRobin(), store, clock=clock)
    manager.sync_nodes()
    task = manager.submit(TaskEvent(task=Task(image="busybox"), state=State.RUNNING))
    manager.dispatch_pending()
    node = manager.get(task.id).node
    manager.sync_tasks()
    workers.report(node, task.id, state="running", started_at="2026-12-01T00:00:00Z")
    return manager, store, workers, task.id, node


def in_thread(call) -> threading.Thread:
    thread = threading.Thread(target=call)
    thread.start()
    return thread


def stop_in_thread(manager, task_id) -> tuple[threading.Thread, list[Exception]]:
    """A user's stop on a thread of its own; the list gets its 503, if it is refused."""
    refused: list[Exception] = []

    def stop() -> None:
        try:
            manager.stop(task_id)
        except Unavailable as exc:
            refused.append(exc)
    return in_thread(stop), refused


def durable(store, task_id) -> tuple:
    data = store.get("task", task_id)
    return data["state"], data["desired_state"], data["version"]


def in_memory(manager, task_id) -> tuple:
    task = manager.get(task_id)
    return task.state.value, task.desired_state, task.version


def test_reports_whose_commit_failed_are_kept_and_written_at_the_next_pass(clock):
    """A report is a fact the feed will not bring again: memory keeps it, and the next
    dispatch pass writes it (before, it stayed out of the store until the task changed again)."""
    manager, store, _, task_id, _ = running_on_worker(clock)
    held, release = store.hold_next()
    release.set()
    manager.sync_tasks()
    assert in_memory(manager, task_id)[0] == "running" and durable(store, task_id)[0] == "scheduled"
    manager.dispatch_pending()
    assert durable(store, task_id) == in_memory(manager, task_id)
    assert durable(store, task_id)[0] == "running"


def test_a_stop_acknowledged_while_a_report_commit_fails_is_kept(clock):
    manager, store, workers, task_id, node = running_on_worker(clock)
    held, release = store.hold_next()
    feed = in_thread(manager.sync_tasks)
    assert held.wait(10)
    assert manager.stop(task_id).desired_state == "stopped"  # its own commit succeeds
    release.set()
    feed.join(10)
    manager.dispatch_pending()
    assert (node, task_id) in workers.stops  # the pass sent the stop, and took its answer
    assert durable(store, task_id) == in_memory(manager, task_id)
    assert durable(store, task_id)[:2] == ("completed", "stopped")


def test_a_report_and_a_stop_whose_commits_both_fail(clock):
    """The stop is refused (503) and undone; the report applied before it stays and is written."""
    manager, store, _, task_id, _ = running_on_worker(clock)
    first, second = store.hold_next(), store.hold_next()
    feed = in_thread(manager.sync_tasks)
    assert first[0].wait(10)
    stopping, refused = stop_in_thread(manager, task_id)
    assert second[0].wait(10)
    first[1].set()
    feed.join(10)
    second[1].set()
    stopping.join(10)
    assert refused and in_memory(manager, task_id)[:2] == ("running", "running")
    manager.dispatch_pending()
    assert durable(store, task_id) == in_memory(manager, task_id)


def test_an_answer_whose_commit_failed_while_the_feed_moved_on_is_written(clock):
    """The feed reads the same report while the answer's commit is held: it is no news to
    memory, the cursor moves on; the answer's commit then fails, and the pass writes it."""
    from task.wire import parse_report

    manager, store, workers, task_id, node = running_on_worker(clock)
    answer = parse_report(dict(workers._tasks[node][task_id]))
    held, release = store.hold_next()
    sending = in_thread(lambda: manager._take_reports(node, [answer]))
    assert held.wait(10)
    manager.sync_tasks()
    release.set()
    sending.join(10)
    manager.dispatch_pending()
    assert durable(store, task_id)[0] == in_memory(manager, task_id)[0] == "running"


def test_a_refused_stop_that_another_commit_carried_is_written_back(clock):
    """The stop's commit fails (503), but a report on the same task committed meanwhile and
    carried desired_state=stopped into the store: the pass writes the task back as restored."""
    manager, store, _, task_id, _ = running_on_worker(clock)
    held, release = store.hold_next()
    stopping, refused = stop_in_thread(manager, task_id)
    assert held.wait(10)
    manager.sync_tasks()  # the report's commit succeeds, with the stop in it
    release.set()
    stopping.join(10)
    assert refused and in_memory(manager, task_id)[1] == "running"
    manager.dispatch_pending()
    assert durable(store, task_id) == in_memory(manager, task_id)
    manager.reload()
    assert manager.get(task_id).desired_state == "running"


def test_a_kill_judged_against_an_undone_move_is_dropped(clock):
    """A lost node's move is being committed when the node answers again: its copy looks
    stale and a kill is ordered. The move's commit fails and is undone, so that copy is the
    current attempt again: the kill goes, and the task keeps running."""
    manager, store, workers, task_id, node = running_on_worker(clock)
    manager.sync_tasks()
    workers.fail("stats", node, WorkerUnreachable("gone"))
    settle = manager._settle
    manager._settle = lambda name: None  # the third missed check declares it lost, not settled yet
    for _ in range(3):
        manager.sync_nodes()
    manager._settle = settle
    held, release = store.hold_next()
    settling = in_thread(manager._settle_deferred)
    assert held.wait(10)
    workers.heal()
    manager._answered(manager._by_name[node], workers.stats(node), {"reachable": True})
    manager.sync_tasks()
    assert manager._kills  # judged against the move in flight
    release.set()
    settling.join(10)
    assert not manager._kills
    manager.dispatch_pending()
    manager.sync_tasks()
    assert workers.stops == [] and manager.get(task_id).state is State.RUNNING


@pytest.mark.parametrize("first", ["intake", "stop"])
def test_a_stop_while_the_tasks_intake_or_stop_is_being_recorded_answers_503(clock, first):
    """Its outcome is not known yet: a 200 would acknowledge a stop of a task that may not
    exist (the intake fails), or that stays running (the first stop fails)."""
    store, workers = GatedStore(), FakeWorkerClient()
    manager = Manager(list(WORKERS), workers, RoundRobin(), store, clock=clock)
    manager.sync_nodes()
    task = Task(image="busybox")
    if first == "stop":
        manager.submit(TaskEvent(task=task, state=State.RUNNING))
    held, release = store.hold_next()
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(manager.submit(TaskEvent(task=task, state=State.RUNNING)) if first == "intake"
                           else manager.stop(task.id))
        except Unavailable as exc:
            outcome.append(exc)
    thread = in_thread(call)
    assert held.wait(10)
    with pytest.raises(Unavailable, match="being recorded"):
        manager.stop(task.id)
    release.set()
    thread.join(10)
    assert isinstance(outcome[0], Unavailable)  # the first change failed: nothing was acknowledged
    if first == "stop":
        assert store.get("task", task.id)["desired_state"] == "running"
        assert manager.stop(task.id).desired_state == "stopped"  # a retry now goes through
    else:
        assert store.get("task", task.id) is None
