"""The manager's view of which workers are alive, judged only from their liveness checks.

A worker is lost only when `down_after` liveness checks in a row (GET /stats) get no answer
at all (or a 4xx refusal: another cluster's token). A failed send, a 5xx or a 503 are
answers: they never count. When a worker is lost,
its read position is fenced off (a read begun before cannot be written back) and its tasks
are settled by task.lifecycle.on_node_lost: moved as new attempts, failed, completed (the user
had stopped them), or kept until their stop_after_disconnect has passed.
"""
from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any, Callable

from node import UP, Node
from task import NotFound, Task, Unavailable, WorkerRejected, WorkerUnavailable, WorkerUnreachable, utc_now
from task import lifecycle
from task.lifecycle import LostOutcome

if TYPE_CHECKING:
    from manager.manager import Manager

log = logging.getLogger(__name__)


class Liveness:
    """Mixin of Manager: sync_nodes() and the settling of lost workers' tasks."""

    def __init__(self: "Manager") -> None:
        self._deferred: dict[str, set[str]] = {}  # lost node -> tasks waiting for stop_after_disconnect
        self._checking: set[str] = set()  # nodes whose liveness check is in flight
        # Runs the liveness checks of a pass: in order by default (the simulation stays
        # deterministic); the service hands them to a bounded pool without waiting, so a
        # frozen worker delays neither the others' checks nor the next pass.
        if not hasattr(self, "fan_out_checks"):  # kept across reload()
            self.fan_out_checks: Callable[[list[Callable[[], int]]], list[int]] = lambda calls: [c() for c in calls]
        # A worker whose change feed answered within `fresh_for` s is alive: its check (two
        # calls) is skipped unless its stats and engine state are `refresh_after` s old. Both
        # 0 (every node checked at every pass) unless the service sets them (ManagerService).
        if not hasattr(self, "fresh_for"):
            self.fresh_for, self.refresh_after = 0.0, 0.0
        self._checked_at: dict[str, float] = {}  # node -> when its last full check was sent

    def sync_nodes(self: "Manager") -> None:
        """Check each worker's liveness (GET /stats) and engine (GET /health), through
        `fan_out_checks`, skipping a node whose previous check is still in flight. A node whose
        engine is unreachable stays up but gets no new tasks. Then settle the tasks of lost
        nodes whose stop_after_disconnect has passed."""
        calls = []
        now = self._clock()
        with self._lock:
            for name in [n for n in self._checked_at if n not in self._by_name]:
                del self._checked_at[name]  # removed nodes
            for node in list(self._nodes):  # nodes join and leave meanwhile
                if node.name in self._checking:  # one check per node in flight: a slow one is not doubled
                    continue
                if self._heard_lately(node, now):
                    continue
                self._checking.add(node.name)
                self._checked_at[node.name] = now
                calls.append(lambda node=node: self._check_safely(node))
        self.fan_out_checks(calls)
        self._settle_deferred()

    def _heard_lately(self: "Manager", node: Node, now: float) -> bool:
        """True when the node's change feed answered within `fresh_for` s and its last full
        check is less than `refresh_after` s old: no need to ask it now (caller holds the lock)."""
        return (node.is_up and not node.lost and now - node.last_answer < self.fresh_for
                and now - self._checked_at.get(node.name, float("-inf")) < self.refresh_after)

    def _check_safely(self: "Manager", node: Node) -> int:
        try:
            self._check_node(node)
        except Exception:
            log.exception("worker %s: liveness check failed", node.name)
        finally:
            with self._lock:
                self._checking.discard(node.name)
        return 0

    def _check_node(self: "Manager", node: Node) -> None:
        try:
            stats = self._client.stats(node.address)
        except (WorkerUnreachable, WorkerRejected, NotFound) as exc:
            # No answer, or one that refuses us (another cluster's token, not a worker): we
            # cannot command it, so it counts as a miss.
            self._missed(node, exc)
            return
        except WorkerUnavailable as exc:  # a 5xx is an answer all the same: busy, not gone
            self._answered(node, None, {"reachable": None, "error": f"stats unavailable: {exc}"})
            return
        self._answered(node, stats, self._engine_of(node))

    def _answered(self: "Manager", node: Node, stats: dict[str, Any] | None, engine: dict[str, Any]) -> None:
        with self._lock:
            back = node.record_answer(self._clock())
            came_up, could_take = not node.is_up, node.accepts_tasks
            was_reachable = node.engine.get("reachable")
            if stats is not None:
                node.record_stats(stats, utc_now())
            else:
                node.state, node.last_seen = UP, utc_now()
            node.record_engine(engine)
            ready = node.accepts_tasks and not could_take
            self._deferred.pop(node.name, None)
            if came_up:
                self.events.publish("node", "up", node_event_data(node))
        if came_up:
            log.info("worker %s is up%s", node.name, " again" if back else "")
        if engine.get("reachable") is False and was_reachable is not False:
            log.warning("worker %s gets no new tasks: %s", node.name, engine.get("error"))
        elif engine.get("reachable") and was_reachable is False:
            log.info("worker %s: docker engine reachable again", node.name)
        if ready or came_up:
            self.on_work()

    def _engine_of(self: "Manager", node: Node) -> dict[str, Any]:
        """The worker's Docker engine state from its /health ({"reachable": None} if unknown)."""
        try:
            return self._client.health(node.address)["docker"]
        except (WorkerUnavailable, WorkerRejected, NotFound) as exc:
            return {"reachable": None, "error": f"engine state unknown: {exc}"}

    def _missed(self: "Manager", node: Node, exc: Exception) -> None:
        with self._lock:
            lost = node.record_miss(self._down_after)
            if lost:
                self.events.publish("node", "down", dict(node_event_data(node), error=str(exc)[:300]))
        if lost:
            log.warning("worker %s is lost: %s", node.name, exc)
            self._node_lost(node)

    def _node_lost(self: "Manager", node: Node) -> None:
        """Settle the lost worker's tasks; forget what was read from it."""
        with self._lock:
            self._forget_node(node.name)
            ids = {i for i in self._index.ids_on(node.name) if not self._tasks[i].state.is_terminal}
            self._deferred[node.name] = ids
        self._settle(node)

    def _settle_deferred(self: "Manager") -> None:
        with self._lock:
            nodes = [self._by_name[name] for name, ids in self._deferred.items() if ids and name in self._by_name]
        for node in nodes:
            self._settle(node)

    def _settle(self: "Manager", node: Node) -> None:
        """Apply on_node_lost to the node's tasks still waiting (the changes durable in one
        commit; if it fails, they are settled again at the next pass)."""
        with self._lock:
            ids = sorted(self._deferred.get(node.name, ()))
            cut_off_for = self._clock() - node.last_answer
        counts = {outcome: 0 for outcome in LostOutcome}
        settled: list[str] = []
        with self._lock:
            for task_id in ids:
                task = self._tasks[task_id]
                if not node.lost or task.node != node.name or task.state.is_terminal:
                    self._deferred.get(node.name, set()).discard(task_id)
                    continue
                probe = copy.copy(task)
                outcome = lifecycle.on_node_lost(probe, node.name, cut_off_for, self._disconnect_margin)
                counts[outcome] += 1
                if outcome is not LostOutcome.WAIT:
                    settled.append(task_id)
            tasks = [self._tasks[i] for i in settled]
        try:
            done = self._commit_many(tasks, lambda t: _still_lost(t, node.name) and lifecycle.on_node_lost(
                t, node.name, cut_off_for, self._disconnect_margin) is not LostOutcome.WAIT)
        except Unavailable as exc:
            log.warning("worker %s lost: settling %d task(s) waits: %s", node.name, len(tasks), exc)
            return
        with self._lock:
            for task in done:
                self._deferred.get(node.name, set()).discard(task.id)
                self._unsent.discard(task.id)
                self._retry_at.pop(task.id, None)
                self._schedule_work(task)
        if any(counts[o] for o in (LostOutcome.MOVE, LostOutcome.FAIL, LostOutcome.COMPLETE)):
            log.warning("worker %s lost: %d task(s) moved, %d failed, %d completed, %d waiting", node.name,
                        counts[LostOutcome.MOVE], counts[LostOutcome.FAIL], counts[LostOutcome.COMPLETE],
                        counts[LostOutcome.WAIT])
            self.on_work()


def node_event_data(node: Node) -> dict[str, Any]:
    """What a node event carries."""
    return {"id": node.id, "name": node.name, "address": node.address, "status": node.status,
            "accepts_tasks": node.accepts_tasks, "eligible": node.eligible, "last_seen": node.last_seen}

def _still_lost(task: Task, node_name: str) -> bool:
    """The task is still on the lost node and unfinished (it may have changed meanwhile)."""
    return task.node == node_name and not task.state.is_terminal
