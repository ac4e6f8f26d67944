"""The manager's reconciler of desired state: place tasks, deliver attempts, deliver stops.

Level-triggered: what is left to do is derived from each task's desired and observed state
(task.lifecycle.next_action), kept in work sets that every change feeds and a periodic scan
rebuilds. A send that fails is retried against the same worker with the same attempt, never
counted against the worker's liveness and never sent elsewhere: only a lost worker's tasks
move (manager.liveness).
"""
from __future__ import annotations

import copy
import itertools
import logging
from collections import OrderedDict
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from task import (NotFound, OrcaError, State, Task, TaskEvent, Unavailable,
                  ValidationError, WorkerUnavailable)
from task import lifecycle
from task.lifecycle import Action, Report
from task.wire import parse_report

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger(__name__)

RETRY_FIRST = 0.5  # seconds before a failed send is tried again, doubling
RETRY_CAP = 8.0
RESCAN_EVERY = 10.0  # seconds between full scans of the tasks (the safety net)
PLACE_PER_PASS = 10_000  # tasks placed per pass: a burst is placed in slices, the first running sooner;
                         # large enough that a pass over 1,000 nodes sends each several tasks in one request


class Dispatch:
    """Mixin of Manager: dispatch_pending() and what it needs."""

    def __init__(self: "Manager") -> None:
        self._work: OrderedDict[str, None] = OrderedDict()  # tasks to place or settle, oldest first
        self._blocked: OrderedDict[str, None] = OrderedDict()  # tasks no node had room for (manager/placing.py)
        self._unsent: set[str] = set()  # placed attempts not known to have reached their worker
        self._stopping: set[str] = set()  # stopped by the user, not yet reported ended
        self._retry_at: dict[str, tuple[float, float]] = {}  # task -> (next try, current delay)
        self._next_scan = 0.0
        if not hasattr(self, "fan_out"):  # kept across reload()
            # Runs a pass's per-node sends: in order by default (the simulation stays
            # deterministic); the service gives a bounded thread pool.
            self.fan_out: Callable[[list[Callable[[], int]]], list[int]] = _in_order

    def _schedule_work(self: "Manager", task: Task) -> None:
        """Put a task in the work set its state calls for (caller holds the lock)."""
        if task.id in self._uncommitted:
            return
        action = lifecycle.next_action(task, task.id in self._unsent)
        if action is Action.PLACE and task.id in self._blocked:
            pass  # parked until room may have appeared (manager/placing.py)
        elif action in (Action.PLACE, Action.CANCEL):
            self._work[task.id] = None
        elif task.node is not None and task.node not in self._by_name and not task.state.is_terminal:
            self._work[task.id] = None  # its node was removed: placed again (_reconcile)
        elif action is Action.SEND_STOP:
            self._stopping.add(task.id)
        if task.state.is_terminal:
            self._work.pop(task.id, None)
            self._blocked.pop(task.id, None)
            self._stopping.discard(task.id)
            self._unsent.discard(task.id)
            self._retry_at.pop(task.id, None)

    def pending_count(self: "Manager") -> int:
        """Tasks waiting for placement, delivery or a stop."""
        with self._lock:
            return len(self._work) + len(self._blocked) + len(self._unsent) + len(self._stopping)

    def dispatch_pending(self: "Manager") -> int:
        """One reconcile pass over the work sets (and, every RESCAN_EVERY s, over every
        unfinished task): cancels and placements are each recorded in one commit, then every
        node gets its runs and stops in one batched request (nodes in parallel through
        `fan_out`). Each task is handled in its own try. Returns the number of sends that got
        an answer."""
        saving = self.queue_unsaved()  # waited for at the end: an outage never holds up the sends
        now = self._clock()
        with self._lock:
            if now >= self._next_scan:
                self._next_scan = now + RESCAN_EVERY
                for task_id in self._index.unfinished():  # finished tasks have nothing to do
                    self._schedule_work(self._tasks[task_id])
                self._room_freed = True  # and the parked tasks are tried again
            self._unblock_if_room()
            taken = list(itertools.islice(self._work, PLACE_PER_PASS))
            for task_id in taken:
                del self._work[task_id]
            more = bool(self._work)
            ids = taken + sorted(self._unsent) + sorted(self._stopping)
        plan = _Plan()
        for task_id in dict.fromkeys(ids):
            try:
                self._classify(task_id, now, plan)
            except Exception:
                log.exception("task %s: reconcile failed; it will be tried again", task_id)
                self._requeue([task_id])
        for task_id, name in plan.gone:
            try:
                self._leave_removed(self._tasks[task_id], name)
            except Exception:
                log.exception("task %s: leaving removed node %s failed; it will be tried again", task_id, name)
        self._cancel_all(plan.cancel)
        self._place_all(plan)
        calls = [lambda name=name, items=items: self._send_batch(name, items) for name, items in plan.sends.items()]
        delivered = sum(self.fan_out(calls))
        self.send_kills()
        self.drain_nodes()
        saving()
        if more:  # the rest of a burst: the next pass at once (pipelined: these run meanwhile)
            self.on_work()
        return delivered

    def _classify(self: "Manager", task_id: str, now: float, plan: "_Plan") -> None:
        """Put a task into the pass's plan by its next action (or leave it for later)."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task_id in self._uncommitted:
                return
            action = lifecycle.next_action(task, task_id in self._unsent)
            gone = task.node if task.node is not None and task.node not in self._by_name \
                and not task.state.is_terminal else None
            if gone is not None:  # placed on a node removed since: placed again
                plan.gone.append((task_id, gone))
            elif action is Action.PLACE:
                plan.place.append(task_id)
            elif action is Action.CANCEL:
                plan.cancel.append(task_id)
            elif action in (Action.SEND_RUN, Action.SEND_STOP):
                node = self._by_name.get(task.node or "")
                due = self._retry_at.get(task_id, (0.0, 0.0))[0] <= now
                if node is not None and due and not node.lost:  # else the work sets keep it for later
                    plan.sends.setdefault(node.name, []).append((task_id, action))

    def _requeue(self: "Manager", task_ids: list[str]) -> None:
        """Tasks to place or cancel that must wait for the next pass."""
        with self._lock:
            for task_id in task_ids:
                task = self._tasks.get(task_id)
                if task is not None and lifecycle.next_action(task, False) in (Action.PLACE, Action.CANCEL):
                    self._blocked.pop(task_id, None)
                    self._work[task_id] = None

    def _node_changed(self: "Manager", name: str) -> str | None:
        """Why the node the scheduler chose can no longer take a placement (caller holds the
        lock: the scheduler chose under it too, but may have let it go in between), or None."""
        node = self._by_name.get(name)
        if node is None:
            return f"node {name} was removed"
        if not node.eligible or name in self._drains:
            return f"node {name} became {'draining' if name in self._drains else 'ineligible'}"
        if node.lost or not node.is_up:
            return f"node {name} is down"
        return None

    def _leave_removed(self: "Manager", task: Task, name: str) -> str:
        """A task placed on a node the manager no longer has: detach it so it is placed again
        as a new attempt (or completed, if the user stopped it)."""
        self._commit(task, lambda t: lifecycle.leave_removed(t, name))
        with self._lock:
            self._unsent.discard(task.id)
            self._stopping.discard(task.id)
            self._retry_at.pop(task.id, None)
            self._schedule_work(task)
        log.warning("task %s: its node %s was removed; it is placed again", task.id, name)
        return "retry"

    def _send(self: "Manager", task_id: str, node, action: Action) -> bool:
        """Send the current attempt (or its stop) to `node`; True when the worker answered."""

    def _cancel_all(self: "Manager", task_ids: list[str]) -> None:
        """Complete, in one commit, the stopped tasks no worker has."""
        if not task_ids:
            return
        with self._lock:
            tasks = [self._tasks[i] for i in task_ids]
        try:
            done = self._commit_many(tasks, _cancel_if_due)
        except Unavailable as exc:
            log.warning("%d cancellation(s) wait: %s", len(task_ids), exc)
            self._requeue(task_ids)
            return
        for task in done:
            self._settled(task)

    def _send_batch(self: "Manager", node_name: str, items: list[tuple[str, Action]]) -> int:
        """Send a node its runs and stops in one batched request; take each answer. Returns
        how many got an answer."""
        node = self._by_name.get(node_name)
        if node is None:
            return 0  # removed meanwhile: its tasks are placed again at the next pass
        with self._lock:  # moved meanwhile (its node lost while the pass placed others): not sent here
            items = [(i, action) for i, action in items if i in self._tasks and self._tasks[i].node == node_name]
            sent = [(task_id, action, self._tasks[task_id].attempt) for task_id, action in items]
            events = [TaskEvent(task=copy.copy(self._tasks[task_id]),
                                state=State.RUNNING if action is Action.SEND_RUN else State.COMPLETED)
                      for task_id, action in items]
        if not events:
            return 0
        answers = self._client.send_orders(node.address, events)
        reports, delivered = [], 0
        for (task_id, action, attempt), answer in zip(sent, answers):
            try:
                got, report = self._send_outcome(task_id, node, action, attempt, answer)
            except Exception:
                log.exception("task %s: taking the answer of %s failed", task_id, node_name)
                continue
            delivered += got
            if report is not None:
                reports.append((report, action is Action.SEND_RUN))
        self._take_reports(node_name, [report for report, _ in reports])
        self._count_placed([report for report, placed in reports if placed])
        return delivered

    def _send_outcome(self: "Manager", task_id: str, node, action: Action, attempt: int,
                  answer: Any) -> tuple[bool, Report | None]:
        """One send's outcome: (whether the worker answered, its report of the task)."""
        if isinstance(answer, WorkerUnavailable) or not isinstance(answer, (dict, OrcaError)):
            self._backoff(task_id)
            with self._lock:
                self._checked_at.pop(node.name, None)  # its next liveness pass asks it in full (its engine?)
            log.info("task %s: %s to %s waits: %s", task_id, action.value, node.name, answer)
            return False, None
        if isinstance(answer, NotFound):
            answer = None if action is Action.SEND_STOP else self._refused(task_id, attempt, node, answer)
        elif isinstance(answer, OrcaError):  # WorkerRejected, Conflict: the worker refused it
            answer = self._refused(task_id, attempt, node, answer)
        with self._lock:
            self._retry_at.pop(task_id, None)
            if action is Action.SEND_RUN:
                self._unsent.discard(task_id)
        if answer is None:
            if action is Action.SEND_STOP:
                self._nothing_there(task_id, attempt, node.name)
            return True, None
        try:
            return True, parse_report(answer)
        except ValidationError as exc:
            log.warning("worker %s sent a malformed answer: %s", node.name, exc)
            return True, None

    def _count_placed(self: "Manager", reports: list[Report]) -> None:
        """Tell on_placed of each attempt a worker accepted."""
        for report in reports:
            with self._lock:
                task = self._tasks.get(report.task_id)
            if task is not None and task.attempt == report.attempt:
                self.on_placed(task)

    def _refused(self: "Manager", task_id: str, attempt: int, node, exc: Exception) -> None:
        """The worker refused the attempt (4xx): it fails, naming the worker's reason."""
        with self._lock:
            task = self._tasks[task_id]
            current = task.attempt == attempt and not task.state.is_terminal
        if current:
            self._commit(task, lambda t: lifecycle.fail(t, f"worker {node.name} rejected the task: {exc}"))
            self._settled(task)
            log.warning("task %s failed: worker %s rejected it: %s", task_id, node.name, exc)
        return None

    def _nothing_there(self: "Manager", task_id: str, attempt: int, node_name: str) -> None:
        """A worker without a record of the attempt we stop: nothing of it runs there."""
        with self._lock:
            task = self._tasks[task_id]
            current = task.attempt == attempt and task.node == node_name and not task.state.is_terminal
        if current:
            self._commit(task, lifecycle.cancel)
            self._settled(task)

    def _backoff(self: "Manager", task_id: str) -> None:
        with self._lock:
            _, delay = self._retry_at.get(task_id, (0.0, RETRY_FIRST / 2))
            delay = min(RETRY_CAP, delay * 2)
            self._retry_at[task_id] = (self._clock() + delay, delay)

    def _settled(self: "Manager", task: Task) -> None:
        with self._lock:
            self._schedule_work(task)


@dataclass
class _Plan:
    """What one dispatch pass does: tasks to cancel and to place, and sends per node."""

    cancel: list[str] = field(default_factory=list)
    place: list[str] = field(default_factory=list)
    gone: list[tuple[str, str]] = field(default_factory=list)  # (task, the removed node it was on)
    sends: dict[str, list[tuple[str, Action]]] = field(default_factory=dict)


def _in_order(calls: list[Callable[[], int]]) -> list[int]:
    return [call() for call in calls]


def fan_out(pool: Executor) -> Callable[[list[Callable[[], int]]], list[int]]:
    """A Manager.fan_out that runs a pass's sends on `pool` and waits for them all; a send
    that raises counts 0 (and is logged): its tasks stay in the work sets."""
    def run(call: Callable[[], int]) -> int:
        try:
            return call()
        except Exception:
            log.exception("a batched send failed; its tasks will be tried again")
            return 0

    def fan(calls: list[Callable[[], int]]) -> list[int]:
        if len(calls) <= 1:
            return [run(call) for call in calls]
        return list(pool.map(run, calls))
    return fan


def _cancel_if_due(task: Task) -> bool:
    """Cancel a stopped task no worker has (False: it changed meanwhile, nothing to do)."""
    if lifecycle.next_action(task, False) is not Action.CANCEL:
        return False
    lifecycle.cancel(task)
    return True
