"""The scheduler protocol: select candidates, score them, pick one. Pure decisions only."""
from __future__ import annotations

from typing import Protocol, Sequence

from node import Node
from task import Task


class Scheduler(Protocol):
    """Places a task on one of a snapshot of nodes, in three steps."""

    def select_candidates(self, task: Task, nodes: Sequence[Node]) -> list[Node]:
        """Return the nodes that could run `task`."""

    def score(self, task: Task, candidates: Sequence[Node]) -> dict[str, float]:
        """Return a score per candidate name; lower is better."""

    def pick(self, scores: dict[str, float], candidates: Sequence[Node]) -> Node:
        """Return the chosen candidate and remember the choice if the strategy needs it."""


def place(scheduler: Scheduler, task: Task, nodes: Sequence[Node]) -> Node | None:
    """Run the three steps; return the chosen node, or None when no node can take the task."""
    candidates = scheduler.select_candidates(task, nodes)
    if not candidates:
        return None
    return scheduler.pick(scheduler.score(task, candidates), candidates)
