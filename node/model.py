"""Node: a worker as the manager sees it."""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

UP = "up"
DOWN = "down"
INTERNAL = ("misses", "lost", "generation", "last_answer")
RESOURCES = ("cpu", "memory", "disk")  # what a task requests and a node offers: cores, bytes, bytes


def no_resources() -> dict[str, float]:
    """{"cpu": 0, "memory": 0, "disk": 0}: nothing requested, or a capacity not known yet."""
    return {"cpu": 0.0, "memory": 0, "disk": 0}


@dataclass
class Node:
    """A worker: where it is, whether it answers, and its latest stats."""

    name: str
    address: str
    state: str = DOWN
    cores: int = 0
    memory: int = 0
    disk: int = 0
    task_count: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    last_seen: str | None = None
    engine: dict[str, Any] = field(default_factory=lambda: {"reachable": None})  # the worker's /health "docker"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))  # stable across the worker's restarts
    eligible: bool = True  # False: no new placements (the operator's wish, or a drain)
    drain: dict[str, Any] | None = None  # {"started_at", "deadline", "remaining"} while draining
    capacity: dict[str, float] = field(default_factory=no_resources)  # what tasks may request in all
    allocated: dict[str, float] = field(default_factory=no_resources)  # the requests of the tasks placed here
    labels: dict[str, str] = field(default_factory=dict)  # matched by the tasks' constraints
    # Not part of the JSON contract:
    misses: int = 0  # liveness checks in a row that got no answer at all
    lost: bool = False  # declared lost after `down_after` misses; cleared by the next answer
    generation: int = 0  # grows each time the node is declared lost: fences reads begun before
    last_answer: float = 0.0  # the manager's clock at the node's last answer to a liveness check

    @property
    def status(self) -> str:
        """`up` or `down` (the contract's name; `state` is kept as its alias)."""
        return self.state

    @property
    def is_up(self) -> bool:
        """True when the last contact with the worker succeeded."""
        return self.state == UP

    @property
    def accepts_tasks(self) -> bool:
        """True when the worker is up and its Docker engine is not known to be unreachable
        (an engine not checked yet, or a worker without /health, counts as usable)."""
        return self.is_up and self.engine.get("reachable") is not False

    def to_dict(self) -> dict[str, Any]:
        """Return the node as the contract's JSON object."""
        data = asdict(self)
        for internal in INTERNAL:
            del data[internal]
        data["status"] = self.state
        return data

    def record_stats(self, stats: dict[str, Any], seen_at: str) -> None:
        """Take a fresh /stats answer: the node is up and its capacity is known (what the
        worker declares, ORCA_NODE_CAPACITY, or else the host's cores, memory and disk), and
        its labels (ORCA_NODE_LABELS) if it reports them."""
        self.stats = stats
        self.cores = int(stats.get("cpu_count") or 0)
        self.memory = int((stats.get("memory") or {}).get("total") or 0)
        self.disk = int((stats.get("disk") or {}).get("total") or 0)
        self.task_count = int(stats.get("task_count") or 0)
        self.capacity = _capacity(stats.get("capacity")) or {"cpu": float(self.cores), "memory": self.memory,
                                                             "disk": self.disk}
        if isinstance(stats.get("labels"), dict):
            self.labels = {str(k): str(v) for k, v in stats["labels"].items()}
        self.last_seen = seen_at
        self.state = UP
        self.misses = 0

    def record_engine(self, engine: dict[str, Any]) -> None:
        """Take the engine state a worker reported in /health."""
        self.engine = dict(engine)

    def record_answer(self, now: float) -> bool:
        """The node answered its liveness check (whatever it said). Returns True when it had
        been declared lost (it is back)."""
        back = self.lost
        self.misses, self.lost, self.last_answer = 0, False, now
        return back

    def record_miss(self, down_after: int) -> bool:
        """Count a liveness check that got no answer. Returns True exactly once, when
        `down_after` misses in a row make the node lost (also a node never heard from since
        the manager started); the node is then down and its read position is fenced off."""
        self.misses += 1
        if self.misses < down_after or self.lost:
            return False
        self.state, self.lost = DOWN, True
        self.generation += 1
        return True


def _capacity(value: Any) -> dict[str, float] | None:
    """A worker's declared capacity {"cpu", "memory", "disk"}, or None if absent or malformed."""
    if not isinstance(value, dict):
        return None
    try:
        cpu, memory, disk = (value[r] for r in RESOURCES)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1 << 60
               for v in (cpu, memory, disk)):
            return None
        return {"cpu": float(cpu), "memory": int(memory), "disk": int(disk)}
    except KeyError:
        return None
