"""The worker: a queue of task events, a task DB, and one-pass jobs over a container runtime."""
from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Protocol

from task import Conflict, NotFound, State, Task, TaskEvent, Unavailable, exit_outcome, utc_now
from worker.runtime import ContainerEvent, ContainerStatus, RuntimeFailure
from worker.taskdb import TaskDB

log = logging.getLogger(__name__)


class Runtime(Protocol):
    """What the worker needs from a container engine (DockerRuntime in production)."""

    def start(self, task: Task) -> ContainerStatus: ...
    def stop(self, container_id: str, timeout: int) -> ContainerStatus | None: ...
    def inspect(self, container_id: str) -> ContainerStatus | None: ...


class Worker:
    """Runs task events on a runtime and keeps each task's observed state.

    Events go into a deque; `run_pending()` hands them to a bounded pool so containers start
    concurrently. Operations on one task are serialised by a per-task lock. Exits are learnt
    from `on_container_event()` (Docker's event stream) and, as a safety net, `sync_states()`.
    """

    def __init__(self, name: str, runtime: Runtime, stop_timeout: int = 10, threads: int = 8) -> None:
        self.name = name
        self.runtime = runtime
        self.db = TaskDB()
        self.queue: deque[TaskEvent] = deque()
        self._stop_timeout = stop_timeout
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"worker-{name}")
        self._stopping: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._accepting = True
        self.on_work: Callable[[], None] = lambda: None

    # ----- intake (request threads)

    def submit(self, event: TaskEvent) -> tuple[Task, bool]:
        """Accept an event. Returns (task, created): created is False for a repeat.

        Raises:
            Unavailable: the worker is shutting down.
            NotFound: a stop for a task this worker does not have.
            Conflict: a run for a task that already finished here.
        """
        if not self._accepting:
            raise Unavailable(f"worker {self.name} is shutting down")
        if event.state is State.COMPLETED:
            return self.stop(event.task.id), False
        existing = self.db.get(event.task.id)
        if existing is not None:
            if existing.state.is_terminal:
                raise Conflict(f"task {existing.id} already {existing.state.value} on worker {self.name}")
            return existing, False
        task = event.task
        task.state, task.node = State.SCHEDULED, self.name
        task.created_at = task.created_at or utc_now()
        self.db.put(task)
        self._enqueue(event)
        log.info("task %s accepted (%s)", task.id, task.image)
        return task, True

    def stop(self, task_id: str) -> Task:
        """Ask for a task to be stopped; its container is stopped and removed, it ends completed."""
        task = self.db.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found on worker {self.name}")
        if task.state.is_terminal:
            return task
        with self._guard:
            self._stopping.add(task_id)
        self._enqueue(TaskEvent(task=task, state=State.COMPLETED))
        return task

    def _enqueue(self, event: TaskEvent) -> None:
        self.queue.append(event)
        self.on_work()

    # ----- one-pass jobs

    def run_pending(self) -> int:
        """Hand every queued event to the pool; return how many were handed over."""
        count = 0
        while self.queue:
            event = self.queue.popleft()
            self._pool.submit(self._handle, event)
            count += 1
        return count

    def sync_states(self) -> None:
        """Inspect every running task's container and record exits the event stream missed."""
        for task in self.db.list():
            if task.state is State.RUNNING and task.container_id:
                try:
                    self._observe(task.id)
                except RuntimeFailure as exc:
                    log.warning("task %s: cannot inspect its container: %s", task.id, exc)

    def on_container_event(self, event: ContainerEvent) -> None:
        """React to Docker's event stream: a container of ours died or vanished."""
        if event.action in ("die", "oom", "destroy"):
            self._pool.submit(self._observe_safely, event.task_id)

    # ----- handlers (pool threads)

    def _lock_for(self, task_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(task_id, threading.Lock())

    def _handle(self, event: TaskEvent) -> None:
        task_id = event.task.id
        try:
            with self._lock_for(task_id):
                if event.state is State.COMPLETED:
                    self._stop(task_id)
                else:
                    self._start(task_id)
        except Exception:
            log.exception("task %s: handling a %s event failed", task_id, event.state.value)

    def _start(self, task_id: str) -> None:
        task = self.db.get(task_id)
        if task is None or task.state is not State.SCHEDULED:
            return
        try:
            status = self.runtime.start(task)
        except RuntimeFailure as exc:
            log.warning("task %s failed to start: %s", task_id, exc)
            self.db.update(task_id, lambda t: _fail(t, str(exc)))
            return
        self.db.update(task_id, lambda t: _running(t, status))
        log.info("task %s running in container %s", task_id, status.container_id[:12])
        if not status.running:
            self._record_exit(task_id, status)

    def _stop(self, task_id: str) -> None:
        task = self.db.get(task_id)
        if task is None or task.state.is_terminal:
            return
        if task.container_id is None:  # its start failed or never ran: nothing to stop
            return
        try:
            status = self.runtime.stop(task.container_id, self._stop_timeout)
        except RuntimeFailure as exc:
            log.warning("task %s: stop failed, will retry: %s", task_id, exc)
            self.queue.append(TaskEvent(task=task, state=State.COMPLETED))
            return
        self._record_exit(task_id, status)
        log.info("task %s stopped", task_id)

    def _observe_safely(self, task_id: str) -> None:
        try:
            with self._lock_for(task_id):
                self._observe(task_id)
        except Exception:
            log.exception("task %s: observing its container failed", task_id)

    def _observe(self, task_id: str) -> None:
        task = self.db.get(task_id)
        if task is None or task.state is not State.RUNNING or not task.container_id:
            return
        status = self.runtime.inspect(task.container_id)
        if status is None or not status.running:
            self._record_exit(task_id, status)

    def _record_exit(self, task_id: str, status: ContainerStatus | None) -> None:
        stop_requested = task_id in self._stopping
        updated = self.db.update(task_id, lambda t: _exited(t, status, stop_requested))
        with self._guard:
            self._stopping.discard(task_id)
        if updated is not None and updated.state.is_terminal:
            log.info("task %s %s (exit code %s)", task_id, updated.state.value, updated.exit_code)

    # ----- queries and lifecycle

    def active_count(self) -> int:
        """Tasks that are scheduled or running here."""
        return self.db.count(lambda t: not t.state.is_terminal)

    def close_intake(self) -> None:
        """Refuse new events from now on."""
        self._accepting = False

    def close(self) -> None:
        """Finish in-flight container operations and stop the pool. Idempotent."""
        self._accepting = False
        self._pool.shutdown(wait=True, cancel_futures=True)


def _fail(task: Task, error: str) -> None:
    task.state, task.error, task.finished_at = State.FAILED, error, utc_now()


def _running(task: Task, status: ContainerStatus) -> bool:
    if task.state is not State.SCHEDULED:
        return False
    task.state = State.RUNNING
    task.container_id = status.container_id
    task.started_at = status.started_at or utc_now()
    task.host_ports = dict(status.host_ports)
    return True


def _exited(task: Task, status: ContainerStatus | None, stop_requested: bool) -> bool:
    if task.state is not State.RUNNING:
        return False
    if status is None:
        task.state, task.error = exit_outcome(None, False, stop_requested)
        task.error = None if stop_requested else "container disappeared"
        task.finished_at = utc_now()
        return True
    task.state, task.error = exit_outcome(status.exit_code, status.oom_killed, stop_requested)
    task.exit_code = status.exit_code
    if status.error and task.state is State.FAILED:
        task.error = f"{task.error}: {status.error}"
    task.finished_at = status.finished_at or utc_now()
    return True
