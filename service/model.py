"""The service model: desired replicas and version of a task spec, the update policy, the
rollout in progress and the last versions. Plain dataclasses with an explicit JSON round trip."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

KEEP_VERSIONS = 10  # versions kept for GET /services/<name>/versions and rollback

ON_FAILURE = ("pause", "rollback")
ORDERS = ("stop-first", "start-first")

RUNNING = "running"
PAUSED = "paused"
COMPLETED = "completed"
ROLLED_BACK = "rolled_back"
ROLLOUT_STATES = (RUNNING, PAUSED, COMPLETED, ROLLED_BACK)


@dataclass(frozen=True)
class UpdatePolicy:
    """How a new version replaces the old one (README, "Rollout rules")."""

    max_parallel: int = 1  # replicas replaced at once
    min_healthy_time: float = 5.0  # seconds a new replica must stay healthy to count as updated
    healthy_deadline: float = 300.0  # seconds a new replica gets to become healthy, else the rollout fails
    on_failure: str = "pause"  # pause | rollback
    order: str = "stop-first"  # stop-first | start-first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UpdatePolicy":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Rollout:
    """A change of version in progress or just ended."""

    from_version: int
    to_version: int
    state: str = RUNNING  # running | paused | completed | rolled_back
    updated: int = 0  # replicas of to_version healthy for min_healthy_time
    total: int = 0  # replicas wanted
    reason: str | None = None  # why it paused or rolled back

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Rollout | None":
        if data is None:
            return None
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def with_state(self, state: str, reason: str | None = None) -> "Rollout":
        return replace(self, state=state, reason=reason)


@dataclass
class Service:
    """A service's desired state, persisted by the manager under kind "service"."""

    name: str
    replicas: int
    task: dict[str, Any]  # the task spec of the current version (validated; no id)
    update: UpdatePolicy = field(default_factory=UpdatePolicy)
    version: int = 1
    rollout: Rollout | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)  # [{"version", "task", "created_at"}], oldest first
    created_at: str | None = None
    updated_at: str | None = None
    deleting: bool = False  # DELETE was accepted: every replica is being stopped

    def to_dict(self) -> dict[str, Any]:
        """The stored record (the API adds the observed counts)."""
        return {"name": self.name, "version": self.version, "replicas": self.replicas, "task": dict(self.task),
                "update": self.update.to_dict(), "rollout": self.rollout.to_dict() if self.rollout else None,
                "versions": [dict(v) for v in self.versions], "created_at": self.created_at,
                "updated_at": self.updated_at, "deleting": self.deleting}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Service":
        return cls(name=data["name"], replicas=data["replicas"], task=dict(data["task"]),
                   update=UpdatePolicy.from_dict(data.get("update") or {}), version=data.get("version", 1),
                   rollout=Rollout.from_dict(data.get("rollout")), versions=list(data.get("versions") or []),
                   created_at=data.get("created_at"), updated_at=data.get("updated_at"),
                   deleting=bool(data.get("deleting")))

    def spec_of(self, version: int) -> dict[str, Any] | None:
        """The task spec of a kept version (None if it is no longer kept)."""
        return next((dict(v["task"]) for v in self.versions if v["version"] == version), None)

    def add_version(self, task: dict[str, Any], at: str) -> int:
        """Record a new version of the task spec (keeping the last KEEP_VERSIONS); return its number."""
        number = max((v["version"] for v in self.versions), default=0) + 1
        self.versions.append({"version": number, "task": dict(task), "created_at": at})
        del self.versions[:-KEEP_VERSIONS]
        return number

    @property
    def rollout_running(self) -> bool:
        return self.rollout is not None and self.rollout.state == RUNNING
