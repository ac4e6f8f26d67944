"""Task and TaskEvent: plain dataclasses with an explicit JSON round trip."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from task.state import State

# The user-settable part of a task: what the manager forwards to a worker.
SPEC_FIELDS = ("id", "name", "image", "command", "env", "cpu", "memory", "disk", "ports",
               "restart_policy", "max_restarts", "health_check", "stop_after_disconnect", "constraints",
               "pids")

# Placement constraints: {"label": ..., "op": one of these, "value": str (== !=) or list of str (in not_in)}.
CONSTRAINT_OPS = ("==", "!=", "in", "not_in")

# The user's intent for a task, apart from its observed `state`.
DESIRED_RUNNING = "running"
DESIRED_STOPPED = "stopped"

RESTART_POLICIES = ("no", "on-failure", "always")
DEFAULT_MAX_RESTARTS = 3


def new_id() -> str:
    """Return a fresh random UUID as a string."""
    return str(uuid.uuid4())


def utc_now() -> str:
    """Return the current time as ISO 8601 UTC with a trailing Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_seconds(text: str | None) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (utc_now's end in Z); None if absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
    except ValueError:
        return None


@dataclass
class Task:
    """A container to run: its spec (what the user asked for) and its observed status."""

    id: str = field(default_factory=new_id)
    name: str = ""
    state: State = State.PENDING
    image: str = ""
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cpu: float = 0.0
    memory: int = 0
    disk: int = 0
    ports: dict[str, int | None] = field(default_factory=dict)
    restart_policy: str = "on-failure"
    max_restarts: int = DEFAULT_MAX_RESTARTS
    health_check: str | dict[str, Any] | None = None  # a URL path, or an object (task/health.py)
    stop_after_disconnect: float | None = None  # seconds cut off from the manager before the worker stops it
    constraints: list[dict[str, Any]] = field(default_factory=list)  # node labels the task needs (scheduler)
    service: str | None = None  # the service this task is a replica of; set by the services reconciler only
    pending_reason: str | None = None  # why no node can take it yet (the scheduler's words); None once placed
    pids: int = 0  # processes the container may hold; 0: the worker's ORCA_PIDS_LIMIT
    desired_state: str = DESIRED_RUNNING
    attempt: int = 0  # the placement this state belongs to: 0 before the first, +1 at each placement
    version: int = 0  # the version of the worker report last applied (manager) or of the last change (worker)
    host_ports: dict[str, int] = field(default_factory=dict)
    node: str | None = None
    container_id: str | None = None
    exit_code: int | None = None
    error: str | None = None
    restart_count: int = 0
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    service_version: int | None = None  # the version of the service's spec this replica runs (services only)
    # Observed: the last health probe passed (True) or failed (False); None: no health check,
    # or not probed since the container (re)started.
    healthy: bool | None = None
    # A drained task's old copy that must be seen stopped before the task is placed again:
    # {"node", "attempt"}, set when the task is moved off a draining node, cleared at its
    # next placement. Persisted, so a restarted manager still holds the task back.
    moving_from: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the task as the contract's JSON object (containers copied, not shared).

        Written out instead of dataclasses.asdict, whose recursive deep copy costs ~4x more
        on the request path."""
        data = dict(self.__dict__)  # the fields in their order (a fast path: tasks are listed by thousands)
        if len(data) != len(_TASK_FIELDS):  # an attribute set from outside: keep to the contract
            data = {name: getattr(self, name) for name in _TASK_FIELDS}
        data["state"] = self.state.value
        data["command"], data["env"] = list(self.command), dict(self.env)
        data["ports"], data["host_ports"] = dict(self.ports), dict(self.host_ports)
        data["constraints"] = [dict(c) for c in self.constraints]
        if isinstance(self.health_check, dict):
            data["health_check"] = dict(self.health_check)
        data["moving_from"] = dict(self.moving_from) if self.moving_from else None
        return data

    def __copy__(self) -> "Task":
        """A shallow copy, as copy.copy makes it, without its generic (slow) protocol."""
        twin = object.__new__(Task)
        twin.__dict__.update(self.__dict__)
        return twin

    def spec_dict(self) -> dict[str, Any]:
        """Return only the user-settable fields (what a worker needs to run it)."""
        data = self.to_dict()
        return {name: data[name] for name in SPEC_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Task":
        """Build a task from trusted data (our own to_dict output); unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = State(values.get("state", State.PENDING))
        return cls(**values)


_TASK_FIELDS = tuple(f.name for f in fields(Task))


@dataclass
class TaskEvent:
    """A request to bring a task to a desired state (`running` or `completed`).

    From a user, `task` is a spec. From the manager to a worker (the internal contract),
    the event also names the attempt it is for and, for a run, the restarts so far."""

    task: Task
    state: State = State.RUNNING
    id: str = field(default_factory=new_id)
    timestamp: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a worker expects it: the task's spec, its attempt and restarts."""
        return {"id": self.id, "state": self.state.value, "task": self.task.spec_dict(),
                "attempt": self.task.attempt, "restart_count": self.task.restart_count}
