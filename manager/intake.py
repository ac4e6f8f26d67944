"""The manager's intake of new tasks, one at a time or many in one commit."""
from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

from task import Conflict, OrcaError, State, Task, TaskEvent, Unavailable, utc_now

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger(__name__)

MAX_SUBMIT = 1000  # tasks in one bulk submission


class Intake:
    """Mixin of Manager: submit() and submit_many()."""

    def submit(self: "Manager", event: TaskEvent) -> Task:
        """Record a new task in state pending; durable when it returns, and only then placed.

        Raises:
            Conflict: the task id or event id is already known.
            Unavailable: the manager is shutting down, or the store could not record it.
        """
        result = self.submit_many([event])[0]
        if isinstance(result, OrcaError):
            raise result
        return result

    def submit_many(self: "Manager", events: list[TaskEvent]) -> list[Task | OrcaError]:
        """Record new tasks in state pending, all in one commit; each is durable when this
        returns, and only then placed. Returns, in order, a copy of each task or the error
        that refused it (Conflict: its task id or event id is known, or repeated in the list;
        Unavailable: the commit failed, which refuses every task of the list).

        Raises:
            Unavailable: the manager is shutting down.
        """
        self._check_accepting()
        results: list[Task | OrcaError] = []
        accepted: list[TaskEvent] = []
        with self._lock:
            for event in events:
                refusal = self._refusal(event)
                if refusal is not None:
                    results.append(refusal)
                    continue
                task = event.task
                task.state, task.created_at, task.node, task.attempt = State.PENDING, utc_now(), None, 0
                self._tasks[task.id] = task
                self._event_ids.add(event.id)
                self._uncommitted.add(task.id)
                accepted.append(event)
                results.append(copy.copy(task))
            wait = self._save([e.task for e in accepted], accepted)
        try:
            wait()
        except Exception as exc:
            self._undo_intake(accepted)
            failed = Unavailable(f"{len(accepted)} task(s) could not be recorded: {exc}")
            return [failed if isinstance(r, Task) else r for r in results]
        with self._lock:
            for event in accepted:
                self._uncommitted.discard(event.task.id)
                self._schedule_work(event.task)
        for event in accepted:
            log.info("task %s accepted (%s)", event.task.id, event.task.image)
        if accepted:
            self.on_work()
        return results

    def _refusal(self: "Manager", event: TaskEvent) -> Conflict | None:
        """Why a new task cannot be taken (caller holds the lock), or None."""
        if event.task.id in self._tasks:
            return Conflict(f"task {event.task.id} already exists")
        if event.id in self._event_ids:
            return Conflict(f"event {event.id} already exists")
        return None

    def _undo_intake(self: "Manager", events: list[TaskEvent]) -> None:
        """Forget tasks whose intake could not be recorded."""
        with self._lock:
            for event in events:
                self._tasks.pop(event.task.id, None)
                self._index.remove(event.task.id)
                self._publish_task(event.task, "removed")
                self._event_ids.discard(event.id)
                self._event_of.pop(event.task.id, None)
                self._uncommitted.discard(event.task.id)
