"""Placement within a dispatch pass (mixin of Manager): choose a node for each task to place,
record the new attempts in one commit, and park the tasks no node has room for.

A parked task ("blocked", as Nomad calls an evaluation waiting for capacity) is not tried
again at every pass, which every submission triggers: it goes back to the work set only when
room may have appeared: a task left a node (its requests and ports freed), or a node changed
(came up, joined, left a drain, became eligible, changed capacity or labels), or at the
periodic rescan. Its pending reason is written only when it changes.
"""
from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from task import Task, Unavailable
from task import lifecycle
from task.lifecycle import Action

if TYPE_CHECKING:
    from manager.dispatch import _Plan
    from manager.manager import Manager

log = logging.getLogger(__name__)

PLACE_PER_COMMIT = 500  # placements recorded in one commit, under one hold of the lock: intake
                        # never waits long for it, however many tasks a pass places


class Placing:
    """Mixin of Manager: _place_all() and the blocked tasks."""

    _room_freed = True  # set when a task leaves a node (manager/placement.py)
    _nodes_seen: int | None = None  # the nodes' signature at the last unblock

    def _place_all(self: "Manager", plan: "_Plan") -> None:
        """Choose a node for each task to place and record the new attempts durably, one
        commit per PLACE_PER_COMMIT tasks (each choice sees the ones before it: the placement
        index follows every attempt as it is made), then add them to the plan's sends. A task no node can take
        stays pending with the reason (written only when it changes); `no_room` remembers,
        for this pass, the reason each shape of task (requests, constraints, ports) found none."""
        if not plan.place:
            return
        no_room: dict[tuple, str] = {}
        waiting: dict[str, str] = {}  # task -> why no node can take it

        held: list[str] = []

        def place_one(task: Task) -> bool:
            if lifecycle.next_action(task, False) is not Action.PLACE:
                return False
            if self._held(task.id):  # kept in the work set: placed once its old copy has stopped
                held.append(task.id)
                return False
            shape = _shape(task)
            reason = no_room.get(shape)
            node = None
            if reason is None:
                placement = self._scheduler.place(task, self._cluster())
                node, reason = placement.node, placement.reason
            if reason is not None or node is None:
                no_room[shape] = waiting[task.id] = reason or "no node can take it"
                return False
            changed = self._node_changed(node.name)
            if changed is not None:  # the lock was let go meanwhile: placed again next pass
                log.info("task %s: %s; it is placed again", task.id, changed)
                held.append(task.id)
                return False
            lifecycle.place(task, node.name)
            self._track_placement(task)  # the next choice of this pass sees this one
            return True
        for start in range(0, len(plan.place), PLACE_PER_COMMIT):  # the lock is let go between chunks
            chunk = plan.place[start:start + PLACE_PER_COMMIT]
            with self._lock:
                tasks = [self._tasks[i] for i in chunk if i in self._tasks]
            try:
                placed = self._commit_many(tasks, place_one)
            except Unavailable as exc:
                log.warning("%d placement(s) wait: %s", len(plan.place) - start, exc)
                self._requeue(plan.place[start:])
                break
            with self._lock:
                for task in placed:
                    self._unsent.add(task.id)
                    plan.sends.setdefault(task.node, []).append((task.id, Action.SEND_RUN))
                    log.info("task %s attempt %d placed on %s", task.id, task.attempt, task.node)
        self._wait_for_room(waiting)
        self._requeue(held)

    def _wait_for_room(self: "Manager", waiting: dict[str, str]) -> None:
        """Tasks no node could take: record why (only where it changed), park them until
        room may have appeared."""
        if not waiting:
            return
        with self._lock:
            tasks = [t for i in waiting if (t := self._tasks.get(i)) is not None and t.pending_reason != waiting[i]]
        try:
            changed = self._commit_many(tasks, lambda t: t.pending_reason != waiting[t.id]
                                        and setattr(t, "pending_reason", waiting[t.id]) is None)
        except Unavailable as exc:
            log.warning("%d pending reason(s) not recorded: %s", len(tasks), exc)
            changed = []
        for task in changed:
            log.info("task %s waits: %s", task.id, waiting[task.id])
        with self._lock:
            for task_id in waiting:
                task = self._tasks.get(task_id)
                if task is not None and lifecycle.next_action(task, False) is Action.PLACE:
                    self._work.pop(task_id, None)
                    self._blocked[task_id] = None

    def _unblock_if_room(self: "Manager") -> None:
        """Put the parked tasks back in the work set, oldest first, if room may have appeared
        since they were parked (caller holds the lock)."""
        seen = self._nodes_signature()
        if not (self._room_freed or seen != self._nodes_seen):
            return
        self._room_freed, self._nodes_seen = False, seen
        if self._blocked:  # ahead of newer work: first come, first placed
            self._work = OrderedDict(itertools.chain(self._blocked.items(), self._work.items()))
            self._blocked = OrderedDict()


    def _nodes_signature(self: "Manager") -> int:
        """What of the nodes decides whether a parked task fits somewhere (caller holds the lock)."""
        return hash(tuple((n.name, n.state, n.eligible, n.lost, n.drain is None, n.engine.get("reachable"),
                           tuple(sorted(n.capacity.items())), tuple(sorted(n.labels.items())))
                          for n in self._nodes))


def _shape(task: Task) -> tuple:
    """What decides whether a node can take a task, apart from the node: two tasks of one
    shape fit on the same nodes."""
    constraints = tuple((c["label"], c["op"], str(c["value"])) for c in task.constraints)
    ports = tuple(sorted((k, p) for k, p in task.ports.items() if p is not None))
    return task.cpu, task.memory, task.disk, constraints, ports
