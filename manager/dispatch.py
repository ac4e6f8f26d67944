"""The manager's reconciler of desired state: place tasks, deliver attempts, deliver stops.

Level-triggered: what is left to do is derived from each task's desired and observed state
(task.lifecycle.next_action), kept in work sets that every change feeds and a periodic scan
rebuilds. A send that fails is retried against the same worker with the same attempt, never
counted against the worker's liveness and never sent elsewhere: only a lost worker's tasks
move (manager.liveness).
"""
from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from task import Conflict, NotFound, Task, TaskEvent, ValidationError, WorkerRejected, WorkerUnavailable
from task import lifecycle
from task.lifecycle import Action
from task.wire import parse_report

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger(__name__)

RETRY_FIRST = 0.5  # seconds before a failed send is tried again, doubling
RETRY_CAP = 8.0
RESCAN_EVERY = 10.0  # seconds between full scans of the tasks (the safety net)


class Dispatch:
    """Mixin of Manager: dispatch_pending() and what it needs."""

    def __init__(self: "Manager") -> None:
        self._work: OrderedDict[str, None] = OrderedDict()  # tasks to place or settle, oldest first
        self._unsent: set[str] = set()  # placed attempts not known to have reached their worker
        self._stopping: set[str] = set()  # stopped by the user, not yet reported ended
        self._retry_at: dict[str, tuple[float, float]] = {}  # task -> (next try, current delay)
        self._next_scan = 0.0

    def _schedule_work(self: "Manager", task: Task) -> None:
        """Put a task in the work set its state calls for (caller holds the lock)."""
        if task.id in self._uncommitted:
            return
        action = lifecycle.next_action(task, task.id in self._unsent)
        if action in (Action.PLACE, Action.CANCEL):
            self._work[task.id] = None
        elif task.node is not None and task.node not in self._by_name and not task.state.is_terminal:
            self._work[task.id] = None  # its node was removed: placed again (_reconcile)
        elif action is Action.SEND_STOP:
            self._stopping.add(task.id)
        if task.state.is_terminal:
            self._work.pop(task.id, None)
            self._stopping.discard(task.id)
            self._unsent.discard(task.id)
            self._retry_at.pop(task.id, None)

    def pending_count(self: "Manager") -> int:
        """Tasks waiting for placement, delivery or a stop."""
        with self._lock:
            return len(self._work) + len(self._unsent) + len(self._stopping)

    def dispatch_pending(self: "Manager") -> int:
        """One reconcile pass over the work sets (and, every RESCAN_EVERY s, over every task).
        Each task is handled in its own try. Returns the number of sends that got an answer."""
        now = self._clock()
        with self._lock:
            if now >= self._next_scan:
                self._next_scan = now + RESCAN_EVERY
                for task_id in self._index.unfinished():  # finished tasks have nothing to do
                    self._schedule_work(self._tasks[task_id])
            ids = list(self._work) + sorted(self._unsent) + sorted(self._stopping)
            self._work.clear()
        delivered, unreachable, no_room = 0, set(), {}
        for task_id in dict.fromkeys(ids):
            try:
                outcome = self._reconcile(task_id, now, unreachable, no_room)
            except Exception:
                log.exception("task %s: reconcile failed; it will be tried again", task_id)
                outcome = "retry"
            if outcome == "delivered":
                delivered += 1
            elif outcome in ("no_room", "retry"):
                with self._lock:
                    if lifecycle.next_action(self._tasks[task_id], False) in (Action.PLACE, Action.CANCEL):
                        self._work[task_id] = None
        self.send_kills()
        self.drain_nodes()
        return delivered

    def _reconcile(self: "Manager", task_id: str, now: float, unreachable: set[str],
                   no_room: dict[tuple, str]) -> str:
        """Take the next step for one task; return what happened. `no_room` holds, for this
        pass, the reason each shape of task (requests, constraints, ports) found no node."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task_id in self._uncommitted:
                return "skip"
            action = lifecycle.next_action(task, task_id in self._unsent)
            node = self._by_name.get(task.node or "")
            due = self._retry_at.get(task_id, (0.0, 0.0))[0] <= now
            gone = task.node if task.node is not None and node is None and not task.state.is_terminal else None
        if gone is not None:
            return self._leave_removed(task, gone)
        if action is Action.PLACE:
            return self._place(task, no_room)
        if action is Action.CANCEL:
            self._commit(task, lifecycle.cancel)
            self._settled(task)
            return "done"
        if action in (Action.SEND_RUN, Action.SEND_STOP) and node is not None:
            if not due or node.name in unreachable or node.lost:
                return "later"
            ok = self._send(task_id, node, action)
            if not ok:
                unreachable.add(node.name)
            return "delivered" if ok else "later"
        return "skip"

    def _place(self: "Manager", task: Task, no_room: dict[tuple, str]) -> str:
        """Choose a node, record the new attempt durably, then send it. A task no node can
        take stays pending with the reason (written only when it changes)."""
        shape = _shape(task)
        reason = no_room.get(shape)
        if reason is None:
            with self._lock:
                if self._held(task.id):
                    return "retry"  # kept in the work set: placed once its old copy has stopped
                placement = self._scheduler.place(task, self._cluster())
            node, reason = placement.node, placement.reason
        if reason is not None:
            no_room[shape] = reason
            if task.pending_reason != reason:
                self._commit(task, lambda t: setattr(t, "pending_reason", reason))
                log.info("task %s waits: %s", task.id, reason)
            return "no_room"
        try:
            self._commit(task, lambda t: self._place_on(t, node.name))
        except _NodeChanged as exc:
            log.info("task %s: %s; placing it again", task.id, exc)
            return "retry"
        with self._lock:
            self._unsent.add(task.id)
        log.info("task %s attempt %d placed on %s", task.id, task.attempt, node.name)
        return "delivered" if self._send(task.id, node, Action.SEND_RUN) else "later"

    def _place_on(self: "Manager", task: Task, name: str) -> None:
        """The placement's change, under the lock: the scheduler chose `name` under the lock
        too, but the lock was let go in between, so the node may have been removed, drained
        or made ineligible meanwhile (the request that did it has answered). Then nothing is
        recorded and the task is placed again."""
        node = self._by_name.get(name)
        if node is None:
            raise _NodeChanged(f"node {name} was removed")
        if not node.eligible or name in self._drains:
            raise _NodeChanged(f"node {name} became {'draining' if name in self._drains else 'ineligible'}")
        if node.lost or not node.is_up:
            raise _NodeChanged(f"node {name} is down")
        lifecycle.place(task, name)

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
        with self._lock:
            task = self._tasks[task_id]
            attempt, event = task.attempt, TaskEvent(task=copy.copy(task))
        try:
            if action is Action.SEND_RUN:
                answer = self._client.send_event(node.address, event)
            else:
                answer = self._client.stop_task(node.address, task_id, attempt)
        except WorkerUnavailable as exc:
            self._backoff(task_id)
            log.info("task %s: %s to %s waits: %s", task_id, action.value, node.name, exc)
            return False
        except NotFound as exc:
            answer = None if action is Action.SEND_STOP else self._refused(task_id, attempt, node, exc)
        except (WorkerRejected, Conflict) as exc:
            answer = self._refused(task_id, attempt, node, exc)
        with self._lock:
            self._retry_at.pop(task_id, None)
            if action is Action.SEND_RUN:
                self._unsent.discard(task_id)
        if answer is None and action is Action.SEND_STOP:
            self._nothing_there(task_id, attempt, node.name)
        elif answer is not None:
            self._take_answer(node, answer, placed=action is Action.SEND_RUN)
        return True

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

    def _take_answer(self: "Manager", node, answer: dict, placed: bool) -> None:
        try:
            report = parse_report(answer)
        except ValidationError as exc:
            log.warning("worker %s sent a malformed answer: %s", node.name, exc)
            return
        self._take_reports(node.name, [report])
        if placed:
            with self._lock:
                task = self._tasks.get(report.task_id)
            if task is not None and task.attempt == report.attempt:
                self.on_placed(task)

    def _backoff(self: "Manager", task_id: str) -> None:
        with self._lock:
            _, delay = self._retry_at.get(task_id, (0.0, RETRY_FIRST / 2))
            delay = min(RETRY_CAP, delay * 2)
            self._retry_at[task_id] = (self._clock() + delay, delay)

    def _settled(self: "Manager", task: Task) -> None:
        with self._lock:
            self._schedule_work(task)

class _NodeChanged(Exception):
    """The node chosen for a placement changed before the placement was recorded."""


def _shape(task: Task) -> tuple:
    """What decides whether a node can take a task, apart from the node: two tasks of one
    shape fit on the same nodes."""
    constraints = tuple((c["label"], c["op"], str(c["value"])) for c in task.constraints)
    ports = tuple(sorted((k, p) for k, p in task.ports.items() if p is not None))
    return task.cpu, task.memory, task.disk, constraints, ports

