"""The worker's in-memory task DB: tasks by id with a change counter, safe across threads."""
from __future__ import annotations

import copy
import threading
from typing import Callable

from task import Task


class TaskDB:
    """Tasks by id. Every change bumps a version, so readers can ask what changed since."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._tasks: dict[str, Task] = {}
        self._changed: dict[str, int] = {}
        self._version = 0
        self._closed = False

    @property
    def version(self) -> int:
        """The number of changes made so far."""
        return self._version

    def put(self, task: Task) -> Task:
        """Store a copy of `task`; return it."""
        with self._lock:
            self._store(copy.copy(task))
        return task

    def _store(self, task: Task) -> None:
        self._version += 1
        self._tasks[task.id] = task
        self._changed[task.id] = self._version
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
        """Apply `change` to the stored task under the lock; a change returning False is discarded.

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
        """Return (current version, copies of the tasks changed after `version`)."""
        with self._lock:
            changed = [copy.copy(self._tasks[i]) for i, v in self._changed.items() if v > version]
            return self._version, changed

    def count(self, predicate: Callable[[Task], bool] = lambda t: True) -> int:
        """How many tasks match `predicate`."""
        with self._lock:
            return sum(1 for t in self._tasks.values() if predicate(t))
