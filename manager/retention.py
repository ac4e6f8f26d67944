"""The manager's retention (Nomad's job GC is the model): finished tasks are purged from
memory, the indexes and the store once ORCA_RETENTION has passed since they ended, by a
periodic pass (purge_finished, the leader's job); `DELETE /tasks/<id>?purge=true` purges one at
once (purge), after its worker forgot its copy.

A purge is durable before it is answered or forgotten in memory: the task's record and its
intake event are deleted in one commit, and the task stays in memory, marked uncommitted,
until that commit is done, so a reload that reads the store meanwhile keeps it, and one that
read the store before cannot bring it back (`_purged_during_reload`). Only finished tasks are
purged: nothing is placed, sent or stopped for them any more, so nothing is re-placed.

A purge leaves a tombstone (kind "purged" in the store, written in the purge's commit): a copy
of a purged task that a worker still runs (a worker cut off while its task ended elsewhere)
is stopped when that worker reports it (Mirror). A task the manager never held (posted to a
worker directly) is left alone. A tombstone is buried one retention period (an hour at least) after its purge,
but not while a worker that has been silent since before the purge is still down (it may hold
such a copy), nor while a worker that came back has not been read again, nor while a copy
found is being stopped.
"""
from __future__ import annotations

import copy
import logging
import time
from typing import TYPE_CHECKING, Callable, Iterable

from task import Conflict, NotFound, Task, Unavailable, WorkerRejected, WorkerUnavailable
from task.model import epoch_seconds

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger(__name__)

DEFAULT_RETENTION = 86400.0  # seconds (ORCA_RETENTION)
PURGE_BATCH = 1000  # tasks purged per commit by the periodic pass
MIN_TOMBSTONE = 3600.0  # seconds a tombstone is kept at least (a run order sent before the purge may arrive late)


class Retention:
    """Mixin of Manager: purge() and purge_finished()."""

    def __init__(self: "Manager") -> None:
        self.retention: float | None = DEFAULT_RETENTION  # None: the periodic pass purges nothing
        self.wall_clock: Callable[[], float] = time.time  # finished_at is wall-clock time
        # Services' veto: why a replica must be kept for now (a running rollout counts its failures).
        self.purge_blocker: Callable[[Task], str | None] = lambda task: None
        self.tombstone_keep: float | None = None  # None: the retention, and at least MIN_TOMBSTONE
        self._purging: set[str] = set()  # purges being committed
        self._ended_seen: dict[str, float] = {}  # finished tasks with no finished_at -> when first seen so
        self._reloads_reading = 0  # reload() calls between their store read and taking the lock
        # purged task id -> (when: wall clock, and manager clock; inf when read from the store)
        self._tombstones: dict[str, tuple[float, float]] = {}
        self._purged_during_reload: set[str] = set()

    # ----- requests

    def purge(self: "Manager", task_id: str) -> Task:
        """Purge a finished task now: its worker forgets its copy, then the task's records are
        deleted from the store, then from memory. Returns the task as it was.

        Raises:
            NotFound: unknown id. Conflict: the task has not finished (stop it first), its
                worker still runs a copy, or a service still counts it.
            Unavailable: shutting down, or the store could not record the purge.
        """
        self._check_accepting()
        with self._lock:
            task = self._task(task_id)
            refusal = self._purge_refusal(task)
            if refusal:
                raise Conflict(refusal)
            node = self._by_name.get(task.node or "")
            address = node.address if node is not None else None
        if address is not None:
            self._purge_on_worker(task, address)
        if not self._purge_now([task]):
            raise Conflict(f"task {task_id} is being purged")
        log.info("task %s purged", task_id)
        return copy.copy(task)

    def _purge_on_worker(self: "Manager", task: Task, address: str) -> None:
        """Ask the task's worker to forget its copy. A worker that does not answer forgets it by
        itself after its own retention (and a copy it still runs is stopped when it reports it)."""
        try:
            self._client.purge_task(address, task.id)
        except NotFound:
            pass  # it has no copy (never got it, restarted, or purged it already)
        except WorkerRejected as exc:
            raise Conflict(f"task {task.id}: its copy on worker {task.node} has not finished yet ({exc}); "
                           f"try again once it has") from None
        except WorkerUnavailable as exc:
            log.warning("task %s: worker %s could not purge its copy now (%s); it does so after its "
                        "own retention", task.id, task.node, exc)

    # ----- the periodic pass

    def purge_finished(self: "Manager") -> int:
        """Purge every finished task that ended more than `retention` seconds ago, in commits of
        PURGE_BATCH. Returns how many were purged."""
        if self.retention is None:
            return 0
        now = self.wall_clock()
        with self._lock:
            ids = self._index.finished_ids()
        due = [task_id for task_id in ids if self._age(task_id, now) > self.retention]
        purged = 0
        for start in range(0, len(due), PURGE_BATCH):
            with self._lock:
                tasks = [t for i in due[start:start + PURGE_BATCH]
                         if (t := self._tasks.get(i)) is not None and not self._purge_refusal(t)]
            try:
                purged += len(self._purge_now(tasks))
            except Unavailable as exc:
                log.warning("purge of %d finished task(s) postponed: %s", len(tasks), exc)
                break
        with self._lock:
            self._prune_cleaned()
        self._bury_tombstones(now)
        if purged:
            log.info("purged %d task(s) finished more than %.0f s ago", purged, self.retention)
        return purged

    def _age(self: "Manager", task_id: str, now: float) -> float:
        """Seconds since the task ended (read without the lock: a finished task no longer changes)."""
        task = self._tasks.get(task_id)
        if task is None or not task.state.is_terminal:
            return 0.0
        ended = epoch_seconds(task.finished_at)
        if ended is None:  # ended before any worker had it, or a worker's report without a time
            ended = self._ended_seen.setdefault(task_id, now)
        return now - ended

    # ----- the purge itself

    def _purge_refusal(self: "Manager", task: Task) -> str | None:
        """Why `task` cannot be purged now, or None (caller holds the lock)."""
        if not task.state.is_terminal:
            return (f"task {task.id} is {task.state.value}: only a finished task can be purged; stop it first "
                    f"(DELETE /tasks/{task.id}) and purge it once it has ended")
        if task.id in self._uncommitted or task.id in self._purging:
            return f"task {task.id} is being changed; try again"
        return self.purge_blocker(task)

    def _purge_now(self: "Manager", tasks: Iterable[Task]) -> list[Task]:
        """Delete the tasks' records (and intake events) in one commit, then forget them in
        memory. Returns the tasks purged. Raises Unavailable if the commit failed (nothing is
        forgotten then)."""
        now = self.wall_clock()
        with self._lock:
            chosen = [t for t in tasks if t.id not in self._purging and self._tasks.get(t.id) is t]
            items: list[tuple[str, str, dict | None]] = []
            for task in chosen:
                self._purging.add(task.id)
                self._uncommitted.add(task.id)  # a reload meanwhile keeps it: this commit decides it
                items.append(("task", task.id, None))
                items.append(("purged", task.id, {"id": task.id, "at": now}))
                event_id = self._event_of.get(task.id)
                if event_id is not None:
                    items.append(("event", event_id, None))
            wait = self._store.submit(items) if items else _nothing
        try:
            wait()
        except Exception as exc:
            with self._lock:
                for task in chosen:
                    self._purging.discard(task.id)
                    self._uncommitted.discard(task.id)
            raise Unavailable(f"{len(chosen)} purge(s) could not be recorded: {exc}") from None
        with self._lock:
            for task in chosen:
                self._forget(task)
                self._tombstones[task.id] = (now, self._clock())
        if chosen:
            self._notify_change()
        return chosen

    def _forget(self: "Manager", task: Task) -> None:
        """Drop every trace of a purged task from memory (caller holds the lock)."""
        task_id = task.id
        self._tasks.pop(task_id, None)
        self._index.remove(task_id)
        self._placed.get(self._where.pop(task_id, ""), {}).pop(task_id, None)
        self._avoid.pop(task_id, None)
        self._event_ids.discard(self._event_of.pop(task_id, ""))
        self._work.pop(task_id, None)
        self._blocked.pop(task_id, None)
        self._retry_at.pop(task_id, None)
        for work_set in (self._unsent, self._stopping, self._uncommitted, self._purging, *self._deferred.values()):
            work_set.discard(task_id)
        self._moving.pop(task_id, None)
        self._ended_seen.pop(task_id, None)
        if self._reloads_reading:
            self._purged_during_reload.add(task_id)
        self._publish_task(task, "removed")

    def _bury_tombstones(self: "Manager", now: float) -> None:
        """Delete the tombstones older than one retention period (the default one when it is
        off; an hour at least), unless a worker may still hold a copy, in one commit; a failed
        commit leaves them for the next pass."""
        keep = self.tombstone_keep or max(self.retention or DEFAULT_RETENTION, MIN_TOMBSTONE)
        with self._lock:
            if any(not node.lost and node.name not in self._cursors for node in self._nodes):
                return  # a worker back from silence, not read again yet: it may hold copies
            silent_since = min((node.last_answer for node in self._nodes if node.lost), default=float("inf"))
            killing = {key[0] for key in self._kills}  # a copy found is being stopped: keep its tombstone
            old = []
            for task_id, (at, seen) in self._tombstones.items():  # oldest first
                if now - at <= keep or len(old) >= PURGE_BATCH:
                    break
                if task_id in killing:
                    continue
                if silent_since == float("inf") or seen < silent_since:  # none down, or purged before they went silent
                    old.append(task_id)
        if not old:
            return
        try:
            self._store.submit([("purged", task_id, None) for task_id in old])()
        except Exception as exc:  # noqa: BLE001 - tried again at the next pass
            log.warning("%d tombstone(s) of purged tasks kept for now: %s", len(old), exc)
            return
        with self._lock:
            for task_id in old:
                self._tombstones.pop(task_id, None)

    def _load_tombstones(self: "Manager", records: list[dict]) -> None:
        """Take the store's tombstones (at start and at a reload; caller holds the lock), and
        keep those of purges committed since a reload's read began. Read from the store, a
        tombstone's time on the manager's clock is unknown: it counts as after every silence."""
        loaded = {r["id"]: (float(r.get("at", 0.0)), float("inf")) for r in records}
        for task_id in self._purged_during_reload:
            if task_id in self._tombstones:
                loaded.setdefault(task_id, self._tombstones[task_id])
        self._tombstones = dict(sorted(loaded.items(), key=lambda item: item[1][0]))

    def was_purged(self: "Manager", task_id: str) -> bool:
        """True if the task was purged within the last retention period (a tombstone holds it)."""
        return task_id in self._tombstones

    def _prune_cleaned(self: "Manager") -> None:
        """Forget the stale copies seen cleaned up whose task is gone (caller holds the lock)."""
        if any(key[0] not in self._tasks for key in self._cleaned):
            self._cleaned = {key for key in self._cleaned if key[0] in self._tasks}

    def _reload_started(self: "Manager") -> None:
        """reload() is about to read the store (caller holds the lock)."""
        self._reloads_reading += 1

    def _reload_drop_purged(self: "Manager", by_id: dict[str, Task]) -> list[str]:
        """reload() is applying what it read (caller holds the lock): tasks purged since its
        read began stay purged. Returns the ids dropped from `by_id`."""
        dropped = [task_id for task_id in self._purged_during_reload if by_id.pop(task_id, None) is not None]
        self._reloads_reading -= 1
        if not self._reloads_reading:
            self._purged_during_reload.clear()
        return dropped


def _nothing() -> None:
    return None

