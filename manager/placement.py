"""The manager's index of what is placed where: each node's tasks and allocation, the node
each moved task should avoid, and the Cluster snapshot the scheduler reads.

`_track_placement(task)` is called for every task written (Manager._save) and undone change, so the
index follows the task DB: a task counts against its node from its placement until it ends
or moves. Caller holds the manager's lock throughout.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from node.model import RESOURCES, no_resources
from scheduler import Cluster
from task import Task

if TYPE_CHECKING:
    from manager.manager import Manager


class PlacementIndex:
    """Mixin of Manager: the placement index and the scheduler's snapshot."""

    def __init__(self: "Manager") -> None:
        self._placed: dict[str, dict[str, Task]] = {}  # node -> {task id: task} not ended
        self._where: dict[str, str] = {}  # task id -> the node it counts against
        self._avoid: dict[str, str] = {}  # task id -> the node its previous attempt was lost on or moved off

    def _track_placement(self: "Manager", task: Task) -> None:
        """Bring the index up to date with `task`'s node and state."""
        before = self._where.get(task.id)
        after = task.node if task.node is not None and not task.state.is_terminal else None
        if before is not None and before != after:
            self._placed.get(before, {}).pop(task.id, None)
            del self._where[task.id]
            self._allocate(before, task, -1)
            self._room_freed = True
            self.on_work()  # room was freed: a task waiting for it is placed now, not at the next tick
            if after is None and not task.state.is_terminal:
                self._avoid[task.id] = before  # moved: its next attempt goes elsewhere if it can
        if after is not None:
            self._placed.setdefault(after, {})[task.id] = task
            if before != after:
                self._where[task.id] = after
                self._allocate(after, task, +1)
        if task.state.is_terminal:
            self._avoid.pop(task.id, None)

    def _allocate(self: "Manager", node_name: str, task: Task, sign: int) -> None:
        """Add (sign +1) or take back (-1) a task's requests in its node's `allocated`."""
        node = self._by_name.get(node_name)
        if node is None:
            return
        total = dict(node.allocated)
        for resource in RESOURCES:
            total[resource] = round(total.get(resource, 0) + sign * getattr(task, resource), 6)
        total["memory"], total["disk"] = int(total["memory"]), int(total["disk"])
        node.allocated = total

    def _reset_placements(self: "Manager", tasks) -> None:
        """Rebuild the index from `tasks` (a reload)."""
        PlacementIndex.__init__(self)
        for node in self._nodes:
            node.allocated = no_resources()
        for task in tasks:
            self._track_placement(task)

    def _cluster(self: "Manager") -> Cluster:
        """The scheduler's view: the nodes, what runs on each, the nodes to avoid."""
        return Cluster(self._nodes, self._placed, self._avoid)

    def tasks_on(self: "Manager", node_name: str) -> list[Task]:
        """The tasks placed on a node that have not ended (copies)."""
        with self._lock:
            return [copy.copy(t) for t in self._placed.get(node_name, {}).values()]
