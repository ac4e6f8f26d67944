"""What the worker knows about containers, in Orca's terms: labels, statuses, events, errors.

Plain data, no `docker` import: the Docker adapter (worker/runtime.py and its helpers
worker/dockerlogs.py, worker/cleanup.py) fills these in; the worker and its upkeep read them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

TASK_LABEL = "orca.task_id"
WORKER_LABEL = "orca.worker"
SPEC_LABEL = "orca.spec"
RESTART_LABEL = "orca.restart_count"
ATTEMPT_LABEL = "orca.attempt"


class RuntimeFailure(Exception):
    """Docker could not do what was asked; the message says why (and names the image)."""


class EngineUnreachable(RuntimeFailure):
    """The Docker engine did not answer."""


class Closing(RuntimeFailure):
    """The runtime is closing: an operation under way (a pull) was abandoned; the task is
    left as it was."""


@dataclass(frozen=True)
class ContainerStatus:
    """What Docker says about a task's container, in Orca's terms."""

    container_id: str
    task_id: str | None
    running: bool
    exit_code: int | None = None
    oom_killed: bool = False
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    host_ports: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    name: str = ""
    created: bool = False  # created but never started (its worker died in between)

    def spec(self) -> dict[str, Any] | None:
        """The task spec stored in the container's label, or None if absent or unreadable."""
        try:
            spec = json.loads(self.labels.get(SPEC_LABEL, ""))
        except ValueError:
            return None
        return spec if isinstance(spec, dict) else None


@dataclass(frozen=True)
class ContainerEvent:
    """A container of ours changed: `action` is Docker's (die, oom, destroy, ...)."""

    task_id: str
    container_id: str
    action: str


def status_of(attrs: dict[str, Any]) -> ContainerStatus:
    """Translate `docker inspect` output into a ContainerStatus."""
    state = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    running = bool(state.get("Running")) or state.get("Status") == "restarting"
    return ContainerStatus(
        container_id=attrs["Id"],
        task_id=labels.get(TASK_LABEL),
        labels=dict(labels),
        name=str(attrs.get("Name", "")).lstrip("/"),
        running=running,
        created=state.get("Status") == "created",
        exit_code=None if running else state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or None,
        started_at=docker_time(state.get("StartedAt")),
        finished_at=None if running else docker_time(state.get("FinishedAt")),
        host_ports=_host_ports(attrs),
    )


def docker_time(value: str | None) -> str | None:
    """Docker's nanosecond timestamps as ISO 8601 UTC with milliseconds; None when unset."""
    if not value or value.startswith("0001-01-01"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    return f"{head}.{(frac + '000')[:3]}Z"


def now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _host_ports(attrs: dict[str, Any]) -> dict[str, int]:
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return {key: int(bindings[0]["HostPort"]) for key, bindings in ports.items() if bindings}


def explain(exc: Exception) -> str:
    """A one-line reason from a Docker SDK or requests error (an APIError's explanation
    when it has one)."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation)[:300]
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class RuntimeOptions:
    """How the Docker adapter pulls images and confines containers (README: Configuration).

    pull_timeout: seconds a pull may take (ORCA_PULL_TIMEOUT), queueing included.
    pull_threads: pulls at once; more wait their turn.
    pids_limit: the processes a container may hold unless its task says `pids` (ORCA_PIDS_LIMIT).
    log_max_size / log_max_files: json-file rotation of each container's output, so a task
    that writes without pause keeps at most max_size x max_files bytes on disk.
    """

    pull_timeout: float = 300.0
    pull_threads: int = 4
    pids_limit: int = 1024
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3
