"""The worker: a queue of task events, a task DB, and one-pass jobs over a container runtime."""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from common.pool import DaemonPool
from task import NotFound, State, Task, TaskEvent, Unavailable, utc_now
from worker.containers import ContainerEvent, ContainerStatus, RuntimeFailure
from worker.engine import EngineState
from worker.handlers import ContainerHandlers
from worker.taskdb import TaskDB

log = logging.getLogger(__name__)


class Runtime(Protocol):
    """What the worker needs from a container engine (DockerRuntime in production)."""

    def start(self, task: Task) -> ContainerStatus: ...
    def stop(self, container_id: str, timeout: int) -> ContainerStatus | None: ...
    def remove(self, container_id: str) -> None: ...
    def inspect(self, container_id: str) -> ContainerStatus | None: ...
    def containers(self) -> list[ContainerStatus]: ...
    def running_ids(self) -> set[str]: ...


class Executor(Protocol):
    """Where handlers run: a thread pool in production, a step queue in the simulation."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any: ...
    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None: ...


@dataclass(frozen=True)
class Policy:
    """How the worker treats exits, probes and finished containers."""

    stop_timeout: int = 10
    restart_backoff: float = 1.0
    restart_backoff_cap: float = 30.0
    health_interval: float = 5.0
    health_failures: int = 3
    gc_after: float = 600.0
    oom_grace: float = 1.0  # seconds a SIGKILLed memory-limited container waits for Docker's late 'oom'


class Worker(ContainerHandlers):
    """Runs task events on a runtime and keeps each task's observed state.

    Events go into a deque; `run_pending()` hands them to a bounded pool so containers start
    concurrently. Operations on one task are serialised by a per-task lock. Each task holds
    one attempt at a time (the manager numbers them): an event for an older attempt is
    ignored, a newer attempt replaces the old one's container. Exits are learnt from
    `on_container_event()` (Docker's event stream) and, as a safety net, `sync_states()`,
    and restarted under the task's policy after an exponential backoff, inside the attempt.
    """

    def __init__(self, name: str, runtime: Runtime, policy: Policy = Policy(), threads: int = 8,
                 executor: Executor | None = None, clock: Callable[[], float] = time.monotonic,
                 first_version: int | None = None, control_threads: int = 4) -> None:
        self.name = name
        self.runtime = runtime
        self.policy = policy
        self.clock = clock
        self.db = TaskDB(first_version)
        self.queue: deque[TaskEvent] = deque()
        # Starts (which may wait out a pull) and everything else (stops, exits, health
        # restarts) have pools of their own: a stop never waits behind a start.
        self._pool: Executor = executor or DaemonPool(threads, f"start-{name}")
        self._control: Executor = executor or DaemonPool(control_threads, f"control-{name}")
        self._stopping: dict[str, str | None] = {}  # task id -> why (None: a stop from the manager)
        self._locks: dict[str, threading.Lock] = {}
        self._oom_waits: dict[str, tuple[str, float]] = {}  # task id -> (container, when its exit was first seen)
        self._delayed: list[tuple[float, int, TaskEvent]] = []
        self._seq = itertools.count()
        self._guard = threading.Lock()
        self._accepting = True
        self.ready = False  # set once adoption is done: until then task requests answer 503
        self.last_contact = clock()  # when the manager last reached us
        self.engine_state = EngineState(name)
        self.on_work: Callable[[], None] = lambda: None
        # Told of each container start ("started", "start_failed") and end ("completed", "failed",
        # "restarted": what became of its task), for metrics.
        self.on_container: Callable[[str], None] = lambda what: None

    # ----- intake (request threads)

    def heard_from_manager(self) -> None:
        """Note that the manager reached us (its polls and commands), for stop_after_disconnect."""
        self.last_contact = self.clock()

    def submit(self, event: TaskEvent) -> tuple[Task, bool]:
        """Accept an event for `event.task.attempt`. Returns (our copy, created): created is
        False when nothing new was started (a repeat, an older or finished attempt).

        Raises:
            Unavailable: shutting down, not ready, or a new attempt while the engine is unreachable.
            NotFound: a stop without an attempt for a task this worker does not have.
        """
        self.check_ready()
        if event.state is State.COMPLETED:
            return self.stop(event.task.id, event.task.attempt), False
        created = False

        def decide(existing: Task | None) -> Task | None:
            nonlocal created
            if existing is not None and event.task.attempt <= existing.attempt:
                return None  # a repeat or an older attempt: answer with what we have
            self.engine_state.require_reachable()
            task = event.task
            task.state, task.node = State.SCHEDULED, self.name
            task.created_at = task.created_at or utc_now()
            task.container_id = existing.container_id if existing else None  # removed by _start
            created = True
            return task

        task = self.db.upsert(event.task.id, decide)
        if created:
            self._enqueue(TaskEvent(task=task))
            log.info("task %s attempt %d accepted (%s)", task.id, task.attempt, task.image)
        return task, created

    def stop(self, task_id: str, attempt: int | None = None, why: str | None = None) -> Task:
        """Stop a task: its container is stopped and removed, and it ends completed (or failed
        with `why`). A stop for an older attempt than ours is ignored. A stop for an attempt we
        never got (a task we do not know, or a newer attempt than ours) leaves a completed
        record of that attempt, so a run for it that arrives later is not started, and removes
        the container of any older attempt we held.

        Raises:
            NotFound: an unknown task and no attempt.
        """
        def decide(existing: Task | None) -> Task | None:
            if attempt is None or (existing is not None and attempt <= existing.attempt):
                return None
            # An attempt we never got: record it ended, so it never starts here; the older
            # copy we hold goes with it (its container is removed below).
            ended = Task(id=task_id, state=State.COMPLETED, node=self.name, attempt=attempt)
            ended.created_at = ended.finished_at = utc_now()
            ended.container_id = existing.container_id if existing else None
            return ended

        task = self.db.upsert(task_id, decide)
        if task is None:
            raise NotFound(f"task {task_id[:64]} not found on worker {self.name}")
        if attempt is not None and attempt < task.attempt:
            return task
        if task.state.is_terminal:
            if task.container_id:
                self._enqueue(TaskEvent(task=task, state=State.COMPLETED))
            return task
        with self._guard:
            self._stopping.setdefault(task_id, why)
        self._enqueue(TaskEvent(task=task, state=State.COMPLETED))
        return task

    def check_ready(self) -> None:
        """Raise Unavailable (saying why) while the worker shuts down or has not adopted its
        containers yet: until then it cannot tell which tasks run here."""
        if not self._accepting:
            raise Unavailable(f"worker {self.name} is shutting down")
        if not self.ready:
            why = self.engine_state.unreachable_reason()
            raise Unavailable(f"{why or 'it has not adopted its containers yet'} "
                              f"(worker {self.name} is not ready)")

    def _enqueue(self, event: TaskEvent) -> None:
        self.queue.append(event)
        self.on_work()

    def _enqueue_later(self, event: TaskEvent, delay: float) -> None:
        with self._guard:
            heapq.heappush(self._delayed, (self.clock() + delay, next(self._seq), event))

    # ----- one-pass jobs

    def run_pending(self) -> int:
        """Hand every queued (and every due delayed) event to the pool; return how many."""
        now = self.clock()
        with self._guard:
            while self._delayed and self._delayed[0][0] <= now:
                self.queue.append(heapq.heappop(self._delayed)[2])
        count = 0
        while self.queue:
            event = self.queue.popleft()
            if event.state is State.COMPLETED:
                self._control.submit(self._handle_stop, event)
            else:
                self._pool.submit(self._handle_start, event)
            count += 1
        return count

    def sync_states(self) -> None:
        """Record exits the event stream missed. One listing of the running containers, then
        an inspect only of the running tasks' containers missing from it: N inspects every
        pass would compete with starts for the engine (see bench/burst.py)."""
        running = [task for task in self.db.list() if task.state is State.RUNNING and task.container_id]
        if not running:
            return
        try:
            alive = self.runtime.running_ids()  # listed after the tasks: a container missing has ended
        except RuntimeFailure as exc:
            log.warning("cannot list running containers: %s", exc)
            return
        for task in (task for task in running if task.container_id not in alive):
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
            self._submit_control(self._observe_safely, event.task_id)

    def request_restart(self, task_id: str, problem: str, container_id: str | None = None) -> None:
        """Restart a running task's container (only `container_id`, when given) as failed
        (`problem`), in the control pool."""
        self._submit_control(self.restart_unhealthy, task_id, problem, container_id)

    def _submit_control(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._control.submit(fn, *args)
        except RuntimeError:  # shut down: the worker is going away
            log.debug("worker %s is shutting down: %s not run", self.name, getattr(fn, "__name__", fn))

    def forget(self, task_id: str) -> None:
        """Drop what the worker keeps about a purged task besides its record (its lock, unless
        an operation holds it, and a stop's reason)."""
        with self._guard:
            lock = self._locks.get(task_id)
            if lock is not None and not lock.locked():
                del self._locks[task_id]
            self._stopping.pop(task_id, None)
        self._oom_waits.pop(task_id, None)

    def _lock_for(self, task_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(task_id, threading.Lock())

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
        """The latest engine check (see EngineState.snapshot)."""
        return self.engine_state.snapshot()

    def record_engine(self, status: dict[str, Any]) -> None:
        """Remember an engine check; while the engine is unreachable, new tasks are refused."""
        self.engine_state.record(status)

    def close_intake(self) -> None:
        """Refuse new events from now on, and release long-polling readers."""
        self._accepting = False
        self.db.close()

    def close(self) -> None:
        """Finish in-flight container operations and stop the pool. Idempotent."""
        self._accepting = False
        for pool in (self._pool, self._control):
            pool.shutdown(wait=True, cancel_futures=True)
