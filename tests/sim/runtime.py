"""A fake container engine per worker host: containers outlive the worker process, exit when
told, and the whole engine can be down (every call raises EngineUnreachable)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from task import Task
from worker.runtime import (ATTEMPT_LABEL, RESTART_LABEL, SPEC_LABEL, TASK_LABEL, WORKER_LABEL,
                            ContainerStatus, EngineUnreachable, RuntimeFailure)

STARTED_AT = "2024-01-01T00:00:01.000Z"
FINISHED_AT = "2024-01-01T00:00:09.000Z"


@dataclass
class FakeRuntime:
    """The worker's Runtime protocol over a dict of ContainerStatus, with faults.

    Like DockerRuntime: one container per incarnation name (a second start of the same
    incarnation returns the first container), stop() stops and removes, containers() lists
    this worker's labelled containers."""

    worker_name: str
    containers_by_id: dict[str, ContainerStatus] = field(default_factory=dict)
    down: bool = False  # engine outage: every call raises EngineUnreachable
    fail_next_start: bool = False  # the next start() raises RuntimeFailure (e.g. image pull failed)
    counter: int = 0
    starts: int = 0

    def _check(self) -> None:
        if self.down:
            raise EngineUnreachable(f"docker engine of {self.worker_name} unreachable")

    def _name(self, task: Task) -> str:
        return f"orca-{task.id}-{task.attempt}.{task.restart_count}-{self.worker_name}"

    def start(self, task: Task) -> ContainerStatus:
        """Create and start the task's container, or return the one this incarnation has."""
        self._check()
        if self.fail_next_start:
            self.fail_next_start = False
            raise RuntimeFailure(f"image {task.image!r} is not available")
        name = self._name(task)
        for status in self.containers_by_id.values():
            if status.name == name:
                return status
        self.counter += 1
        self.starts += 1
        labels = {TASK_LABEL: task.id, WORKER_LABEL: self.worker_name, RESTART_LABEL: str(task.restart_count),
                  ATTEMPT_LABEL: str(task.attempt), SPEC_LABEL: json.dumps(task.spec_dict(), separators=(",", ":"))}
        status = ContainerStatus(container_id=f"{self.worker_name}-c{self.counter}", task_id=task.id, running=True,
                                 started_at=STARTED_AT, labels=labels, name=name)
        self.containers_by_id[status.container_id] = status
        return status

    def stop(self, container_id: str, timeout: int) -> ContainerStatus | None:
        """Stop and remove; the final status (exit 137 if it was running), None if gone."""
        self._check()
        status = self.containers_by_id.pop(container_id, None)
        if status is None:
            return None
        if status.running:
            status = replace(status, running=False, exit_code=137, finished_at=FINISHED_AT)
        return status

    def remove(self, container_id: str) -> None:
        """Remove, running or not; a missing container is not an error."""
        self._check()
        self.containers_by_id.pop(container_id, None)

    def inspect(self, container_id: str) -> ContainerStatus | None:
        """The container's status, None if it no longer exists."""
        self._check()
        return self.containers_by_id.get(container_id)

    def containers(self) -> list[ContainerStatus]:
        """Every container of this worker, running or not."""
        self._check()
        return list(self.containers_by_id.values())

    def running_ids(self) -> set[str]:
        """Ids of this worker's running containers."""
        self._check()
        return {container_id for container_id, status in self.containers_by_id.items() if status.running}

    def engine_status(self) -> dict:
        """What the worker service records as its engine state."""
        if self.down:
            return {"reachable": False, "error": "docker engine unreachable"}
        return {"reachable": True, "version": "sim", "api_version": "1.0"}

    # ----- faults and inspection (the simulation's, not the worker's)

    def exit(self, container_id: str, exit_code: int) -> None:
        """The container's process ends by itself."""
        status = self.containers_by_id[container_id]
        self.containers_by_id[container_id] = replace(status, running=False, exit_code=exit_code,
                                                      finished_at=FINISHED_AT)

    def running(self) -> list[ContainerStatus]:
        """The running containers."""
        return [s for s in self.containers_by_id.values() if s.running]
