"""Drains: move every task off a node, then report the node drained.

A drain makes the node ineligible, then moves its tasks one at a time (or `parallel` at a
time) as new attempts. A plain task is stopped first and moved after: its attempt is
detached from the node (task.lifecycle.move_off), a kill order stops the old copy, and the
task is not placed again until the worker has reported that copy ended (or the node is
lost). A task of a service is first offered to `drain_replacement` (the services layer's
hook, start-first: a healthy replacement runs before the old copy stops). At the deadline,
or at once with `force`, every task left is moved in one step. The drain completes only
when no task is placed on the node and no copy of ours is left to stop there.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from node.validation import DrainRequest
from task import DESIRED_STOPPED, Conflict, Task, utc_now
from task import lifecycle

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger(__name__)

KillKey = tuple[str, str, int]  # (task id, node, attempt), as in manager.mirror


@dataclass
class DrainState:
    """A drain in progress (the public part is Node.drain)."""

    deadline_at: float  # on the manager's clock
    deadline: str  # ISO 8601 UTC, for people
    started_at: str
    force: bool = False
    parallel: int = 1


def _no_replacement(task: Task, node: str) -> bool:
    return False


class Drainer:
    """Mixin of Manager: drain(), drain_nodes() (a one-pass job) and the placement hold."""

    def _init_drains(self: "Manager") -> None:
        self._drains: dict[str, DrainState] = {}
        self._moving: dict[str, KillKey] = {}  # task -> the old copy to see stopped before placing it
        self._replacing: dict[str, str] = {}  # task -> draining node, while the services layer replaces it
        # The services layer's hook for a task of a service on a draining node: start a
        # replacement first and stop the old copy once it is healthy. Return True to take the
        # task over (the drainer then waits until the task has left the node), False to let
        # the drainer stop it and move it. Called without the lock, with a copy of the task.
        self.drain_replacement: Callable[[Task, str], bool] = _no_replacement

    def _restore_drains(self: "Manager", records: dict[str, dict[str, Any]]) -> None:
        """Resume the drains persisted with the nodes (after a manager restart)."""
        for name, record in records.items():
            drain = record.get("drain")
            if not drain or name not in self._by_name:
                continue
            left = _seconds_until(drain.get("deadline"))
            self._drains[name] = DrainState(self._clock() + left, drain.get("deadline") or "",
                                            drain.get("started_at") or utc_now(), bool(drain.get("force")),
                                            int(drain.get("parallel") or 1))
            self._by_name[name].drain = {"started_at": drain.get("started_at"), "deadline": drain.get("deadline"),
                                         "remaining": 0}

    def _restore_moving(self: "Manager") -> None:
        """Rebuild the placement holds and kill orders of tasks moved off a draining node whose
        old copy was not yet seen stopped (Task.moving_from, persisted with the move): after a
        restart or a take-over the task is not placed while that copy may run, and the drain
        does not complete before the copy is stopped. Caller holds the lock (or owns the
        manager alone, at start)."""
        self._moving = {}
        for task in self._tasks.values():
            origin = task.moving_from
            if not origin or task.node is not None or origin.get("node") not in self._by_name:
                continue  # placed again, or its node is gone (nothing left to stop there)
            key = (task.id, str(origin["node"]), int(origin.get("attempt") or 0))
            if key not in self._cleaned:
                self._kills.setdefault(key, 0.0)
                self._moving[task.id] = key

    def _drain_record(self: "Manager", name: str) -> dict[str, Any] | None:
        state = self._drains.get(name)
        if state is None:
            return None
        return {"started_at": state.started_at, "deadline": state.deadline, "force": state.force,
                "parallel": state.parallel}

    def drain(self: "Manager", name: str, request: DrainRequest) -> Any:
        """Start a drain of `name` (it becomes ineligible at once) or cancel one (it becomes
        eligible again). Starting a drain already running changes its deadline, force and
        parallel. Durable when it returns; returns a copy of the node.

        Raises:
            NotFound: unknown node. Conflict: cancelling on a node that is not draining.
        """
        self._check_accepting()
        with self._lock:
            node = self._node(name)
            before = (self._drains.get(name), node.eligible, node.drain)
            if request.cancel:
                if name not in self._drains:
                    raise Conflict(f"node {name} is not draining")
                del self._drains[name]
                node.drain, node.eligible = None, True
            else:
                started = self._drains[name].started_at if name in self._drains else utc_now()
                self._drains[name] = DrainState(self._clock() + request.deadline, _iso_in(request.deadline), started,
                                                request.force, request.parallel)
                node.eligible = False
                node.drain = {"started_at": started, "deadline": self._drains[name].deadline,
                              "remaining": self._left_on(name)}
            wait = self._save_node(node)
            result = copy.copy(node)

        def undo() -> None:
            state, node.eligible, node.drain = before
            if state is None:
                self._drains.pop(name, None)
            else:
                self._drains[name] = state
        self._durable(wait, f"drain of node {name}", undo)
        log.info("node %s: drain %s", name, "cancelled" if request.cancel else
                 f"started (deadline {request.deadline:g} s{', forced' if request.force else ''})")
        self._publish("node", "drain", result)
        self.on_work()
        return result

    def drain_nodes(self: "Manager") -> None:
        """One pass over the drains in progress, each node in its own try."""
        with self._lock:
            names = list(self._drains)
        for name in names:
            try:
                self._drain_step(name)
            except Exception:
                log.exception("node %s: drain step failed; it will be tried again", name)

    def _drain_step(self: "Manager", name: str) -> None:
        with self._lock:
            state, node = self._drains.get(name), self._by_name.get(name)
            if state is None or node is None:
                return
            left = self._left_on(name)
            if left == 0:
                self._drain_done(name)
                return
            node.drain = {**(node.drain or {}), "remaining": left}
            past = state.force or self._clock() >= state.deadline_at
            busy = sum(1 for key in self._moving.values() if key[1] == name and key in self._kills)
            busy += sum(1 for t, n in self._replacing.items() if n == name and t in self._placed.get(name, {}))
            movable = [t for t in self._placed.get(name, {}).values()
                       if t.desired_state != DESIRED_STOPPED and (past or t.id not in self._replacing)]
            budget = len(movable) if past else max(0, state.parallel - busy)
            chosen = [copy.copy(t) for t in sorted(movable, key=lambda t: t.id)[:budget]]
        for task in chosen:
            self._move_one(task, name, past)

    def _move_one(self: "Manager", probe: Task, name: str, past: bool) -> None:
        """Move one task off a draining node: offer it to the services layer first (unless the
        deadline passed), else stop it and move it."""
        if probe.service is not None and not past and self.drain_replacement(probe, name):
            with self._lock:
                self._replacing[probe.id] = name
            return
        with self._lock:
            task = self._tasks.get(probe.id)
            if task is None or task.node != name or task.state.is_terminal:
                return
            key = (task.id, name, task.attempt)
        self._commit(task, lambda t: lifecycle.move_off(t, name))
        with self._lock:
            self._kills[key] = 0.0
            self._moving[task.id] = key
            self._replacing.pop(task.id, None)
            self._unsent.discard(task.id)
            self._retry_at.pop(task.id, None)
            self._schedule_work(task)
        log.info("task %s: moving off draining node %s (attempt %d stopped first)", task.id, name, key[2])

    def _left_on(self: "Manager", name: str) -> int:
        """Tasks still placed on the node plus copies of ours still to be stopped there."""
        return len(self._placed.get(name, {})) + sum(1 for key in self._kills if key[1] == name)

    def _drain_done(self: "Manager", name: str) -> None:
        """Caller holds the lock."""
        node = self._by_name[name]
        del self._drains[name]
        node.drain = None
        for task_id in [t for t, n in self._replacing.items() if n == name]:
            del self._replacing[task_id]
        self._save_node(node)  # not waited for: a lost write only repeats an empty drain
        log.info("node %s drained", name)
        self._publish("node", "drained", node)

    def _held(self: "Manager", task_id: str) -> bool:
        """True while a moved task's old copy has not been reported stopped (caller holds the lock)."""
        key = self._moving.get(task_id)
        if key is None:
            return False
        if key in self._kills:
            return True
        del self._moving[task_id]
        return False


def _iso_in(seconds: float) -> str:
    at = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds_until(iso: str | None) -> float:
    if not iso:
        return 0.0
    try:
        at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (at - datetime.now(timezone.utc)).total_seconds())
