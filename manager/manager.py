"""The manager: accepts tasks, places them on workers, and mirrors what the workers report."""
from __future__ import annotations

import copy
import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Protocol

from node import DOWN, Node
from scheduler import Scheduler, place
from store import MemoryStore, Store
from task import (
    Conflict, NotFound, State, Task, TaskEvent, Unavailable, WorkerRejected, WorkerUnavailable, utc_now,
)

log = logging.getLogger(__name__)

# Fields a worker owns: the manager copies them from the worker's view of a task.
OBSERVED_FIELDS = ("container_id", "exit_code", "error", "host_ports", "started_at", "finished_at",
                   "restart_count")
ACTIVE = (State.SCHEDULED, State.RUNNING)


class NoWorkerUp(WorkerUnavailable):
    """No worker can take a task right now."""


class WorkerAPI(Protocol):
    """The calls the manager makes to workers (manager.client.WorkerClient over HTTP)."""

    def send_event(self, address: str, event: TaskEvent) -> dict[str, Any]: ...
    def stop_task(self, address: str, task_id: str) -> dict[str, Any]: ...
    def changes(self, address: str, since: int, wait: float = 0.0) -> tuple[str, int, list[dict[str, Any]]]: ...
    def stats(self, address: str) -> dict[str, Any]: ...
    def health(self, address: str) -> dict[str, Any]: ...


class Manager:
    """Owns the task DB, the event DB, the pending queue and the nodes, behind one lock.

    Request threads call submit/stop/get/list; the periodic passes dispatch_pending,
    sync_tasks and sync_nodes do the network work without holding the lock. Every change is
    written through to the store: queued under the lock (so writes keep their order) and
    waited for after it (so concurrent requests share one commit).
    """

    def __init__(self, workers: list[str], client: WorkerAPI, scheduler: Scheduler,
                 store: Store | None = None, down_after: int = 3) -> None:
        self._client = client
        self._scheduler = scheduler
        self._store: Store = store if store is not None else MemoryStore()
        self._down_after = down_after
        self._lock = threading.RLock()
        self._tasks: dict[str, Task] = {}
        self._event_ids: set[str] = set()
        self._pending: deque[TaskEvent] = deque()
        self._nodes = [Node(name=address, address=address) for address in workers]
        self._by_name = {node.name: node for node in self._nodes}
        self._cursors: dict[str, tuple[str, int]] = {}
        self._sync_locks = {node.name: threading.Lock() for node in self._nodes}
        self._stale: set[tuple[str, str, str]] = set()  # (task, node, container) already told to stop
        self._stop_requested: set[str] = set()
        self._accepting = True
        self._changes = threading.Condition()  # notified on every task write and at shutdown
        self._change_count = 0
        self.on_work: Callable[[], None] = lambda: None
        self.on_placed: Callable[[TaskEvent], None] = lambda event: None  # a worker accepted the event (metrics)
        self._load()

    # ----- persistence

    def _load(self) -> None:
        """Rebuild tasks and pending events from the store (after a restart)."""
        for data in self._store.list("task"):
            task = Task.from_dict(data)
            self._tasks[task.id] = task
        for record in self._store.list("event"):
            self._event_ids.add(record["id"])
            task = self._tasks.get(record["task_id"])
            if record.get("pending") and task is not None:
                event = TaskEvent(task=copy.copy(task), state=State(record["state"]), id=record["id"],
                                  timestamp=record["timestamp"], node=record.get("node"))
                self._pending.append(event)
                if event.state is State.COMPLETED and event.node is None:
                    self._stop_requested.add(task.id)
        if self._tasks:
            log.info("loaded %d task(s) and %d pending event(s) from the store", len(self._tasks), len(self._pending))

    def _save(self, tasks: Iterable[Task] = (), events: Iterable[tuple[TaskEvent, bool]] = ()) -> Callable[[], None]:
        """Queue task and event records for the store (caller holds the lock); return the wait."""
        items: list[tuple[str, str, dict[str, Any] | None]] = [("task", t.id, t.to_dict()) for t in tasks]
        items += [("event", e.id, {"id": e.id, "task_id": e.task.id, "state": e.state.value, "node": e.node,
                                   "timestamp": e.timestamp, "pending": pending}) for e, pending in events]
        if not items:
            return _nothing
        self._notify_change()
        return self._store.submit(items)

    def _notify_change(self) -> None:
        """Wake wait_task() callers (a task was written, or intake closed)."""
        with self._changes:
            self._change_count += 1
            self._changes.notify_all()

    def close(self) -> None:
        """Close the store."""
        self._store.close()

    # ----- requests

    def submit(self, event: TaskEvent) -> Task:
        """Record a new task in state pending and queue its event; durable when it returns.

        Raises:
            Conflict: the task id or event id is already known.
            Unavailable: the manager is shutting down.
        """
        self._check_accepting()
        task = event.task
        with self._lock:
            if task.id in self._tasks:
                raise Conflict(f"task {task.id} already exists")
            if event.id in self._event_ids:
                raise Conflict(f"event {event.id} already exists")
            task.state, task.created_at, task.node = State.PENDING, utc_now(), None
            self._tasks[task.id] = task
            self._event_ids.add(event.id)
            self._pending.append(event)
            result = copy.copy(task)
            wait = self._save([task], [(event, True)])
        wait()
        log.info("task %s accepted (%s)", task.id, task.image)
        if self._any_worker_ready():  # else sync_nodes wakes dispatch when one comes up
            self.on_work()
        return result

    def _any_worker_ready(self) -> bool:
        return any(node.accepts_tasks for node in self._nodes)

    def stop(self, task_id: str) -> Task:
        """Ask for a task to stop. A task not yet placed is cancelled on the spot.

        Raises:
            NotFound: unknown id. Conflict: the task already finished.
        """
        self._check_accepting()
        with self._lock:
            task = self._task(task_id)
            if task.state.is_terminal:
                raise Conflict(f"task {task_id} is already {task.state.value}")
            if task.state is State.PENDING:
                wait = self._cancel(task)
            else:
                self._stop_requested.add(task_id)
                wait = self._queue(TaskEvent(task=copy.copy(task), state=State.COMPLETED), [])
            result = copy.copy(task)
        wait()
        self.on_work()
        return result

    def _queue(self, event: TaskEvent, tasks: list[Task]) -> Callable[[], None]:
        """Append an event to the pending queue and persist it (caller holds the lock)."""
        self._event_ids.add(event.id)
        self._pending.append(event)
        return self._save(tasks, [(event, True)])

    def _cancel(self, task: Task) -> Callable[[], None]:
        """Drop a never-placed task's queued events and complete it (caller holds the lock)."""
        dropped = [e for e in self._pending if e.task.id == task.id]
        self._pending = deque(e for e in self._pending if e.task.id != task.id)
        task.state, task.finished_at = State.COMPLETED, utc_now()
        log.info("task %s cancelled before placement", task.id)
        return self._save([task], [(e, False) for e in dropped])

    def get(self, task_id: str) -> Task:
        """A copy of the task; raises NotFound."""
        with self._lock:
            return copy.copy(self._task(task_id))

    def list(self) -> list[Task]:
        """Copies of every task, oldest first."""
        with self._lock:
            return [copy.copy(t) for t in self._tasks.values()]

    def nodes(self) -> list[Node]:
        """Copies of the nodes in configuration order."""
        with self._lock:
            return [copy.copy(n) for n in self._nodes]

    def pending_count(self) -> int:
        """Events waiting for dispatch."""
        return len(self._pending)

    def close_intake(self) -> None:
        """Refuse new requests from now on, and release wait_task() callers."""
        self._accepting = False
        self._notify_change()

    @property
    def accepting(self) -> bool:
        """False once the manager is shutting down."""
        return self._accepting

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

    # ----- dispatch_pending

    def dispatch_pending(self) -> int:
        """Send every queued event to a worker; events that cannot go now stay queued, in order.

        Returns the number of events delivered.
        """
        delivered, retry = 0, []
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        break
                    event = self._pending.popleft()
                outcome = self._dispatch_one(event)
                if outcome is True:
                    delivered += 1
                else:
                    retry.append(event)
                    if outcome is NoWorkerUp:  # the rest would not find one either
                        break
        finally:
            if retry:
                with self._lock:
                    self._pending.extendleft(reversed(retry))
        return delivered

    def _dispatch_one(self, event: TaskEvent) -> bool | type:
        """Deliver one event; return True when it is done, else False or NoWorkerUp (wait)."""
        try:
            self._dispatch(event)
            return True
        except NoWorkerUp:
            return NoWorkerUp
        except WorkerUnavailable as exc:
            log.info("task %s: event %s waits: %s", event.task.id, event.id, exc)
        except (WorkerRejected, NotFound, Conflict) as exc:  # a stop the worker refused
            log.warning("task %s: event %s dropped: %s", event.task.id, event.id, exc)
            self._done(event)
            return True
        except Exception:
            log.exception("task %s: event %s failed; it will be tried again", event.task.id, event.id)
        return False

    def _dispatch(self, event: TaskEvent) -> None:
        if event.state is State.COMPLETED:
            self._dispatch_stop(event)
        else:
            self._dispatch_run(event)

    def _dispatch_run(self, event: TaskEvent) -> None:
        """Place the task and deliver its event, trying another worker when one does not answer.

        The chosen worker is recorded before the call, so after a crash the event goes back
        to the same worker (which ignores a repeat) instead of starting a second copy.
        """
        tried: set[str] = set()
        while True:
            node, current = self._target(event.task.id, tried)
            if current is None:  # the task finished or was cancelled meanwhile
                self._done(event)
                return
            if node is None:
                raise NoWorkerUp("no worker is up")
            try:
                answer = self._client.send_event(node.address, TaskEvent(task=current, id=event.id))
            except WorkerUnavailable as exc:
                tried.add(node.name)
                self._missed(node, exc)
                continue
            except (WorkerRejected, NotFound, Conflict) as exc:
                self._fail(event, f"worker {node.name} rejected the task: {exc}")
                return
            self._record_placement(event, node, answer)
            return

    def _target(self, task_id: str, tried: set[str]) -> tuple[Node | None, Task | None]:
        """Pick the worker for a run event and persist the choice; return (node, task copy)."""
        with self._lock:
            task = self._tasks[task_id]
            if task.state not in (State.PENDING, State.SCHEDULED):
                return None, None
            sticky = self._by_name.get(task.node or "")
            if sticky is not None and sticky.is_up and sticky.name not in tried:
                return sticky, copy.copy(task)
            nodes = self._nodes if not tried else [n for n in self._nodes if n.name not in tried]
            node = place(self._scheduler, task, nodes)
            if node is None:
                return None, copy.copy(task)
            task.node = node.name
            wait = self._save([task])
            current = copy.copy(task)
        wait()
        return node, current

    def _dispatch_stop(self, event: TaskEvent) -> None:
        with self._lock:
            node = self._by_name.get(event.node or self._tasks[event.task.id].node or "")
        if node is None:
            self._done(event)
            return
        try:
            answer = self._client.stop_task(node.address, event.task.id)
        except NotFound:
            answer = None
        except WorkerUnavailable:
            if node.is_up:
                raise
            # The worker is gone: _node_lost settles its tasks, and a stale copy is stopped
            # when the worker comes back (so forget that we already asked).
            with self._lock:
                self._stale = {k for k in self._stale if k[:2] != (event.task.id, node.name)}
            self._done(event)
            return
        self._done(event)
        if answer is not None:
            self._apply_remote(node.name, [answer])

    def _done(self, event: TaskEvent) -> None:
        with self._lock:
            wait = self._save([], [(event, False)])
        wait()

    def _record_placement(self, event: TaskEvent, node: Node, answer: dict[str, Any]) -> None:
        with self._lock:
            task = self._tasks[event.task.id]
            if task.state.is_terminal:  # cancelled while we were placing it
                self._queue(TaskEvent(task=copy.copy(task), state=State.COMPLETED, node=node.name), [])
                wait = self._save([], [(event, False)])
            else:
                self._merge(task, answer)
                wait = self._save([task], [(event, False)])
        wait()
        self.on_placed(event)
        log.info("task %s placed on %s", task.id, node.name)

    def _fail(self, event: TaskEvent, error: str) -> None:
        with self._lock:
            task = self._tasks[event.task.id]
            if not task.state.is_terminal:
                task.state, task.error, task.finished_at = State.FAILED, error, utc_now()
            wait = self._save([task], [(event, False)])
        wait()
        log.warning("task %s failed: %s", task.id, error)

    # ----- sync_tasks

    def sync_tasks(self) -> None:
        """Pull what changed on each worker that is up and mirror it into the task DB.
        Workers being followed by watch_tasks() at this moment are skipped."""
        for node in self.nodes():
            if node.state != DOWN:
                self.watch_tasks(node.name, wait=0.0, block=False)

    def watch_tasks(self, node_name: str, wait: float, block: bool = True) -> bool:
        """Mirror one worker's task changes, long-polling up to `wait` seconds for them.

        One sync per worker runs at a time (so changes are applied in order); with
        block=False a worker already being synced is skipped. Returns False when the worker
        could not be read (the caller may pause before trying again).
        """
        lock = self._sync_locks[node_name]
        if not lock.acquire(blocking=block):
            return True
        try:
            node = self._by_name[node_name]
            if node.state == DOWN:
                return False
            self._sync_node_tasks(node, wait)
            return True
        except (WorkerUnavailable, WorkerRejected, NotFound) as exc:
            log.debug("worker %s: task sync skipped: %s", node_name, exc)
            return False
        finally:
            lock.release()

    def _sync_node_tasks(self, node: Node, wait: float = 0.0) -> None:
        instance, since = self._cursors.get(node.name, ("", 0))
        seen_instance, version, tasks = self._client.changes(node.address, since, wait if instance else 0.0)
        full = seen_instance != instance
        if full and since:  # the worker restarted: read everything again
            seen_instance, version, tasks = self._client.changes(node.address, 0)
        self._apply_remote(node.name, tasks)
        if full:
            self._reconcile(node.name, {str(t.get("id")) for t in tasks})
        self._cursors[node.name] = (seen_instance, version)

    def _apply_remote(self, node_name: str, remotes: list[dict[str, Any]]) -> None:
        """Merge a worker's copies of tasks; stop copies that are not the task's current one."""
        with self._lock:
            changed = []
            for remote in remotes:
                task = self._tasks.get(str(remote.get("id")))
                if task is None:
                    continue
                active = remote.get("state") in (State.SCHEDULED.value, State.RUNNING.value)
                if task.node != node_name or (task.state.is_terminal and active):
                    self._stop_stale(task, node_name, remote, active)
                elif self._merge(task, remote):
                    changed.append(task)
            wait = self._save(changed)
        wait()

    def _stop_stale(self, task: Task, node_name: str, remote: dict[str, Any], active: bool) -> None:
        """Queue a stop for a copy of `task` that should not exist, once per container: it is
        stopped if it runs, and its container is removed either way (lock held)."""
        container = str(remote.get("container_id") or "")
        key = (task.id, node_name, container)
        if (not active and not container) or key in self._stale:
            return
        self._stale.add(key)
        log.warning("task %s: stopping the stale copy on %s (it belongs to %s)", task.id, node_name, task.node)
        self._queue(TaskEvent(task=copy.copy(task), state=State.COMPLETED, node=node_name), [])
        self.on_work()

    def _merge(self, task: Task, remote: dict[str, Any]) -> bool:
        """Adopt the worker's view of a task; return whether anything changed. The worker
        enforces the transition table; the manager never brings a finished task back."""
        try:
            state = State(remote.get("state"))
        except ValueError:
            return False
        if task.state.is_terminal and not state.is_terminal:
            return False
        before = task.to_dict()
        if state is not task.state:
            log.info("task %s %s -> %s on %s", task.id, task.state.value, state.value, task.node)
        task.state = state
        for name in OBSERVED_FIELDS:
            if name in remote:
                setattr(task, name, remote[name])
        return task.to_dict() != before

    def _reconcile(self, node_name: str, present: set[str]) -> None:
        """After a full read of a worker: send again the tasks it should have but does not
        (it restarted before starting them), unless an event for them is already queued."""
        with self._lock:
            queued = {e.task.id for e in self._pending}
            missing = [t for t in self._tasks.values()
                       if t.node == node_name and t.state in ACTIVE and t.id not in present and t.id not in queued]
            waits = [self._queue(TaskEvent(task=copy.copy(t)), []) for t in missing]
        for wait in waits:
            wait()
        if missing:
            log.warning("worker %s lost %d task(s); sending them again", node_name, len(missing))
            self.on_work()

    # ----- sync_nodes

    def sync_nodes(self) -> None:
        """Poll each worker's /stats and /health: a node that answers is up; one that misses
        enough polls is down, and its tasks move to workers that are up. A node whose Docker
        engine is unreachable stays up but gets no new tasks."""
        for node in self._nodes:
            try:
                stats = self._client.stats(node.address)
            except (WorkerUnavailable, WorkerRejected, NotFound) as exc:
                self._missed(node, exc)
                continue
            engine = self._engine_of(node)
            with self._lock:
                came_up, could_take = not node.is_up, node.accepts_tasks
                was_reachable = node.engine.get("reachable")
                node.record_stats(stats, utc_now())
                node.record_engine(engine)
                ready = node.accepts_tasks and not could_take
            if came_up:
                log.info("worker %s is up", node.name)
            if engine.get("reachable") is False and was_reachable is not False:
                log.warning("worker %s gets no new tasks: %s", node.name, engine.get("error"))
            elif engine.get("reachable") and was_reachable is False:
                log.info("worker %s: docker engine reachable again", node.name)
            if ready and self._pending:
                self.on_work()

    def _engine_of(self, node: Node) -> dict[str, Any]:
        """The worker's Docker engine state from its /health ({"reachable": None} if unknown)."""
        try:
            return self._client.health(node.address)["docker"]
        except (WorkerUnavailable, WorkerRejected, NotFound) as exc:
            return {"reachable": None, "error": f"engine state unknown: {exc}"}

    def _missed(self, node: Node, exc: Exception) -> None:
        with self._lock:
            was_up = node.is_up
            node.record_miss(self._down_after)
            lost = was_up and not node.is_up
        if lost:
            log.warning("worker %s is down: %s", node.name, exc)
            self._node_lost(node)

    def _node_lost(self, node: Node) -> None:
        """Move the lost worker's tasks elsewhere, under each task's restart policy."""
        with self._lock:
            changed, moved = [], []
            for task in self._tasks.values():
                if task.node != node.name or task.state not in ACTIVE:
                    continue
                if task.id in self._stop_requested:
                    done = State.COMPLETED if task.state is State.RUNNING else State.FAILED
                    task.state, task.finished_at = done, utc_now()
                elif task.restart_policy == "no" or task.restart_count >= task.max_restarts:
                    why = "" if task.restart_policy == "no" else f"; gave up after {task.restart_count} restarts"
                    task.state, task.error, task.finished_at = State.FAILED, f"worker {node.name} lost{why}", utc_now()
                else:
                    task.state, task.node = State.SCHEDULED, None
                    task.restart_count += 1
                    task.error = f"worker {node.name} lost; moving (restart {task.restart_count} of {task.max_restarts})"
                    moved.append(task)
                changed.append(task)
            self._cursors.pop(node.name, None)
            self._stale = {k for k in self._stale if k[1] != node.name}
            waits = [self._save(changed)] + [self._queue(TaskEvent(task=copy.copy(t)), []) for t in moved]
        for wait in waits:
            wait()
        if changed:
            log.warning("worker %s lost: %d task(s) moved, %d failed", node.name, len(moved), len(changed) - len(moved))
            self.on_work()


def _nothing() -> None:
    return None
