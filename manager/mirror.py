"""The manager's mirror of what workers report, and the removal of copies that should not
exist.

Reports are applied by the rule of task.lifecycle.judge: only the current attempt on the
current node, only if newer than the last one applied, never to a finished task. A copy of
an older attempt, on another node, or still running after its task ended, gets a kill order:
a stop for exactly that attempt, sent until the worker reports the copy ended.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

from node import Node
from task import InvalidTransition, NotFound, ValidationError, WorkerRejected, WorkerUnavailable
from task import lifecycle
from task.lifecycle import Report, Verdict
from task.wire import parse_report

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger(__name__)

KILL_RETRY = 2.0  # seconds between stops of the same stale copy


class Mirror:
    """Mixin of Manager: sync_tasks(), watch_tasks() and the kill orders."""

    def __init__(self: "Manager") -> None:
        self._cursors: dict[str, tuple[str, int]] = {}  # node -> (worker instance, version read)
        self._sync_locks = {node.name: threading.Lock() for node in self._nodes}
        self._kills: dict[tuple[str, str, int], float] = {}  # (task, node, attempt) -> next send
        self._cleaned: set[tuple[str, str, int]] = set()  # finished copies already told to clean up
        self._unsaved: set[str] = set()  # tasks changed by reports whose commit failed

    def sync_tasks(self: "Manager") -> None:
        """Pull what changed on each worker that is up and mirror it into the task DB.
        Workers being followed by watch_tasks() at this moment are skipped."""
        for node in self.nodes():
            if node.is_up:
                self.watch_tasks(node.name, wait=0.0, block=False)

    def watch_tasks(self: "Manager", node_name: str, wait: float, block: bool = True) -> bool:
        """Mirror one worker's task changes, long-polling up to `wait` seconds for them.

        One sync per worker runs at a time (so changes are applied in order); with
        block=False a worker already being synced is skipped. Returns False when the worker
        could not be read (the caller may pause before trying again).
        """
        lock = self._sync_locks.get(node_name)
        if lock is None:  # removed
            return False
        if not lock.acquire(blocking=block):
            return True
        try:
            node = self._by_name.get(node_name)
            if node is None or not node.is_up:
                return False
            self._sync_node_tasks(node, wait)
            return True
        except (WorkerUnavailable, WorkerRejected, NotFound) as exc:
            log.debug("worker %s: task sync skipped: %s", node_name, exc)
            return False
        finally:
            lock.release()

    def _sync_node_tasks(self: "Manager", node: Node, wait: float = 0.0) -> None:
        position = self.feed_position(node.name)
        instance, since, _ = position
        answer = self._client.changes(node.address, since, wait if instance else 0.0)
        if answer[0] != instance and since:  # the worker restarted: read everything again
            answer = self._client.changes(node.address, 0)
        self._take_changes(node, position, answer)

    def feed_position(self: "Manager", node_name: str) -> tuple[str, int, int]:
        """Where to read a worker's change feed from: (its instance id as last read, the
        version read up to, the node's generation; -1 for a node removed). With
        take_changes(), lets a caller do the read itself (manager.follow reads every worker's
        feed on one asyncio thread)."""
        with self._lock:
            instance, since = self._cursors.get(node_name, ("", 0))
            node = self._by_name.get(node_name)
            return instance, since, node.generation if node is not None else -1

    def take_changes(self: "Manager", node_name: str, position: tuple[str, int, int],
                     answer: tuple[str, int, list[dict[str, Any]]]) -> bool:
        """Mirror a read of a worker's change feed begun at `position` (feed_position());
        `answer` is what WorkerClient.changes returned (read from 0 if the instance changed).
        Returns False when the read was void (see _take_changes)."""
        lock, node = self._sync_locks.get(node_name), self._by_name.get(node_name)
        if lock is None or node is None:
            return False  # the node was removed meanwhile
        with lock:
            return self._take_changes(node, position, answer)

    def _take_changes(self: "Manager", node: Node, position: tuple[str, int, int],
                      answer: tuple[str, int, list[dict[str, Any]]]) -> bool:
        """Apply a read unless it is void: the node was declared lost after the read began,
        or another read was applied meanwhile (its position moved on)."""
        instance, since, generation = position
        seen_instance, version, tasks = answer
        full = seen_instance != instance
        reports = _parse_all(node.name, tasks)
        with self._lock:
            if node.generation != generation or self._cursors.get(node.name, ("", 0)) != (instance, since):
                return False
            wait = self._queue_reports(node.name, reports, full_listing=full)
            self._cursors[node.name] = (seen_instance, version)
            node.record_answer(self._clock())  # an answered poll: alive (a busy manager's late check is no miss)
        wait()  # outside the lock: requests go on while the store commits
        return True

    def _take_reports(self: "Manager", node_name: str, reports: list[Report], full_listing: bool = False) -> None:
        """Judge and apply a worker's reports (the answers to sends); order kills of stale
        copies."""
        with self._lock:
            wait = self._queue_reports(node_name, reports, full_listing)
        wait()

    def _queue_reports(self: "Manager", node_name: str, reports: list[Report], full_listing: bool) -> Callable[[], None]:
        """_take_reports under the lock the caller holds; returns the wait for the store.

        A report is a fact the worker will not send again once the feed's cursor has moved
        on, so it is never undone: if its commit fails, the wait logs it and its tasks are
        kept in memory and marked unsaved, written again at each dispatch pass until a
        commit succeeds (queue_unsaved)."""
        changed = [task for report in reports if (task := self._take_report(node_name, report))]
        if full_listing:
            self._resend_missing(node_name, {r.task_id: r.attempt for r in reports})
        wait = self._save(changed)

        def wait_or_keep() -> None:
            try:
                wait()
            except Exception as exc:  # noqa: BLE001 - the store failed: kept, written again later
                with self._lock:
                    fresh = not self._unsaved
                    self._unsaved.update(t.id for t in changed if t.id in self._tasks)
                (log.warning if fresh else log.debug)("worker %s: %d report(s) not recorded yet (written again "
                                                      "at the next pass): %s", node_name, len(changed), exc)
        return wait_or_keep

    def queue_unsaved(self: "Manager") -> Callable[[], None]:
        """Write again the tasks whose commit failed and that memory keeps (a worker's reports,
        an undone change): queued now, under the lock, so no older copy lands after a newer
        one; returns the wait, which puts them back in the set if this commit fails too."""
        with self._lock:
            ids = {i for i in self._unsaved if i in self._tasks}
            self._unsaved = set()
            if not ids:
                return lambda: None
            wait = self._store.submit([("task", i, self._tasks[i].to_dict()) for i in sorted(ids)])

        def saved() -> None:
            try:
                wait()
            except Exception as exc:  # noqa: BLE001 - the store still fails: at the next pass, then
                with self._lock:
                    self._unsaved.update(i for i in ids if i in self._tasks)
                log.debug("%d task(s) still not recorded: %s", len(ids), exc)
                return
            log.info("%d task(s) whose changes had not been recorded are now", len(ids))
        return saved

    def _take_report(self: "Manager", node_name: str, report: Report):
        task = self._tasks.get(report.task_id)
        key = (report.task_id, node_name, report.attempt)
        if task is None:  # not ours: never (posted to the worker directly), or not any more (purged:
            if report.state in lifecycle.ACTIVE and self.was_purged(report.task_id):  # it ended), but
                self._order_kill(key, report)  # a copy still running somewhere is stopped
            return None
        if node_name == task.node and report.attempt == task.attempt:
            self._unsent.discard(task.id)  # it arrived
        verdict = lifecycle.judge(task, node_name, report)
        if verdict is Verdict.STALE:
            self._order_kill(key, report)
            return None
        if report.state.is_terminal:
            self._kill_done(key)
        if verdict is Verdict.IGNORE:
            return None
        try:
            lifecycle.apply_report(task, report)
        except InvalidTransition as exc:
            log.warning("task %s: report from %s ignored: %s", task.id, node_name, exc)
            return None
        log.info("task %s attempt %d is %s on %s", task.id, task.attempt, task.state.value, node_name)
        self._schedule_work(task)
        return task

    def _resend_missing(self: "Manager", node_name: str, held: dict[str, int]) -> None:
        """Attempts placed on the node that its full listing lacks (the worker holds none, or
        an older one) are sent again."""
        placed = (self._tasks[i] for i in self._index.ids_on(node_name))
        missing = [t for t in placed if not t.state.is_terminal
                   and t.desired_state == "running" and held.get(t.id, 0) < t.attempt]
        for task in missing:
            self._unsent.add(task.id)
        if missing:
            log.warning("worker %s does not have %d task(s) placed there; sending them again",
                        node_name, len(missing))
            self.on_work()

    # ----- kill orders

    def _order_kill(self: "Manager", key: tuple[str, str, int], report: Report) -> None:
        if key in self._kills or (report.state.is_terminal and key in self._cleaned):
            return
        log.warning("task %s: stopping the stale copy of attempt %d on %s", key[0], key[2], key[1])
        self._kills[key] = 0.0
        self.on_work()

    def _kill_done(self: "Manager", key: tuple[str, str, int]) -> None:
        if self._kills.pop(key, None) is not None:
            self._cleaned.add(key)
            if key[0] in self._moving:  # a drained task may now be placed elsewhere
                self.on_work()

    def send_kills(self: "Manager") -> None:
        """Send the due kill orders, each in its own try."""
        now = self._clock()
        with self._lock:
            due = [key for key, at in self._kills.items() if at <= now]
        for key in due:
            task_id, node_name, attempt = key
            node = self._by_name.get(node_name)
            if node is None or node.lost:
                continue
            try:
                answer: Any = self._client.stop_task(node.address, task_id, attempt)
            except (NotFound, WorkerRejected):
                answer = None
            except WorkerUnavailable as exc:
                log.info("task %s: stale copy on %s: stop waits: %s", task_id, node_name, exc)
                with self._lock:
                    if key in self._kills:
                        self._kills[key] = now + KILL_RETRY
                continue
            self._kill_answered(key, answer, now)

    def _kill_answered(self: "Manager", key: tuple[str, str, int], answer: Any, now: float) -> None:
        try:
            report = parse_report(answer) if answer is not None else None
        except ValidationError:
            report = None
        with self._lock:
            if report is None or report.state.is_terminal or report.attempt != key[2]:
                self._kill_done(key)
            elif key in self._kills:
                self._kills[key] = now + KILL_RETRY

    def _forget_node(self: "Manager", node_name: str) -> None:
        """A node was declared lost: drop what was read from it (caller holds the lock).
        When it answers again it is read from the start, and stale copies found again."""
        self._cursors.pop(node_name, None)
        for key in [k for k in self._kills if k[1] == node_name]:
            del self._kills[key]


def _parse_all(node_name: str, tasks: list[dict[str, Any]]) -> list[Report]:
    reports = []
    for data in tasks:
        try:
            reports.append(parse_report(data))
        except ValidationError as exc:
            log.warning("worker %s sent a malformed task report: %s", node_name, exc)
    return reports
