"""The manager: accepts tasks, places them on workers, and mirrors what the workers report.

`Manager` holds the task DB, the nodes and the work sets behind one lock; its three parts
live in their own modules: dispatch (reconcile desired state: place, send, stop), mirror
(apply workers' versioned reports, stop stale copies) and liveness (heartbeats, lost nodes).
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any, Callable, Iterable, Protocol

from manager.dispatch import Dispatch
from manager.intake import Intake
from manager.index import TaskIndex
from manager.events import EventLog
from manager.liveness import Liveness
from manager.mirror import Mirror
from manager.nodes import Drainer, NodeRegistry
from manager.placement import PlacementIndex
from manager.placing import Placing
from manager.queries import Queries
from manager.restore import Restore, published_fields
from manager.retention import Retention
from node import Node
from scheduler import Scheduler
from store import MemoryStore, Store
from task import DESIRED_STOPPED, Conflict, InvalidTransition, NotFound, OrcaError, Task, TaskEvent, Unavailable
from task import lifecycle

log = logging.getLogger(__name__)


class WorkerAPI(Protocol):
    """The calls the manager makes to workers (manager.client.WorkerClient over HTTP)."""

    def send_event(self, address: str, event: TaskEvent) -> dict[str, Any]: ...
    def send_orders(self, address: str, events: list[TaskEvent]) -> list[dict[str, Any] | OrcaError]: ...
    def stop_task(self, address: str, task_id: str, attempt: int | None = None) -> dict[str, Any]: ...
    def changes(self, address: str, since: int, wait: float = 0.0) -> tuple[str, int, list[dict[str, Any]]]: ...
    def purge_task(self, address: str, task_id: str) -> dict[str, Any]: ...
    def stats(self, address: str) -> dict[str, Any]: ...
    def health(self, address: str) -> dict[str, Any]: ...


class Manager(Intake, Dispatch, Placing, Mirror, Liveness, Queries, PlacementIndex, NodeRegistry, Drainer, Retention,
              Restore):
    """Owns the task DB, the nodes and the work sets, behind one lock.

    Request threads call submit/stop/get/list; the periodic passes dispatch_pending,
    sync_tasks and sync_nodes do the network work without holding the lock. Every change is
    written through to the store: queued under the lock (so writes keep their order) and
    waited for after it (so concurrent requests share one commit). A request is answered
    only once its change is durable; a failed commit undoes it and answers 503.
    """

    def __init__(self, workers: list[str], client: WorkerAPI, scheduler: Scheduler,
                 store: Store | None = None, down_after: int = 3, clock: Callable[[], float] = time.monotonic,
                 disconnect_margin: float = 15.0, events: EventLog | None = None) -> None:
        self._client = client
        self._scheduler = scheduler
        self._store: Store = store if store is not None else MemoryStore()
        self._down_after = down_after
        self._clock = clock
        self._disconnect_margin = disconnect_margin  # time a cut-off worker needs to stop a task itself
        self._lock = threading.RLock()
        self._tasks: dict[str, Task] = {}
        self._index = TaskIndex()  # intake order, by state/node/service: fed by _save()
        self._event_ids: set[str] = set()
        self._event_of: dict[str, str] = {}  # task id -> its intake event's id (purged with it)
        self._uncommitted: set[str] = set()  # tasks whose intake write is not durable yet
        self._nodes: list[Node] = []
        self._by_name: dict[str, Node] = {}
        self._init_registry(workers)  # the persisted nodes, then ORCA_WORKERS
        self._accepting = True
        self._changes = threading.Condition()  # notified on every task write and at shutdown
        self._change_count = 0
        self.events = events if events is not None else EventLog()
        self._published: dict[str, tuple] = {}  # task id -> _published_fields when last published
        self.on_work: Callable[[], None] = lambda: None
        self.on_placed: Callable[[Task], None] = lambda task: None  # a worker accepted an attempt (metrics)
        self.on_service_change: Callable[[], None] = lambda: None  # a service's replica was written (manager.services)
        Dispatch.__init__(self)
        Mirror.__init__(self)
        Liveness.__init__(self)
        PlacementIndex.__init__(self)
        Retention.__init__(self)
        self._init_drains()
        self._restore_drains(self._node_records)
        self._load()

    # ----- persistence

    def _save(self, tasks: Iterable[Task] = (), events: Iterable[TaskEvent] = ()) -> Callable[[], None]:
        """Queue task and event records for the store (caller holds the lock); return the wait.
        Every task written goes through here, so this is also where the indexes follow it."""
        tasks = list(tasks)
        items: list[tuple[str, str, dict[str, Any] | None]] = []
        for task in tasks:
            self._index.update(task)
            self._track_placement(task)
            items.append(("task", task.id, task.to_dict()))
        items += [("event", e.id, {"id": e.id, "task_id": e.task.id, "state": e.state.value,
                                   "timestamp": e.timestamp}) for e in events]
        self._event_of.update((e.task.id, e.id) for e in events)
        if not items:
            return _nothing
        for task in tasks:
            self._publish_task(task)
        self._notify_change()
        if any(value and value.get("service") for _, _, value in items):
            self.on_service_change()
        return self._store.submit(items)

    def publish_event(self, topic: str, kind: str, data: dict[str, Any]) -> int:
        """Publish an event on the log (GET /events); the nodes' registry and drainer use it."""
        return self.events.publish(topic, kind, data)

    def _publish_task(self, task: Task, kind: str | None = None) -> None:
        """Publish a task write on the event log (caller holds the lock, which keeps one
        task's events in the order of its changes): "created", "state" when its state or
        attempt changed, else "updated"; `kind` overrides."""
        now = published_fields(task)
        before = self._published.get(task.id)
        if kind is None:
            kind = "created" if before is None else "state" if before[:2] != now[:2] else "updated"
        if kind == "removed":
            self._published.pop(task.id, None)
        else:
            self._published[task.id] = now
        self.events.publish("task", kind, task_event_data(task, before[0] if before else None))

    def _commit(self, task: Task, change: Callable[[Task], object]) -> None:
        """Apply `change` to `task` and make it durable; if the commit fails, undo the change
        in memory and raise Unavailable."""
        with self._lock:
            before = copy.copy(task)
            change(task)
            after = copy.copy(task)
            wait = self._save([task])
        try:
            wait()
        except Exception as exc:
            with self._lock:
                self._restore([(task, before, after)])
            raise Unavailable(f"task {task.id}: the change could not be recorded: {exc}") from None

    def _commit_many(self, tasks: list[Task], change: Callable[[Task], bool]) -> list[Task]:
        """Apply `change` to each task (one returning False, or raising InvalidTransition,
        leaves its task as it was) and make the changed ones durable in one commit. Returns
        the changed tasks; if the commit fails, undoes every change and raises Unavailable."""
        with self._lock:
            undo, changed = [], []
            for task in tasks:
                saved = copy.copy(task)
                try:
                    keep = change(task)
                except InvalidTransition as exc:
                    log.warning("task %s: %s", task.id, exc)
                    keep = False
                if keep:
                    undo.append((task, saved, copy.copy(task)))
                    changed.append(task)
                else:
                    task.__dict__.update(saved.__dict__)
            wait = self._save(changed)
        try:
            wait()
        except Exception as exc:
            with self._lock:
                self._restore(undo)
            raise Unavailable(f"{len(changed)} task change(s) could not be recorded: {exc}") from None
        return changed

    def _restore(self, undo: list[tuple[Task, Task, Task]]) -> None:
        """Undo changes whose commit failed (caller holds the lock). For each (task, copy
        before the change, copy after it), a field the change set goes back, unless something
        else has set it since (a worker's report applied meanwhile, say, which stays); the
        restored state is published (the undone change was). A task replaced by a reload
        meanwhile is left alone.

        Another commit may have carried the change to the store meanwhile (a report on the
        same task, say), so the task is written again as restored, at the next pass. What was
        judged against the undone state goes too: a kill ordered for the attempt that is
        current again, and the feed's position on its node (read again from the start)."""
        for task, before, after in undo:
            if self._tasks.get(task.id) is not task:
                continue
            for name, old in vars(before).items():
                new = getattr(after, name)
                if new != old and getattr(task, name) == new:
                    setattr(task, name, old)
            self._index.update(task)
            self._track_placement(task)
            self._publish_task(task)
            self._schedule_work(task)
            self._unsaved.add(task.id)
            if task.node is not None:
                self._kills.pop((task.id, task.node, task.attempt), None)
                self._cursors.pop(task.node, None)

    def _notify_change(self) -> None:
        """Wake wait_task() callers (a task was written, or intake closed)."""
        with self._changes:
            self._change_count += 1
            self._changes.notify_all()

    def close(self) -> None:
        """Close the store."""
        self._store.close()

    # ----- requests

    def stop(self, task_id: str) -> Task:
        """Record the user's wish that a task stop (durable when it returns); it is then
        reconciled: told to its worker until the worker reports it ended. A task no worker
        has yet is completed on the spot. Stopping a task already being stopped is a no-op.

        Raises:
            NotFound: unknown id. Conflict: the task already finished.
            Unavailable: shutting down, the store could not record it, or its intake or
                another stop is being recorded right now (its outcome is not known yet).
        """
        self._check_accepting()
        with self._lock:
            task = self._task(task_id)
            if task_id in self._uncommitted:  # its intake, or another stop, may yet fail: not known yet
                raise Unavailable(f"task {task_id}: another change to it is being recorded; try again")
            if task.state.is_terminal:
                raise Conflict(f"task {task_id} is already {task.state.value}")
            if task.desired_state == DESIRED_STOPPED:
                return copy.copy(task)
            self._uncommitted.add(task_id)
        try:
            self._commit(task, _stop_intent)
        finally:
            with self._lock:
                self._uncommitted.discard(task_id)
                self._schedule_work(task)  # also when the commit failed: whatever it still needs
        with self._lock:
            self._schedule_work(task)
            result = copy.copy(task)
        log.info("task %s: stop requested", task_id)
        self.on_work()
        return result

    def get(self, task_id: str) -> Task:
        """A copy of the task; raises NotFound."""
        with self._lock:
            return copy.copy(self._task(task_id))

    def list(self) -> list[Task]:
        """Copies of every task, oldest first. Walks every task under the lock: for tests and
        tools; request paths use query_tasks()."""
        with self._lock:
            return [copy.copy(t) for t in self._tasks.values()]

    def nodes(self) -> list[Node]:
        """Copies of the nodes in configuration order."""
        with self._lock:
            return [copy.copy(n) for n in self._nodes]

    def node_addresses(self) -> list[tuple[str, str]]:
        """(name, address) of every node, in configuration order (no copies of the nodes)."""
        with self._lock:
            return [(n.name, n.address) for n in self._nodes]

    def is_node_up(self, node_name: str) -> bool:
        """True while the node answers its liveness checks (no copy made)."""
        with self._lock:
            node = self._by_name.get(node_name)
            return node is not None and node.is_up

    def close_intake(self) -> None:
        """Refuse new requests from now on, and release wait_task() callers and event streams."""
        self._accepting = False
        self._notify_change()
        self.events.close()

    @property
    def accepting(self) -> bool:
        """False once the manager is shutting down."""
        return self._accepting

    @property
    def store(self) -> Store:
        """The store the manager writes to (services keep their records there too)."""
        return self._store

    @property
    def client(self) -> WorkerAPI:
        """The workers' client (the API streams task output through it)."""
        return self._client

    def wait_task(self, task_id: str, until: Callable[[Task], bool], timeout: float) -> tuple[Task, bool]:
        """Block until `until(task)` holds, `timeout` seconds pass or intake closes.

        Returns (a copy of the task, whether `until` held). Raises NotFound.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._changes:
                seen = self._change_count
            task = self.get(task_id)
            if until(task):
                return task, True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._accepting:
                return task, False
            with self._changes:
                self._changes.wait_for(lambda: self._change_count != seen or not self._accepting, remaining)

    def _check_accepting(self) -> None:
        if not self._accepting:
            raise Unavailable("manager is shutting down")

    def _task(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id[:64]} not found")
        return task


def task_event_data(task: Task, previous: str | None) -> dict[str, Any]:
    """What a task event carries: the fields a watcher shows, and the state it left."""
    return {"id": task.id, "name": task.name, "image": task.image, "state": task.state.value,
            "previous": previous, "desired_state": task.desired_state, "attempt": task.attempt,
            "node": task.node, "exit_code": task.exit_code, "error": task.error, "created_at": task.created_at,
            "service": task.service, "service_version": task.service_version}


def _stop_intent(task: Task) -> None:
    task.desired_state = DESIRED_STOPPED
    if task.node is None:  # no worker has it (not placed yet, or between two attempts)
        lifecycle.cancel(task)


def _nothing() -> None:
    return None
