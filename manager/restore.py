"""The manager's tasks restored from the store: at start (_load) and at a reload (several
managers: a follower's refresh of its reads, a new leader's take-over)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from manager.dispatch import Dispatch
from manager.index import TaskIndex
from manager.liveness import Liveness
from manager.mirror import Mirror
from task import DESIRED_STOPPED, State, Task

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger("manager.manager")


class Restore:
    """Mixin of Manager: _load() and reload()."""

    def _load(self: "Manager") -> None:
        """Rebuild tasks from the store (after a restart) and what is left to do for them."""
        for data in self._store.list("task"):
            task = Task.from_dict(data)
            self._tasks[task.id] = task
            self._index.update(task)
        for record in self._store.list("event"):
            self._event_ids.add(record["id"])
            self._event_of[record["task_id"]] = record["id"]
            task = self._tasks.get(record["task_id"])
            if record.get("pending") and record.get("state") == State.COMPLETED.value and task is not None:
                task.desired_state = DESIRED_STOPPED  # a stop queued by a manager from before desired_state
        self._load_tombstones(self._store.list("purged"))
        self._restore_moving()
        for task in self._tasks.values():
            self._track_placement(task)
            self._schedule_work(task)
            self._published[task.id] = published_fields(task)
        if self._tasks:
            log.info("loaded %d task(s) from the store", len(self._tasks))

    def reload(self: "Manager") -> None:
        """Replace the tasks in memory by the store's: a follower's refresh of its reads, and
        a new leader's take-over. Every worker counts as just heard from (none is declared
        lost before a whole liveness period of its own), reads from workers start over (the
        versioned reports make that harmless), and the work left is derived anew. A task whose
        intake or stop is being committed right now stays as it is in memory: that commit,
        read or not by this reload, decides it."""
        with self._lock:
            self._reload_started()
            in_flight = set(self._uncommitted)  # their commits may land after the reads below
        try:
            tasks = [Task.from_dict(data) for data in self._store.list("task")]
            events = self._store.list("event")
            tombstones = self._store.list("purged")
        except BaseException:
            with self._lock:
                self._reload_drop_purged({})
            raise
        index = TaskIndex()
        for task in tasks:  # in intake order: the store lists by first write
            index.update(task)
        by_id = {task.id: task for task in tasks}
        with self._lock:
            self._load_tombstones(tombstones)  # before the purges since the read are let go
            for task_id in self._reload_drop_purged(by_id):  # purged since the read began: they stay purged
                index.remove(task_id)
            for task_id in (in_flight | self._uncommitted) & self._tasks.keys():
                by_id[task_id] = self._tasks[task_id]
                index.update(by_id[task_id])
            purged = [task for task_id, task in self._tasks.items() if task_id not in by_id]  # by another manager
            tasks = list(by_id.values())
            self._tasks = by_id
            self._index = index
            kept = {task_id: e for task_id, e in self._event_of.items() if task_id in by_id}  # intakes in flight
            self._event_of = {**{r["task_id"]: r["id"] for r in events if r["task_id"] in by_id}, **kept}
            self._event_ids = {r["id"] for r in events} | set(kept.values())
            Dispatch.__init__(self)
            Mirror.__init__(self)
            Liveness.__init__(self)
            added = self._reload_nodes()
            self._restore_moving()
            self._reset_placements(tasks)
            now = self._clock()
            for node in self._nodes:
                node.generation += 1  # a read begun before the reload cannot be written back
                node.misses, node.lost, node.last_answer = 0, False, now
            for task in tasks:
                self._schedule_work(task)
                if self._published.get(task.id) != published_fields(task):
                    self._publish_task(task)  # what changed in the database since the last reload
            for task in purged:
                self._publish_task(task, "removed")
        self._notify_change()
        for name in added:
            self.on_node_added(name)


def published_fields(task: Task) -> tuple:
    """What a task event is about: (state, attempt) make a "state" event, the rest "updated"."""
    return task.state.value, task.attempt, task.node, task.desired_state
