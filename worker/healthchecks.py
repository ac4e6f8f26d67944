"""Health checks of running tasks: each task on its own schedule, probes run concurrently.

A task's check (task/health.py) names a URL path, the port, the interval between probes, the
time a probe may take, the failures in a row that restart the task, and a start period during
which failures do not count (until the first success: from then on the task has started).
Probes run in a pool of their own, so a task whose probe hangs until its timeout never delays
another task's check; a task is never probed twice at once. Counters belong to one container:
a restart starts them afresh, and a late result about an older container is dropped.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable

from common.pool import DaemonPool
from task import State, Task
from task.health import HealthCheck, health_check_of, probe_port

if TYPE_CHECKING:
    from worker.worker import Worker

log = logging.getLogger(__name__)

Probe = Callable[[str, float], "str | None"]  # (url, timeout) -> None when healthy, else the problem


class _Tracked:
    """What the checks know about one task's current container."""

    __slots__ = ("container_id", "since", "due", "misses", "in_flight", "started")

    def __init__(self, container_id: str, now: float) -> None:
        self.container_id = container_id
        self.since = now  # when this container was first seen running: its start period begins
        self.due = now
        self.misses = 0
        self.in_flight = False
        self.started = False  # a probe has succeeded: the start period is over


class HealthChecks:
    """Probes the health checks of a Worker's running tasks and restarts the unhealthy ones."""

    def __init__(self, worker: "Worker", probe: Probe, threads: int = 16) -> None:
        self._worker = worker
        self._probe = probe
        self._pool = DaemonPool(threads, f"probes-{worker.name}")
        self._lock = threading.Lock()
        self._tracked: dict[str, _Tracked] = {}

    def check_due(self) -> int:
        """Start a probe of every running task whose check is due and has no probe under way.
        Returns how many probes were started."""
        now = self._worker.clock()
        policy = self._worker.policy
        started, running = 0, set()
        for task in self._worker.db.list():
            check = health_check_of(task, policy.health_interval, policy.health_failures)
            port = probe_port(check, task.host_ports) if check else None
            if task.state is not State.RUNNING or not task.container_id or check is None or port is None:
                continue
            running.add(task.id)
            if self._claim(task, check, now):
                self._pool.submit(self._probe_one, task, check, f"http://127.0.0.1:{port}{check.path}")
                started += 1
        with self._lock:
            for task_id in set(self._tracked) - running:
                del self._tracked[task_id]
        return started

    def _claim(self, task: Task, check: HealthCheck, now: float) -> bool:
        """Mark the task's probe under way if it is due; False when not due or already running."""
        with self._lock:
            tracked = self._tracked.get(task.id)
            if tracked is None or tracked.container_id != task.container_id:
                tracked = self._tracked[task.id] = _Tracked(task.container_id or "", now)
            if tracked.in_flight or tracked.due > now:
                return False
            tracked.in_flight, tracked.due = True, now + check.interval
            return True

    def _probe_one(self, task: Task, check: HealthCheck, url: str) -> None:
        problem: str | None = "health check could not run"
        try:
            problem = self._probe(url, check.timeout)
        finally:
            restart = self._record(task, check, problem)
        self._report(task, problem is None)
        if restart:
            log.warning("task %s unhealthy %d time(s) in a row: %s", task.id, check.retries, problem)
            self._worker.request_restart(task.id, problem or "unhealthy", task.container_id)

    def _record(self, task: Task, check: HealthCheck, problem: str | None) -> bool:
        """Count the probe's result against the task's container; True when it must restart."""
        with self._lock:
            tracked = self._tracked.get(task.id)
            if tracked is None or tracked.container_id != task.container_id:
                return False  # the task moved on (a new container, or it ended) meanwhile
            tracked.in_flight = False
            if problem is None:
                tracked.misses, tracked.started = 0, True
                return False
            if not tracked.started and self._worker.clock() - tracked.since < check.start_period:
                return False  # still starting up: failures do not count yet
            tracked.misses += 1
            if tracked.misses < check.retries:
                return False
            tracked.misses = 0
            return True

    def _report(self, probed: Task, healthy: bool) -> None:
        """Put the probe's verdict in the task (a new version only when it changes), for the
        manager's services: a replica counts as updated only once it passes its health check."""
        if probed.healthy is healthy:
            return

        def change(task: Task) -> bool:
            same = (task.attempt, task.restart_count, task.state, task.container_id) == \
                (probed.attempt, probed.restart_count, State.RUNNING, probed.container_id)
            if not same or task.healthy is healthy:
                return False
            task.healthy = healthy
            return True
        self._worker.db.update(probed.id, change)

    def close(self) -> None:
        """Stop probing (probes under way are not waited for)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
