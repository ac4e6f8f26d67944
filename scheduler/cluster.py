"""What a placement sees: the nodes and the tasks placed on them, read-only. Pure.

The manager builds a Cluster over its own records under its lock; the scheduler only reads
it, so a placement costs what the nodes it looks at cost, not what the cluster holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from node import Node
from task import Task


@dataclass(frozen=True)
class Cluster:
    """A snapshot of the cluster for one placement.

    Attributes:
        nodes: every node, in a stable order (round robin rotates over it).
        placed: node name -> {task id: task} of the tasks placed there that have not ended.
        avoid: task id -> the node where that task's previous attempt failed or was lost.
    """

    nodes: Sequence[Node]
    placed: Mapping[str, Mapping[str, Task]] = field(default_factory=dict)
    avoid: Mapping[str, str] = field(default_factory=dict)

    def tasks_on(self, node: str) -> Mapping[str, Task]:
        """The tasks placed on `node` that have not ended."""
        return self.placed.get(node, {})

    def same_service(self, task: Task, node: str) -> int:
        """How many tasks of `task`'s service sit on `node` (0 for a task of no service)."""
        if task.service is None:
            return 0
        return sum(1 for other in self.tasks_on(node).values() if other.service == task.service and other.id != task.id)

    def ports_used(self, node: str) -> set[str]:
        """The fixed host ports ("8080/tcp") the tasks on `node` asked for."""
        return {f"{host}/{key.rpartition('/')[2]}" for other in self.tasks_on(node).values()
                for key, host in other.ports.items() if host is not None}
