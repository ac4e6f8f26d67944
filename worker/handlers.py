"""What the worker does with its containers, in its pool threads: start, stop, observe an exit,
restart an unhealthy one, and record each container's end under the task's restart policy."""
from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING, Callable

from task import State, Task, TaskEvent, backoff_delay, utc_now
from task import lifecycle
from worker.containers import Closing, ContainerStatus, RuntimeFailure

if TYPE_CHECKING:
    from worker.taskdb import TaskDB
    from worker.worker import Policy, Runtime

log = logging.getLogger(__name__)


class ContainerHandlers:
    """The handlers of a Worker (a mixin): each runs under the task's lock, in a pool thread."""

    db: "TaskDB"
    runtime: "Runtime"
    policy: "Policy"
    _guard: threading.Lock
    _stopping: dict[str, str | None]
    _oom_waits: dict[str, tuple[str, float]]
    clock: Callable[[], float]
    on_container: Callable[[str], None]
    _lock_for: Callable[[str], threading.Lock]
    _enqueue_later: Callable[[TaskEvent, float], None]

    def _handle_start(self, event: TaskEvent) -> None:
        task_id = event.task.id
        try:
            with self._lock_for(task_id):
                self._start(task_id, event.task.attempt)
        except Exception:
            log.exception("task %s: handling a start failed", task_id)

    def _handle_stop(self, event: TaskEvent) -> None:
        """Stop the task. When its start holds the task (perhaps waiting out a pull), a task
        not started yet is cancelled at once without waiting: the start, when it returns,
        finds the task moved on and removes its container."""
        task_id = event.task.id
        try:
            lock = self._lock_for(task_id)
            if not lock.acquire(blocking=False):
                if self._cancel_unstarted(task_id):
                    return
                lock.acquire()
            try:
                self._stop(task_id)
            finally:
                lock.release()
        except Exception:
            log.exception("task %s: handling a stop failed", task_id)

    def _cancel_unstarted(self, task_id: str) -> bool:
        """End a scheduled task that has not started (completed, or failed with the worker's
        reason). Returns False when the task is not scheduled (already running, or ended)."""
        with self._guard:
            why = self._stopping.get(task_id)
        cancelled = False

        def cancel(task: Task) -> bool:
            nonlocal cancelled
            if task.state is not State.SCHEDULED:
                return False
            _cancel(task, why)
            cancelled = True
            return True
        self.db.update(task_id, cancel)
        if cancelled:
            with self._guard:
                self._stopping.pop(task_id, None)
            log.info("task %s stopped before it started (its start is under way)", task_id)
        return cancelled

    def _start(self, task_id: str, attempt: int) -> None:
        task = self.db.get(task_id)
        if task is None or task.state is not State.SCHEDULED or task.attempt != attempt:
            return
        if task.container_id:  # the previous container (an earlier restart or attempt)
            self._remove_quietly(task.container_id)
        try:
            status = self.runtime.start(task)
        except Closing as exc:  # the worker shuts down: the task is left scheduled, as it was
            log.info("task %s: %s", task_id, exc)
            return
        except RuntimeFailure as exc:
            log.warning("task %s failed to start: %s", task_id, exc)
            self._start_failed(task_id, attempt, str(exc))
            return
        updated = self.db.update(task_id, lambda t: _running(t, status, attempt))
        if updated is None or updated.container_id != status.container_id:
            self._remove_quietly(status.container_id)  # the task moved on (stopped or replaced) meanwhile
            return
        self.on_container("started")
        log.info("task %s running in container %s", task_id, status.container_id[:12])
        if not status.running:
            self._record_exit(task_id, status)
        elif task_id in self._stopping:  # a stop arrived while it was starting
            self._stop(task_id)

    def _start_failed(self, task_id: str, attempt: int, error: str) -> None:
        with self._guard:
            self._stopping.pop(task_id, None)

        def fail(task: Task) -> bool:
            if task.attempt != attempt or task.state is not State.SCHEDULED:
                return False
            lifecycle.fail(task, error)
            return True
        self.db.update(task_id, fail)
        self.on_container("start_failed")

    def _stop(self, task_id: str) -> None:
        task = self.db.get(task_id)
        if task is None:
            return
        if task.state.is_terminal:
            if task.container_id:
                self._remove_quietly(task.container_id)
            return
        if task.state is State.SCHEDULED:
            # Not started yet (or waiting out a restart backoff): it never starts.
            with self._guard:
                why = self._stopping.pop(task_id, None)
            self.db.update(task_id, lambda t: t.state is State.SCHEDULED and _cancel(t, why))
            if task.container_id:
                self._remove_quietly(task.container_id)
            log.info("task %s stopped before it started", task_id)
            return
        try:
            status = self.runtime.stop(task.container_id, self.policy.stop_timeout)
        except RuntimeFailure as exc:
            log.warning("task %s: stop failed, will retry: %s", task_id, exc)
            self._enqueue_later(TaskEvent(task=task, state=State.COMPLETED), 1.0)
            return
        self._record_exit(task_id, status)
        log.info("task %s stopped", task_id)

    def restart_unhealthy(self, task_id: str, problem: str, container_id: str | None = None) -> None:
        """Stop a running task's container as failed (`problem`), so its policy restarts it;
        with `container_id`, only while that container is still the task's."""
        try:
            with self._lock_for(task_id):
                task = self.db.get(task_id)
                if task is None or task.state is not State.RUNNING:
                    return
                if container_id is not None and task.container_id != container_id:
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
            if self._oom_may_follow(task, status):
                return  # the 'oom' event, or sync_states after the grace, observes it again
            self._record_exit(task_id, status)

    def _oom_may_follow(self, task: Task, status: ContainerStatus | None) -> bool:
        """True while a memory-limited container killed by SIGKILL (137), not by us and not
        yet marked OOMKilled, waits out `oom_grace`: containerd may deliver the OOM after the
        exit, and Docker marks OOMKilled only then (CI saw "exited with code 137" for an OOM)."""
        if (status is None or status.exit_code != 137 or status.oom_killed or not task.memory
                or task.id in self._stopping):
            return False
        seen = self._oom_waits.get(task.id)
        if seen is None or seen[0] != task.container_id:
            seen = self._oom_waits[task.id] = (task.container_id or "", self.clock())
        return self.clock() - seen[1] < self.policy.oom_grace

    def _record_exit(self, task_id: str, status: ContainerStatus | None, failure: str | None = None) -> None:
        """Record a container's end: completed, failed, or scheduled again under the restart policy."""
        with self._guard:
            stopping = task_id in self._stopping
            why = self._stopping.pop(task_id, None)
        self._oom_waits.pop(task_id, None)
        task = self.db.get(task_id)
        delay = backoff_delay(task.restart_count if task else 0, self.policy.restart_backoff,
                              self.policy.restart_backoff_cap, random.random())
        end = _exit_of(status)
        if stopping and why:  # the worker stops it itself: failed, no restart
            updated = self.db.update(task_id, lambda t: _stopped_by_worker(t, end, why))
        else:
            updated = self.db.update(task_id, lambda t: lifecycle.on_exit(t, end, stopping, failure, delay))
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

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self.runtime.remove(container_id)
        except RuntimeFailure as exc:
            log.warning("container %s: %s", container_id[:12], exc)


def _exit_of(status: ContainerStatus | None) -> lifecycle.Exit:
    if status is None:
        return lifecycle.Exit(gone=True)
    return lifecycle.Exit(exit_code=status.exit_code, oom_killed=status.oom_killed, error=status.error,
                          finished_at=status.finished_at)


def _running(task: Task, status: ContainerStatus, attempt: int) -> bool:
    if task.state is not State.SCHEDULED or task.attempt != attempt:
        return False
    lifecycle.check_transition(task.id, task.state, State.RUNNING)
    task.state = State.RUNNING
    task.container_id = status.container_id
    task.started_at = status.started_at or utc_now()
    task.finished_at, task.exit_code = None, None
    task.host_ports = dict(status.host_ports)
    return True


def _cancel(task: Task, why: str | None) -> None:
    if why:
        lifecycle.fail(task, why)
    else:
        lifecycle.cancel(task)


def _stopped_by_worker(task: Task, end: lifecycle.Exit, why: str) -> bool:
    """The worker stopped the task itself (cut off from the manager): failed, no restart."""
    if task.state is not State.RUNNING:
        return False
    task.exit_code = end.exit_code
    lifecycle.fail(task, why)
    return True
