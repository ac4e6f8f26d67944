"""The scheduler: select feasible candidates, score them, pick one. Pure decisions only:
it reads a Cluster snapshot, does no I/O and never sleeps.

Small clusters are scored whole. Above SAMPLE_ALL_UP_TO nodes, like Nomad, only a sample is
scored: the nodes are walked from a random position until max(2, ceil(log2 N)) feasible
ones are found, so a placement costs about that many feasibility checks however large the
fleet. Only a task that fits nowhere costs a full walk (to say why).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Sequence

from node import Node
from scheduler import fit
from scheduler.cluster import Cluster
from scheduler.feasible import explain, feasible
from task import Task

SAMPLE_ALL_UP_TO = 64  # nodes; a larger cluster has a sample of its feasible nodes scored
AVOID_PENALTY = 1000.0  # taken off the score of the node where the task's last attempt was lost

Score = Callable[[Task, Node, Cluster], float]


@dataclass(frozen=True)
class Placement:
    """The choice for one task: a node, or None and the reason no node can take it."""

    node: Node | None
    reason: str | None = None


def sample_size(count: int, all_up_to: int = SAMPLE_ALL_UP_TO) -> int:
    """How many feasible nodes are scored among `count` nodes: all of them up to
    `all_up_to`, then max(2, ceil(log2 count)) (Nomad's limit)."""
    if count <= all_up_to:
        return count
    return max(2, math.ceil(math.log2(count)))


class Scheduler:
    """Places tasks by one scoring function (higher is better). Ties go to the node with
    fewer tasks, then to the first one met."""

    name = "base"
    score_fn: Score = staticmethod(fit.rotation)
    sample_all_up_to = SAMPLE_ALL_UP_TO  # a benchmark sets it past the fleet's size to score every node

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def place(self, task: Task, cluster: Cluster) -> Placement:
        """Choose a node for `task`, or say why none can take it."""
        candidates = self.select_candidates(task, cluster)
        if not candidates:
            return Placement(None, explain(task, cluster.nodes, cluster))
        return Placement(self.pick(task, candidates, self.score(task, candidates, cluster), cluster))

    def select_candidates(self, task: Task, cluster: Cluster) -> list[Node]:
        """Feasible nodes: all of a small cluster, a sample of a large one."""
        nodes = cluster.nodes
        count = len(nodes)
        limit = sample_size(count, self.sample_all_up_to)
        start = self._rng.randrange(count) if limit < count else 0
        found: list[Node] = []
        for step in range(count):
            node = nodes[(start + step) % count]
            if feasible(task, node, cluster):
                found.append(node)
                if len(found) >= limit:
                    break
        return found

    def score(self, task: Task, candidates: Sequence[Node], cluster: Cluster) -> dict[str, float]:
        """Each candidate's score; the node where the task was just lost scores far lower."""
        avoid = cluster.avoid.get(task.id)
        return {node.name: type(self).score_fn(task, node, cluster) - (AVOID_PENALTY if node.name == avoid else 0.0)
                for node in candidates}

    def pick(self, task: Task, candidates: Sequence[Node], scores: dict[str, float], cluster: Cluster) -> Node:
        """The best-scored candidate; ties to the one with fewer tasks, then the first."""
        return max(candidates, key=lambda n: (scores[n.name], -len(cluster.tasks_on(n.name))))


def place(scheduler: Scheduler, task: Task, nodes: Sequence[Node] | Cluster) -> Node | None:
    """Shorthand: the chosen node for `task` among `nodes` (or a Cluster), or None."""
    cluster = nodes if isinstance(nodes, Cluster) else Cluster(nodes)
    return scheduler.place(task, cluster).node
