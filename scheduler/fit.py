"""The scoring functions, one per strategy. Pure; higher scores are better.

Each takes the task, the node and the cluster and returns the node's score for that task as
if the task were placed there (its requests added to what the node has allocated).
"""
from __future__ import annotations

from node import Node
from scheduler.cluster import Cluster
from task import Task

LIEB = 1.53960071783900203869  # E-PVM's base (the book's constant, from Amir, Awerbuch et al.)
EPVM_MAX_JOBS = 4.0  # the book's task-count scale
MAX_FIT = 18.0  # Nomad's fit scores lie in [0, 18]


def free_after(task: Task, node: Node, resource: str) -> float:
    """The fraction of `resource` left free on `node` once `task` is placed there (0..1).
    A node that declares none of it has nothing used of nothing: 1."""
    capacity = node.capacity.get(resource, 0)
    if capacity <= 0:
        return 1.0
    used = node.allocated.get(resource, 0) + getattr(task, resource)
    return max(0.0, 1.0 - used / capacity)


def _ten_to_free(task: Task, node: Node) -> float:
    return 10 ** free_after(task, node, "cpu") + 10 ** free_after(task, node, "memory")


def binpack(task: Task, node: Node, cluster: Cluster) -> float:
    """Nomad's ScoreFitBinPack: 20 - (10^free_cpu + 10^free_memory), in [0, 18]: a node the
    task fills exactly scores 18, an empty one 0."""
    return min(MAX_FIT, max(0.0, 20.0 - _ten_to_free(task, node)))


def spread_fit(task: Task, node: Node) -> float:
    """Nomad's ScoreFitSpread: (10^free_cpu + 10^free_memory) - 2, in [0, 18]: the emptier,
    the higher."""
    return min(MAX_FIT, max(0.0, _ten_to_free(task, node) - 2.0))


def spread(task: Task, node: Node, cluster: Cluster) -> float:
    """Fewest tasks of the same service first, then the least loaded: each task of the
    service already on the node costs more than any difference of load can win back."""
    return spread_fit(task, node) / MAX_FIT - cluster.same_service(task, node.name)


def epvm_cost(task: Task, node: Node, cluster: Cluster) -> float:
    """The marginal cost of placing `task` on `node` under E-PVM (lower is better).

    For each of cpu and memory: LIEB^(load after placement) - LIEB^(load now), where load is
    the fraction of capacity requested by the tasks placed there; plus, for each, the same
    difference over the task count scaled by EPVM_MAX_JOBS. The book computes the cpu term
    as LIEB^load - LIEB^load (the same load twice), which is always 0; here the load after
    placement includes the task's request, so a busier node costs more.
    """
    count = len(cluster.tasks_on(node.name))
    jobs = LIEB ** ((count + 1) / EPVM_MAX_JOBS) - LIEB ** (count / EPVM_MAX_JOBS)
    cost = 0.0
    for resource in ("cpu", "memory"):
        capacity = node.capacity.get(resource, 0)
        now = node.allocated.get(resource, 0) / capacity if capacity > 0 else 0.0
        after = (node.allocated.get(resource, 0) + getattr(task, resource)) / capacity if capacity > 0 else 0.0
        cost += LIEB ** after - LIEB ** now + jobs
    return cost


def epvm(task: Task, node: Node, cluster: Cluster) -> float:
    """E-PVM as a score: the negated marginal cost."""
    return -epvm_cost(task, node, cluster)


def rotation(task: Task, node: Node, cluster: Cluster) -> float:
    """Round robin scores nothing: its rotation chooses."""
    return 0.0
