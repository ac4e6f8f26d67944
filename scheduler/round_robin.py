"""Round robin over the feasible nodes, starting with the first."""
from __future__ import annotations

import random
from typing import Sequence

from node import Node
from scheduler.base import Scheduler
from scheduler.cluster import Cluster
from scheduler.feasible import feasible
from task import Task


class RoundRobin(Scheduler):
    """Each placement goes to the next feasible node after the previous choice.

    The rotation follows the order of the cluster's node list. Its candidate is the first
    feasible node in the rotation (the second one when the first is where the task was just
    lost), so a placement walks only past nodes that cannot take the task: O(1) in a fleet
    that has room, whatever its size.
    """

    name = "round-robin"

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__(rng)
        self._next = 0  # position in the node list where the next search starts
        self._positions: dict[str, int] = {}  # candidate name -> its position (this placement)

    def select_candidates(self, task: Task, cluster: Cluster) -> list[Node]:
        """The first feasible node from the one after the previous choice (and the next
        feasible one if the first is the node to avoid)."""
        nodes, avoid = cluster.nodes, cluster.avoid.get(task.id)
        count = len(nodes)
        self._positions = {}
        found: list[Node] = []
        for step in range(count):
            position = (self._next + step) % count
            node = nodes[position]
            if feasible(task, node, cluster):
                found.append(node)
                self._positions[node.name] = position
                if node.name != avoid or len(found) == 2:
                    break
        return found

    def pick(self, task: Task, candidates: Sequence[Node], scores: dict[str, float], cluster: Cluster) -> Node:
        """The last candidate (the first unless it was the node to avoid); the rotation moves past it."""
        chosen = candidates[-1]
        self._next = self._positions[chosen.name] + 1
        return chosen
