"""The manager: accepts tasks, places them on workers, and mirrors what the workers report."""
from __future__ import annotations

import copy
import logging
import threading
from collections import deque
from typing import Any, Callable, Protocol

from node import DOWN, Node
from scheduler import Scheduler, place
from task import (
    Conflict, NotFound, State, Task, TaskEvent, Unavailable, WorkerRejected, WorkerUnavailable, utc_now,
)

log = logging.getLogger(__name__)

# Fields a worker owns: the manager copies them from the worker's view of a task.
OBSERVED_FIELDS = ("container_id", "exit_code", "error", "host_ports", "started_at", "finished_at",
                   "restart_count")


class WorkerAPI(Protocol):
    """The calls the manager makes to workers (manager.client.WorkerClient over HTTP)."""

    def send_event(self, address: str, event: TaskEvent) -> dict[str, Any]: ...
    def stop_task(self, address: str, task_id: str) -> dict[str, Any]: ...
    def changes(self, address: str, since: int) -> tuple[int, list[dict[str, Any]]]: ...
    def stats(self, address: str) -> dict[str, Any]: ...


class Manager:
    """Owns the task DB, the event DB, the pending queue and the nodes, behind one lock.

    Request threads call submit/stop/get/list; the periodic passes dispatch_pending,
    sync_tasks and sync_nodes do the network work without holding the lock.
    """

    def __init__(self, workers: list[str], client: WorkerAPI, scheduler: Scheduler, down_after: int = 3) -> None:
        self._client = client
        self._scheduler = scheduler
        self._down_after = down_after
        self._lock = threading.RLock()
        self._tasks: dict[str, Task] = {}
        self._events: dict[str, TaskEvent] = {}
        self._pending: deque[TaskEvent] = deque()
        self._nodes = [Node(name=address, address=address) for address in workers]
        self._by_name = {node.name: node for node in self._nodes}
        self._versions = {node.name: 0 for node in self._nodes}
        self._accepting = True
        self.on_work: Callable[[], None] = lambda: None

    # ----- requests

    def submit(self, event: TaskEvent) -> Task:
        """Record a new task in state pending and queue its event.

        Raises:
            Conflict: the task id or event id is already known.
            Unavailable: the manager is shutting down.
        """
        self._check_accepting()
        task = event.task
        with self._lock:
            if task.id in self._tasks:
                raise Conflict(f"task {task.id} already exists")
            if event.id in self._events:
                raise Conflict(f"event {event.id} already exists")
            task.state, task.created_at = State.PENDING, utc_now()
            self._tasks[task.id] = task
            self._events[event.id] = event
            self._pending.append(event)
            result = copy.copy(task)
        log.info("task %s accepted (%s)", task.id, task.image)
        self.on_work()
        return result

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
                self._cancel(task)
                return copy.copy(task)
            event = TaskEvent(task=copy.copy(task), state=State.COMPLETED)
            self._events[event.id] = event
            self._pending.append(event)
            result = copy.copy(task)
        self.on_work()
        return result

    def _cancel(self, task: Task) -> None:
        """Drop a never-placed task's queued events and complete it (caller holds the lock)."""
        self._pending = deque(e for e in self._pending if e.task.id != task.id)
        task.state, task.finished_at = State.COMPLETED, utc_now()
        log.info("task %s cancelled before placement", task.id)

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
        """Refuse new requests from now on."""
        self._accepting = False

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
        while True:
            with self._lock:
                if not self._pending:
                    break
                event = self._pending.popleft()
            try:
                self._dispatch(event)
                delivered += 1
            except WorkerUnavailable as exc:
                log.info("task %s: event %s waits: %s", event.task.id, event.id, exc)
                retry.append(event)
        if retry:
            with self._lock:
                self._pending.extendleft(reversed(retry))
        return delivered

    def _dispatch(self, event: TaskEvent) -> None:
        if event.state is State.COMPLETED:
            self._dispatch_stop(event)
        else:
            self._dispatch_run(event)

    def _dispatch_run(self, event: TaskEvent) -> None:
        """Place the task and deliver its event, trying the next candidate when a worker is down."""
        while True:
            node = place(self._scheduler, event.task, self._nodes)
            if node is None:
                raise WorkerUnavailable("no worker is up")
            try:
                answer = self._client.send_event(node.address, event)
            except WorkerUnavailable as exc:
                self._mark_down(node, exc)
                continue
            except (WorkerRejected, NotFound, Conflict) as exc:
                self._fail(event.task.id, f"worker {node.name} rejected the task: {exc}")
                return
            self._record_placement(event.task.id, node, answer)
            return

    def _dispatch_stop(self, event: TaskEvent) -> None:
        with self._lock:
            node = self._by_name.get(self._tasks[event.task.id].node or "")
        if node is None:
            return
        try:
            answer = self._client.stop_task(node.address, event.task.id)
        except NotFound:
            self._fail(event.task.id, f"worker {node.name} no longer has the task")
            return
        self._apply_remote(node.name, answer)

    def _record_placement(self, task_id: str, node: Node, answer: dict[str, Any]) -> None:
        with self._lock:
            task = self._tasks[task_id]
            if task.state is State.COMPLETED:  # cancelled while we were placing it
                stop = TaskEvent(task=copy.copy(task), state=State.COMPLETED)
                task.node = node.name
                self._pending.append(stop)
                return
            task.node = node.name
            self._merge(task, answer)
        log.info("task %s placed on %s", task_id, node.name)

    def _fail(self, task_id: str, error: str) -> None:
        with self._lock:
            task = self._tasks[task_id]
            if not task.state.is_terminal:
                task.state, task.error, task.finished_at = State.FAILED, error, utc_now()
        log.warning("task %s failed: %s", task_id, error)

    def _mark_down(self, node: Node, exc: Exception) -> None:
        with self._lock:
            node.state, node.misses = DOWN, self._down_after
        log.warning("worker %s is down: %s", node.name, exc)

    # ----- sync_tasks / sync_nodes

    def sync_tasks(self) -> None:
        """Pull what changed on each worker that is up and mirror it into the task DB."""
        for node in self.nodes():
            if node.state != DOWN:
                try:
                    self._sync_node_tasks(node)
                except (WorkerUnavailable, WorkerRejected, NotFound) as exc:
                    log.debug("worker %s: task sync skipped: %s", node.name, exc)

    def _sync_node_tasks(self, node: Node) -> None:
        since = self._versions[node.name]
        version, tasks = self._client.changes(node.address, since)
        if version < since:  # the worker restarted: read everything again
            version, tasks = self._client.changes(node.address, 0)
        for remote in tasks:
            self._apply_remote(node.name, remote)
        self._versions[node.name] = version

    def _apply_remote(self, node_name: str, remote: dict[str, Any]) -> None:
        with self._lock:
            task = self._tasks.get(str(remote.get("id")))
            if task is not None and task.node == node_name:
                self._merge(task, remote)

    def _merge(self, task: Task, remote: dict[str, Any]) -> None:
        """Adopt the worker's view of a task. The worker enforces the transition table; the
        manager only refuses to bring a finished task back to life."""
        try:
            state = State(remote.get("state"))
        except ValueError:
            return
        if task.state.is_terminal and not state.is_terminal:
            return
        if state is not task.state:
            log.info("task %s %s -> %s on %s", task.id, task.state.value, state.value, task.node)
        task.state = state
        for name in OBSERVED_FIELDS:
            if name in remote:
                setattr(task, name, remote[name])

    def sync_nodes(self) -> None:
        """Poll each worker's /stats: a node that answers is up; one that misses enough polls is down."""
        for node in self._nodes:
            try:
                stats = self._client.stats(node.address)
            except (WorkerUnavailable, WorkerRejected, NotFound) as exc:
                with self._lock:
                    was_up = node.is_up
                    node.record_miss(self._down_after)
                if was_up and not node.is_up:
                    log.warning("worker %s is down: %s", node.name, exc)
                continue
            with self._lock:
                came_up = not node.is_up
                node.record_stats(stats, utc_now())
            if came_up:
                log.info("worker %s is up", node.name)
                if self._pending:
                    self.on_work()
