"""The worker's upkeep around its tasks: adopting containers after a restart, health checks,
garbage collection, and stopping tasks that must not outlive a lost manager."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Callable

from task import State, Task, ValidationError, parse_task, utc_now
from worker.containers import ContainerStatus, RuntimeFailure
from worker.healthchecks import HealthChecks, Probe
from worker.worker import Worker

log = logging.getLogger(__name__)


class Upkeep:
    """One-pass jobs over a Worker's tasks and containers (the service schedules them)."""

    def __init__(self, worker: Worker, probe: Probe | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.worker = worker
        self._health = HealthChecks(worker, probe) if probe is not None else None
        self._wall_clock = wall_clock

    # ----- adoption (before serving)

    def adopt(self) -> int:
        """Rebuild the task DB from the containers that carry this worker's label, then let the
        worker serve task requests (until then they answer 503, and no GC runs).

        Docker is the source of truth after a restart: each task's newest container is adopted
        (older ones are removed), exits that happened while the worker was away are recorded
        by the next sync_states(). A container that was created but never started is removed:
        the manager sends its attempt again if the task should still run. Returns the number
        of tasks adopted. Raises RuntimeFailure when the engine does not answer.
        """
        newest: dict[str, ContainerStatus] = {}
        for status in self.worker.runtime.containers():
            current = newest.get(status.task_id or "")
            if status.task_id and (current is None or _incarnation(status) > _incarnation(current)):
                if current is not None:
                    self._remove(current.container_id)
                newest[status.task_id] = status
            else:
                self._remove(status.container_id)
        adopted = sum(self._adopt_one(status) for status in newest.values())
        self.worker.ready = True
        return adopted

    def _adopt_one(self, status: ContainerStatus) -> bool:
        if status.created:  # the worker died between create and start
            log.info("container %s never started: removed (its attempt is sent again)", status.container_id[:12])
            self._remove(status.container_id)
            return False
        try:
            # restart_count sat in the spec label of containers made by Orca before attempts
            task = parse_task({k: v for k, v in (status.spec() or {}).items() if k != "restart_count"})
        except ValidationError as exc:
            log.warning("container %s has an unreadable spec (%s): left alone", status.container_id[:12], exc)
            return False
        task.attempt, task.restart_count = _incarnation(status)
        task.node, task.created_at = self.worker.name, utc_now()
        task.state, task.container_id = State.RUNNING, status.container_id
        task.started_at, task.host_ports = status.started_at, dict(status.host_ports)
        self.worker.db.put(task)
        log.info("task %s attempt %d adopted from container %s", task.id, task.attempt, status.container_id[:12])
        return True

    # ----- health checks

    def check_health(self) -> None:
        """Start the probes that are due (see HealthChecks); restarts happen as results come."""
        if self._health is not None:
            self._health.check_due()

    def close(self) -> None:
        """Stop probing health checks (probes under way are not waited for)."""
        if self._health is not None:
            self._health.close()

    # ----- a lost manager

    def stop_disconnected(self) -> int:
        """Stop the running tasks whose stop_after_disconnect has passed since the manager last
        reached this worker (they end failed, saying why). Returns how many were stopped."""
        silent = self.worker.clock() - self.worker.last_contact
        stopped = 0
        for task in self.worker.db.list():
            limit = task.stop_after_disconnect
            if limit is None or task.state.is_terminal or silent <= limit:
                continue
            why = f"stopped by worker {self.worker.name}: no word from the manager for {silent:.0f} s"
            log.warning("task %s: %s", task.id, why)
            self.worker.stop(task.id, task.attempt, why=why)
            stopped += 1
        return stopped

    # ----- garbage collection

    def collect_garbage(self, now: float | None = None) -> int:
        """Remove the containers of tasks finished more than gc_after seconds ago, and
        containers of ours no task owns any more (unknown tasks, older incarnations) that are
        not running. Never before adoption. Returns how many were removed."""
        if not self.worker.ready:
            return 0
        now = self._wall_clock() if now is None else now
        tasks = {task.id: task for task in self.worker.db.list()}
        removed = 0
        for status in self.worker.runtime.containers():
            why = self._garbage_reason(status, tasks.get(status.task_id or ""), now)
            if why:
                self._remove(status.container_id)
                removed += 1
                log.info("container %s collected (%s)", status.container_id[:12], why)
        return removed

    def _garbage_reason(self, status: ContainerStatus, task: Task | None, now: float) -> str | None:
        if status.running:
            return None
        if task is None:
            return "no task"
        if status.container_id == task.container_id:
            finished = task.state.is_terminal and _age(task.finished_at, now) > self.worker.policy.gc_after
            return "finished" if finished else None
        # Another container of the task: collect it only if it is older than the current one
        # (a container being created for the current incarnation is not garbage).
        older = _incarnation(status) < (task.attempt, task.restart_count)
        return "older incarnation" if older else None

    def _remove(self, container_id: str) -> None:
        try:
            self.worker.runtime.remove(container_id)
        except RuntimeFailure as exc:
            log.warning("container %s: %s", container_id[:12], exc)


def _incarnation(status: ContainerStatus) -> tuple[int, int]:
    """(attempt, restart count) from a container's labels; (0, 0) when unreadable."""
    try:
        return int(status.labels.get("orca.attempt", "0")), int(status.labels.get("orca.restart_count", "0"))
    except ValueError:
        return 0, 0


def _age(timestamp: str | None, now: float) -> float:
    if not timestamp:
        return 0.0
    try:
        return now - datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
    except ValueError:
        return 0.0
