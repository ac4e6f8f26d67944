"""Round robin over the nodes that are up, starting with the first."""
from __future__ import annotations

from typing import Sequence

from node import Node
from task import Task


class RoundRobin:
    """Each placement goes to the next node after the previous choice, skipping nodes that are down.

    The rotation follows the order of the node list the scheduler is given. Round robin has
    exactly one candidate per placement, the next node up in the rotation, so selecting it
    walks only past nodes that are down: placement costs O(1) however many nodes there are.
    """

    name = "round-robin"

    def __init__(self) -> None:
        self._next = 0  # position in the node list where the next search starts
        self._found = 0  # position of the candidate last selected

    def select_candidates(self, task: Task, nodes: Sequence[Node]) -> list[Node]:
        """The first node that is up, searching from the one after the previous choice."""
        count = len(nodes)
        for step in range(count):
            position = (self._next + step) % count
            if nodes[position].accepts_tasks:  # up, and its Docker engine not known to be down
                self._found = position
                return [nodes[position]]
        return []

    def score(self, task: Task, candidates: Sequence[Node]) -> dict[str, float]:
        """Every candidate scores 0: the rotation already chose."""
        return {node.name: 0.0 for node in candidates}

    def pick(self, scores: dict[str, float], candidates: Sequence[Node]) -> Node:
        """The candidate; the rotation moves past it."""
        chosen = min(candidates, key=lambda n: scores[n.name])
        self._next = self._found + 1
        return chosen
