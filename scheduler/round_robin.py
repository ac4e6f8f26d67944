"""Round robin over the nodes that are up, starting with the first."""
from __future__ import annotations

from typing import Sequence

from node import Node
from task import Task


class RoundRobin:
    """Each placement goes to the next node after the previous choice, skipping nodes that are down.

    The rotation follows the order of the node list the scheduler is given, so the same list
    in the same order yields the same sequence.
    """

    name = "round-robin"

    def __init__(self) -> None:
        self._last: str | None = None
        self._order: dict[str, int] = {}

    def select_candidates(self, task: Task, nodes: Sequence[Node]) -> list[Node]:
        """Nodes that are up; remembers the full order so rotation survives a node going down."""
        if len(self._order) != len(nodes):
            self._order = {node.name: i for i, node in enumerate(nodes)}
        return [node for node in nodes if node.is_up]

    def score(self, task: Task, candidates: Sequence[Node]) -> dict[str, float]:
        """Distance in the rotation from the previous choice: the next node scores 0."""
        size = max(len(self._order), 1)
        last = self._order.get(self._last, -1) if self._last is not None else -1
        return {n.name: (self._order.get(n.name, 0) - last - 1) % size for n in candidates}

    def pick(self, scores: dict[str, float], candidates: Sequence[Node]) -> Node:
        """The candidate with the lowest score; it becomes the previous choice."""
        chosen = min(candidates, key=lambda n: scores[n.name])
        self._last = chosen.name
        return chosen
