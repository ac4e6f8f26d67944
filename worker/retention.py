"""The worker's retention: finished tasks are forgotten (their record, their container if any)
once ORCA_RETENTION has passed since they ended, or at once when the manager purges them.

A task is purged by the worker's own pass only once the manager has read its final state:
the change feed's `since` the manager sends is the watermark of what it has seen. A manager
that restarts and reads everything again would otherwise miss a task it still thinks runs
here, and send it again. Only finished tasks are ever purged.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from task import Conflict, NotFound, Task
from task.model import epoch_seconds
from worker.containers import RuntimeFailure
from worker.worker import Worker

log = logging.getLogger(__name__)

DEFAULT_RETENTION = 86400.0


class Purger:
    """Purges a Worker's finished tasks: purge() for the manager's order, purge_finished()
    as the periodic pass."""

    def __init__(self, worker: Worker, retention: float | None = DEFAULT_RETENTION,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.worker = worker
        self.retention = retention  # seconds; None: the periodic pass purges nothing
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._acked = 0  # the highest change-feed version the manager has read past
        self._ended: dict[str, float] = {}  # task id -> when first seen ended (tasks with no finished_at)

    def acknowledge(self, since: int) -> None:
        """The manager asked for the changes after `since`: it holds every change up to it."""
        with self._lock:
            if since > self._acked:
                self._acked = since

    def purge(self, task_id: str) -> Task:
        """Forget a finished task now (the manager's DELETE ?purge=true); its container goes too.

        Raises:
            NotFound: the worker does not have it. Conflict: it has not finished here.
        """
        removed = self.worker.db.remove(task_id, keep=lambda t: not t.state.is_terminal)
        if removed is None:
            task = self.worker.db.get(task_id)
            if task is None:
                raise NotFound(f"task {task_id[:64]} not found on worker {self.worker.name}")
            raise Conflict(f"task {task_id} is {task.state.value} on worker {self.worker.name}: "
                           f"only a finished task can be purged")
        self._forget(removed)
        log.info("task %s purged", task_id)
        return removed

    def purge_finished(self, now: float | None = None) -> int:
        """Purge the finished tasks that ended more than `retention` seconds ago and whose end
        the manager has read. Returns how many were purged."""
        if self.retention is None or not self.worker.ready:
            return 0
        now = self._wall_clock() if now is None else now
        with self._lock:
            acked = self._acked
        purged = 0
        for task in self.worker.db.list():
            if not task.state.is_terminal or task.version > acked or self._age(task, now) <= self.retention:
                continue
            removed = self.worker.db.remove(task.id, keep=lambda t: not t.state.is_terminal or t.version > acked)
            if removed is not None:
                self._forget(removed)
                purged += 1
        if purged:
            log.info("worker %s purged %d finished task(s) older than %.0f s", self.worker.name, purged,
                     self.retention)
        return purged

    def _age(self, task: Task, now: float) -> float:
        ended = epoch_seconds(task.finished_at)
        if ended is None:
            with self._lock:
                ended = self._ended.setdefault(task.id, now)
        return now - ended

    def _forget(self, task: Task) -> None:
        with self._lock:
            self._ended.pop(task.id, None)
        self.worker.forget(task.id)
        if task.container_id:
            try:
                self.worker.runtime.remove(task.container_id)
            except RuntimeFailure as exc:  # collect_garbage removes it later: no task owns it
                log.warning("task %s: container %s: %s", task.id, task.container_id[:12], exc)
