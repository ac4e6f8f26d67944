"""The worker's in-memory task DB: tasks by id with a change counter, safe across threads."""
from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from typing import Callable

from task import Task


def start_version() -> int:
    """Where a new worker's versions start: its start time in microseconds. Versions grow by
    one per change, so they keep growing across restarts of the worker (unless it made over a
    million changes per second of its life), and a report from a later incarnation is always
    newer than one from an earlier incarnation."""
    return time.time_ns() // 1000


class TaskDB:
    """Tasks by id. Every change bumps a version, stamped on the changed task, so readers can
    ask what changed since a version and the manager can order reports."""

    def __init__(self, first_version: int | None = None) -> None:
        self._lock = threading.Condition()
        self._tasks: dict[str, Task] = {}
        self._changed: OrderedDict[str, int] = OrderedDict()  # id -> version of its last change, oldest first
        self._version = start_version() if first_version is None else first_version
        self._closed = False

    @property
    def version(self) -> int:
        """The version of the latest change."""
        return self._version

    def put(self, task: Task) -> Task:
        """Store a copy of `task` (stamped with a new version); return the stored copy."""
        with self._lock:
            stored = copy.copy(task)
            self._store(stored)
            return copy.copy(stored)

    def _store(self, task: Task) -> None:
        self._version += 1
        task.version = self._version
        self._tasks[task.id] = task
        self._changed[task.id] = self._version
        self._changed.move_to_end(task.id)
        self._lock.notify_all()

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until the DB has changed after `version` or `timeout` seconds passed;
        return the current version. Lets a reader long-poll instead of polling."""
        with self._lock:
            self._lock.wait_for(lambda: self._version > version or self._closed, timeout)
            return self._version

    def close(self) -> None:
        """Wake every waiter (shutdown)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def update(self, task_id: str, change: Callable[[Task], bool | None]) -> Task | None:
        """Apply `change` to the stored task under the lock; a change returning False (or
        raising) is discarded.

        Returns a copy of the task after the change, or None if the id is unknown.
        """
        with self._lock:
            current = self._tasks.get(task_id)
            if current is None:
                return None
            task = copy.copy(current)
            if change(task) is not False:
                self._store(task)
                return copy.copy(task)
            return copy.copy(current)

    def upsert(self, task_id: str, change: Callable[[Task | None], Task | None]) -> Task | None:
        """Read-decide-write under the lock: `change` gets a copy of the task (or None) and
        returns the task to store, or None to store nothing. Returns a copy of what is stored."""
        with self._lock:
            current = self._tasks.get(task_id)
            chosen = change(copy.copy(current) if current else None)
            if chosen is not None:
                self._store(chosen)
                return copy.copy(chosen)
            return copy.copy(current) if current else None

    def remove(self, task_id: str, keep: Callable[[Task], bool] = lambda t: False) -> Task | None:
        """Forget a task (a purge) unless `keep(task)` says otherwise, under the lock; return
        the task removed, or None (unknown, or kept). No version is spent: nothing changed that a
        reader must see (a full listing simply no longer holds it)."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or keep(task):
                return None
            del self._tasks[task_id]
            self._changed.pop(task_id, None)
            return task

    def get(self, task_id: str) -> Task | None:
        """A copy of the task, or None."""
        with self._lock:
            task = self._tasks.get(task_id)
            return copy.copy(task) if task else None

    def list(self) -> list[Task]:
        """Copies of every task."""
        with self._lock:
            return [copy.copy(t) for t in self._tasks.values()]

    def changed_since(self, version: int) -> tuple[int, list[Task]]:
        """Return (current version, copies of the tasks changed after `version`), oldest
        change first. Costs the number of changes after `version`, not the number of tasks:
        the change feed is kept in version order."""
        with self._lock:
            changed = []
            for task_id in reversed(self._changed):
                if self._changed[task_id] <= version:
                    break
                changed.append(copy.copy(self._tasks[task_id]))
            changed.reverse()
            return self._version, changed

    def count(self, predicate: Callable[[Task], bool] = lambda t: True) -> int:
        """How many tasks match `predicate`."""
        with self._lock:
            return sum(1 for t in self._tasks.values() if predicate(t))
