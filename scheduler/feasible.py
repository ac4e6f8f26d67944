"""Feasibility: can this node take this task at all? Pure.

A node is feasible for a task when it is up, eligible (not draining), its Docker engine is
not known to be unreachable, the task's cpu, memory and disk requests fit in its capacity
minus what is allocated there, every constraint of the task holds on its labels, and the
task's fixed host ports are free there. `why_not` names the first rule that fails; `explain`
counts the reasons over every node for a task left pending.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from node import UP, Node
from node.model import RESOURCES
from scheduler.cluster import Cluster
from task import Task


def why_not(task: Task, node: Node, cluster: Cluster) -> str | None:
    """None when `node` can take `task`; otherwise the reason, worded to be counted."""
    if node.state != UP:
        return "down"
    if node.drain is not None:
        return "draining"
    if not node.eligible:
        return "ineligible"
    if node.engine.get("reachable") is False:
        return "engine unreachable"
    lacking = lacks(task, node)
    if lacking:
        return f"lack {lacking} (needs {_amount(lacking, getattr(task, lacking))})"
    for constraint in task.constraints:
        if not holds(constraint, node.labels):
            return f"fail constraint {describe(constraint)}"
    if _ports_taken(task, node, cluster):
        return f"have port {_ports_taken(task, node, cluster)} taken"
    return None


def feasible(task: Task, node: Node, cluster: Cluster) -> bool:
    """True when `node` can take `task` (why_not is None)."""
    return why_not(task, node, cluster) is None


def lacks(task: Task, node: Node) -> str | None:
    """The first resource (cpu, memory, disk) `task` requests more of than `node` has free."""
    for resource in RESOURCES:
        wanted = getattr(task, resource)
        if wanted and node.allocated.get(resource, 0) + wanted > node.capacity.get(resource, 0):
            return resource
    return None


def holds(constraint: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether one constraint holds for a node's labels. A missing label equals no value:
    `==` and `in` fail, `!=` and `not_in` hold."""
    have, op, value = labels.get(constraint["label"]), constraint["op"], constraint["value"]
    if op == "==":
        return have == value
    if op == "!=":
        return have != value
    if op == "in":
        return have in value
    return have not in value  # not_in


def describe(constraint: dict[str, Any]) -> str:
    """A constraint as text: zone==a, zone in [a,b]."""
    value = constraint["value"]
    shown = f"[{','.join(value)}]" if isinstance(value, list) else value
    op = constraint["op"]
    return f"{constraint['label']}{op}{shown}" if op in ("==", "!=") else f"{constraint['label']} {op} {shown}"


def explain(task: Task, nodes: Sequence[Node], cluster: Cluster) -> str:
    """Why no node can take `task`: "no node can take it: 3 lack cpu (needs 2.0), 1 down"."""
    if not nodes:
        return "no node can take it: there are no nodes"
    reasons = Counter(why_not(task, node, cluster) or "feasible" for node in nodes)
    parts = [f"{count} {_agree(reason, count)}" for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "no node can take it: " + ", ".join(parts)


_SINGULAR = {"lack": "lacks", "fail": "fails", "have": "has"}


def _agree(reason: str, count: int) -> str:
    """"lack cpu" after 3, "lacks cpu" after 1."""
    verb, _, rest = reason.partition(" ")
    return f"{_SINGULAR[verb]} {rest}" if count == 1 and verb in _SINGULAR else reason


def _ports_taken(task: Task, node: Node, cluster: Cluster) -> str | None:
    fixed = {f"{host}/{key.rpartition('/')[2]}" for key, host in task.ports.items() if host is not None}
    if not fixed:
        return None
    taken = sorted(fixed & cluster.ports_used(node.name))
    return taken[0] if taken else None


def _amount(resource: str, value: float) -> str:
    if resource == "cpu":
        return f"{float(value)}"
    return _bytes(int(value))


def _bytes(value: int) -> str:
    for unit, size in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if value >= size and value % (size // 1024 or 1) == 0:
            return f"{value / size:g}{unit}"
    return f"{value}"
