"""The worker: a queue of task events, a task DB, and one-pass jobs over a container runtime."""
from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from task import (
    Conflict, NotFound, State, Task, TaskEvent, Unavailable, ValidationError, backoff_delay,
    check_transition, exit_outcome, parse_task, should_restart, utc_now,
)
from worker.runtime import ContainerEvent, ContainerStatus, RuntimeFailure
from worker.taskdb import TaskDB

log = logging.getLogger(__name__)


class Runtime(Protocol):
    """What the worker needs from a container engine (DockerRuntime in production)."""

    def start(self, task: Task) -> ContainerStatus: ...
    def stop(self, container_id: str, timeout: int) -> ContainerStatus | None: ...
    def remove(self, container_id: str) -> None: ...
    def inspect(self, container_id: str) -> ContainerStatus | None: ...
    def containers(self) -> list[ContainerStatus]: ...


@dataclass(frozen=True)
class Policy:
    """How the worker treats exits, probes and finished containers."""

    stop_timeout: int = 10
    restart_backoff: float = 1.0
    restart_backoff_cap: float = 30.0
    health_failures: int = 3
    gc_after: float = 600.0


class Worker:
    """Runs task events on a runtime and keeps each task's observed state.

    Events go into a deque; `run_pending()` hands them to a bounded pool so containers start
    concurrently. Operations on one task are serialised by a per-task lock. Exits are learnt
    from `on_container_event()` (Docker's event stream) and, as a safety net, `sync_states()`.
    An exit is restarted under the task's restart policy after an exponential backoff.
    """

    def __init__(self, name: str, runtime: Runtime, policy: Policy = Policy(), threads: int = 8,
                 probe: Callable[[str], str | None] | None = None) -> None:
        self.name = name
        self.runtime = runtime
        self.policy = policy
        self.db = TaskDB()
        self.queue: deque[TaskEvent] = deque()
        self._probe = probe
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"worker-{name}")
        self._stopping: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._delayed: list[tuple[float, int, TaskEvent]] = []
        self._seq = itertools.count()
        self._health_misses: dict[str, int] = {}
        self._guard = threading.Lock()
        self._accepting = True
        self._engine: dict[str, Any] = {"reachable": None}  # not checked yet
        self.on_work: Callable[[], None] = lambda: None
        # Told of each container start ("started", "start_failed") and end ("completed", "failed",
        # "restarted": what became of its task), for metrics.
        self.on_container: Callable[[str], None] = lambda what: None

    # ----- intake (request threads)

    def submit(self, event: TaskEvent) -> tuple[Task, bool]:
        """Accept an event. Returns (task, created): created is False for a repeat.

        Raises:
            Unavailable: the worker is shutting down, or a new task while its engine is unreachable.
            NotFound: a stop for a task this worker does not have.
            Conflict: a run for a task that already finished here (same or older incarnation).
        """
        if not self._accepting:
            raise Unavailable(f"worker {self.name} is shutting down")
        if event.state is State.COMPLETED:
            return self.stop(event.task.id), False
        existing = self.db.get(event.task.id)
        if existing is not None:
            newer = event.task.restart_count > existing.restart_count
            if not existing.state.is_terminal:
                return existing, False
            if not newer:
                raise Conflict(f"task {existing.id} already {existing.state.value} on worker {self.name}")
        self._check_engine()
        task = event.task
        task.state, task.node = State.SCHEDULED, self.name
        task.created_at = task.created_at or utc_now()
        task.container_id = existing.container_id if existing else None
        self.db.put(task)
        self._enqueue(event)
        log.info("task %s accepted (%s)", task.id, task.image)
        return task, True

    def stop(self, task_id: str) -> Task:
        """Ask for a task to be stopped; its container is stopped and removed, it ends completed.
        For a task that already finished, only its container is removed."""
        task = self.db.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id[:64]} not found on worker {self.name}")
        if task.state.is_terminal:
            if task.container_id:
                self._enqueue(TaskEvent(task=task, state=State.COMPLETED))
            return task
        with self._guard:
            self._stopping.add(task_id)
        self._enqueue(TaskEvent(task=task, state=State.COMPLETED))
        return task

    def _enqueue(self, event: TaskEvent) -> None:
        self.queue.append(event)
        self.on_work()

    def _enqueue_later(self, event: TaskEvent, delay: float) -> None:
        with self._guard:
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), event))

    # ----- adoption (before serving)

    def adopt(self) -> int:
        """Rebuild the task DB from the containers that carry this worker's label.

        Docker is the source of truth after a restart: each task's newest container is
        adopted (older incarnations are removed), and exits that happened while the worker
        was away are recorded by the next sync_states(). Returns the number of tasks adopted.
        """
        newest: dict[str, ContainerStatus] = {}
        for status in self.runtime.containers():
            current = newest.get(status.task_id or "")
            if status.task_id and (current is None or _incarnation(status) > _incarnation(current)):
                if current is not None:
                    self._remove_quietly(current.container_id)
                newest[status.task_id] = status
            else:
                self._remove_quietly(status.container_id)
        for status in newest.values():
            self._adopt_one(status)
        return len(newest)

    def _adopt_one(self, status: ContainerStatus) -> None:
        try:
            task = parse_task(status.spec() or {})
        except ValidationError as exc:
            log.warning("container %s has an unreadable spec (%s): left alone", status.container_id[:12], exc)
            return
        task.restart_count = _incarnation(status)
        task.node, task.created_at = self.name, utc_now()
        if status.created:  # the worker died between create and start: start it now
            task.state = State.SCHEDULED
            self.db.put(task)
            self._enqueue(TaskEvent(task=task))
            log.info("task %s adopted from container %s, which never started: starting it",
                     task.id, status.container_id[:12])
            return
        task.state, task.container_id = State.RUNNING, status.container_id
        task.started_at, task.host_ports = status.started_at, dict(status.host_ports)
        self.db.put(task)
        log.info("task %s adopted from container %s", task.id, status.container_id[:12])

    # ----- one-pass jobs

    def run_pending(self) -> int:
        """Hand every queued (and every due delayed) event to the pool; return how many."""
        now = time.monotonic()
        with self._guard:
            while self._delayed and self._delayed[0][0] <= now:
                self.queue.append(heapq.heappop(self._delayed)[2])
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
                lock = self._lock_for(task.id)
                if not lock.acquire(blocking=False):
                    continue  # a start, stop or restart of this task is under way: it records the outcome
                try:
                    self._observe(task.id)
                except RuntimeFailure as exc:
                    log.warning("task %s: cannot inspect its container: %s", task.id, exc)
                finally:
                    lock.release()

    def on_container_event(self, event: ContainerEvent) -> None:
        """React to Docker's event stream: a container of ours died or vanished."""
        if event.action in ("die", "oom", "destroy"):
            self._pool.submit(self._observe_safely, event.task_id)

    def check_health(self) -> None:
        """Probe every running task that has a health check; restart those that keep failing."""
        if self._probe is None:
            return
        for task in self.db.list():
            url = _health_url(task)
            if task.state is not State.RUNNING or url is None:
                continue
            problem = self._probe(url)
            misses = 0 if problem is None else self._health_misses.get(task.id, 0) + 1
            self._health_misses[task.id] = misses
            if misses >= self.policy.health_failures:
                log.warning("task %s unhealthy %d times: %s", task.id, misses, problem)
                self._health_misses.pop(task.id, None)
                self._pool.submit(self._restart_unhealthy, task.id, problem or "unhealthy")

    def collect_garbage(self, now: float | None = None) -> int:
        """Remove the containers of tasks finished more than gc_after seconds ago, and
        containers of ours no task owns any more (unknown tasks, older incarnations) that
        are not running. Returns how many were removed."""
        now = time.time() if now is None else now
        tasks = {task.id: task for task in self.db.list()}
        removed = 0
        for status in self.runtime.containers():
            why = self._garbage_reason(status, tasks.get(status.task_id or ""), now)
            if why:
                self._remove_quietly(status.container_id)
                removed += 1
                log.info("container %s collected (%s)", status.container_id[:12], why)
        return removed

    def _garbage_reason(self, status: ContainerStatus, task: Task | None, now: float) -> str | None:
        if status.running:
            return None
        if task is None:
            return "no task"
        if status.container_id == task.container_id:
            finished = task.state.is_terminal and _age(task.finished_at, now) > self.policy.gc_after
            return "finished" if finished else None
        # Another container of the task: collect it only if it is an older incarnation (a
        # container being created or adopted for the current one is not garbage).
        return "older incarnation" if _incarnation(status) < task.restart_count else None

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
        if task.container_id:  # the previous incarnation's container
            self._remove_quietly(task.container_id)
        try:
            status = self.runtime.start(task)
        except RuntimeFailure as exc:
            log.warning("task %s failed to start: %s", task_id, exc)
            with self._guard:
                self._stopping.discard(task_id)
            self.db.update(task_id, lambda t: _finish(t, State.FAILED, str(exc)))
            self.on_container("start_failed")
            return
        self.db.update(task_id, lambda t: _running(t, status))
        self.on_container("started")
        log.info("task %s running in container %s", task_id, status.container_id[:12])
        if not status.running:
            self._record_exit(task_id, status)
        elif task_id in self._stopping:  # a stop arrived while it was starting
            self._stop(task_id)

    def _stop(self, task_id: str) -> None:
        task = self.db.get(task_id)
        if task is None:
            return
        if task.state.is_terminal:
            if task.container_id:
                self._remove_quietly(task.container_id)
            return
        if task.state is State.SCHEDULED:
            # Not started yet (or waiting out a restart backoff): start it now, and _start
            # stops it at once, so the task goes scheduled -> running -> completed as the
            # transition table requires.
            self._enqueue(TaskEvent(task=task))
            return
        try:
            status = self.runtime.stop(task.container_id, self.policy.stop_timeout)
        except RuntimeFailure as exc:
            log.warning("task %s: stop failed, will retry: %s", task_id, exc)
            self._enqueue_later(TaskEvent(task=task, state=State.COMPLETED), 1.0)
            return
        self._record_exit(task_id, status)
        log.info("task %s stopped", task_id)

    def _restart_unhealthy(self, task_id: str, problem: str) -> None:
        try:
            with self._lock_for(task_id):
                task = self.db.get(task_id)
                if task is None or task.state is not State.RUNNING:
                    return
                status = self.runtime.stop(task.container_id, self.policy.stop_timeout)
                self._record_exit(task_id, status, failure=problem)
        except Exception:
            log.exception("task %s: restarting an unhealthy container failed", task_id)

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

    def _record_exit(self, task_id: str, status: ContainerStatus | None, failure: str | None = None) -> None:
        """Record a container's end: completed, failed, or scheduled again under the restart policy."""
        with self._guard:
            stop_requested = task_id in self._stopping
            self._stopping.discard(task_id)
        delay = backoff_delay(self._restart_count(task_id), self.policy.restart_backoff,
                              self.policy.restart_backoff_cap, random.random())
        updated = self.db.update(task_id, lambda t: _exited(t, status, stop_requested, failure, delay))
        if updated is None:
            return
        if updated.state is State.SCHEDULED:
            log.info("task %s exited (%s): restart %d of %d in %.1f s", task_id, updated.exit_code,
                     updated.restart_count, updated.max_restarts, delay)
            self._enqueue_later(TaskEvent(task=updated), delay)
            self.on_container("restarted")
        elif updated.state.is_terminal:
            log.info("task %s %s (exit code %s)", task_id, updated.state.value, updated.exit_code)
            self.on_container(updated.state.value)

    def _restart_count(self, task_id: str) -> int:
        task = self.db.get(task_id)
        return task.restart_count if task else 0

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self.runtime.remove(container_id)
        except RuntimeFailure as exc:
            log.warning("container %s: %s", container_id[:12], exc)

    # ----- queries and lifecycle

    def active_count(self) -> int:
        """Tasks that are scheduled or running here."""
        return self.db.count(lambda t: not t.state.is_terminal)

    @property
    def accepting(self) -> bool:
        """False once the worker is shutting down."""
        return self._accepting

    @property
    def engine(self) -> dict[str, Any]:
        """The latest engine check: {"reachable": True, "version", "api_version"},
        {"reachable": False, "error"}, or {"reachable": None} before the first check."""
        return dict(self._engine)

    def record_engine(self, status: dict[str, Any]) -> None:
        """Remember an engine check; while the engine is unreachable, new tasks are refused."""
        was = self._engine.get("reachable")
        self._engine = {**status, "checked_at": utc_now()}
        if status.get("reachable") is False and was is not False:
            log.warning("worker %s takes no new tasks: %s", self.name, status.get("error"))
        elif status.get("reachable") and was is False:
            log.info("worker %s: docker engine reachable again (%s)", self.name, status.get("version"))

    def _check_engine(self) -> None:
        engine = self._engine
        if engine.get("reachable") is False:
            reason = engine.get("error") or "docker engine unreachable"
            raise Unavailable(f"{reason} (worker {self.name} takes no new tasks)")

    def close_intake(self) -> None:
        """Refuse new events from now on, and release long-polling readers."""
        self._accepting = False
        self.db.close()

    def close(self) -> None:
        """Finish in-flight container operations and stop the pool. Idempotent."""
        self._accepting = False
        self._pool.shutdown(wait=True, cancel_futures=True)


def _incarnation(status: ContainerStatus) -> int:
    try:
        return int(status.labels.get("orca.restart_count", "0"))
    except ValueError:
        return 0


def _health_url(task: Task) -> str | None:
    if not task.health_check:
        return None
    port = next((p for key, p in task.host_ports.items() if key.endswith("/tcp")), None)
    return f"http://127.0.0.1:{port}{task.health_check}" if port else None


def _age(timestamp: str | None, now: float) -> float:
    if not timestamp:
        return 0.0
    try:
        return now - datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
    except ValueError:
        return 0.0


def _finish(task: Task, state: State, error: str | None) -> None:
    check_transition(task.id, task.state, state)
    task.state, task.error, task.finished_at = state, error, utc_now()


def _running(task: Task, status: ContainerStatus) -> bool:
    if task.state is not State.SCHEDULED:
        return False
    task.state = State.RUNNING
    task.container_id = status.container_id
    task.started_at = status.started_at or utc_now()
    task.finished_at, task.exit_code = None, None
    task.host_ports = dict(status.host_ports)
    return True


def _exited(task: Task, status: ContainerStatus | None, stop_requested: bool, failure: str | None,
            delay: float) -> bool:
    """Apply a container's end to the task (under the DB lock); False if it was not running."""
    if task.state is not State.RUNNING:
        return False
    exit_code = status.exit_code if status else None
    outcome, error = exit_outcome(exit_code, bool(status and status.oom_killed), stop_requested)
    if status is None and not stop_requested:
        outcome, error = State.FAILED, "container disappeared"
    if failure and not stop_requested:
        outcome, error = State.FAILED, failure
    if status and status.error and outcome is State.FAILED:
        error = f"{error}: {status.error}"
    task.exit_code = exit_code
    task.finished_at = (status.finished_at if status else None) or utc_now()
    if not stop_requested and should_restart(task.restart_policy, outcome, task.restart_count, task.max_restarts):
        if outcome is State.FAILED:
            check_transition(task.id, task.state, State.FAILED)
            task.state = State.FAILED
        check_transition(task.id, task.state, State.SCHEDULED)
        task.restart_count += 1
        what = error or f"exited with code {exit_code}"
        task.state, task.error = State.SCHEDULED, f"{what}; restart {task.restart_count} of {task.max_restarts} in {delay:.1f}s"
        return True
    if outcome is State.FAILED and task.restart_policy != "no" and task.restart_count >= task.max_restarts > 0:
        error = f"{error}; gave up after {task.restart_count} restarts"
    task.state, task.error = outcome, error
    return True
