"""The services reconciler: desired replicas and version against the live replicas, to a
plan of replicas to place and replicas to stop. Pure: no clocks (`now` is passed in), no I/O.

It is level-triggered: the manager runs it on every change of a service or of one of its
tasks, and periodically as a safety net; running it twice on the same input gives the same
plan, and the manager applies a plan before it runs the next pass. Placements the manager has
decided but not yet recorded are passed back in as `in_flight` and count as pending replicas,
so a placement is never made twice.

Rollout rules (README, "Services"), with N the desired replicas and P `max_parallel`:
- stop-first: an old replica is stopped only while fewer than P of the N slots are served by
  neither an old replica nor an updated new one; a new replica is placed only once the old
  one it replaces has ended. So at least N - P replicas run while nodes are healthy.
- start-first: at most P new replicas are placed and not yet updated at a time, and never
  more than N + P replicas exist at once; an old replica is stopped once a new one is updated.
- A replica is updated once it has been healthy (running, and passing its health check if it
  has one) for `min_healthy_time`. A new replica that fails (ends failed, not because its node
  was lost) or is not updated within `healthy_deadline` of its placement fails the rollout:
  it pauses (nothing is stopped or replaced, the new replicas stay; a replica that ends is
  replaced with the old version)
  or rolls back (the previous version again, replaced at once, paced only by `order`).
- Outside a running rollout the same rules run with P = N (scaling, restarts, rollback).
- Replicas on a draining node are replaced start-first: their replacements are placed (the
  scheduler never picks a draining node) and each is stopped once a replica elsewhere is
  updated in its place.
- Scaling down stops, one at a time: unplaced replicas and those on draining nodes first, then
  unhealthy ones, then those on the node holding most of the service's replicas (then the
  fullest node, then the newest replica).
- A replica that ended by itself (failed, or exited 0) is replaced `replace_delay` seconds
  after it ended, so a crash-looping version does not churn tasks as fast as workers start them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from service.model import COMPLETED, PAUSED, ROLLED_BACK, RUNNING, Rollout, UpdatePolicy

IN_FLIGHT = "in-flight:"  # task id prefix of placements not yet recorded (never stopped)


@dataclass(frozen=True)
class Replica:
    """One task of the service as the reconciler needs it (times on the manager's clock)."""

    task_id: str
    version: int
    node: str | None = None
    running: bool = False
    ended: bool = False  # terminal
    failed: bool = False  # ended failed by itself (not stopped, not lost with its node)
    stopping: bool = False  # told to stop (ended or not): never replaced after the delay
    healthy_since: float | None = None  # healthy without a break since then; None: not healthy now
    created_at: float = 0.0  # when its current attempt was placed (or first seen)
    ended_at: float | None = None  # when it was first seen ended

    @property
    def live(self) -> bool:
        return not self.ended and not self.stopping


@dataclass(frozen=True)
class NodeView:
    """A node as scale-down ordering needs it."""

    name: str
    draining: bool = False
    load: float = 0.0  # how full it is (0..1); a tie-breaker


@dataclass(frozen=True)
class Desired:
    """What the service should be."""

    replicas: int
    version: int
    update: UpdatePolicy = UpdatePolicy()
    rollout: Rollout | None = None
    deleting: bool = False


@dataclass(frozen=True)
class Plan:
    """What to do: place one replica per entry of `place` (its version), stop `stop`; the
    service's version and rollout after this pass; `gone`: a deleted service with no replica
    left."""

    version: int
    rollout: Rollout | None
    place: tuple[int, ...] = ()
    stop: tuple[str, ...] = ()
    gone: bool = False


def reconcile(desired: Desired, replicas: Sequence[Replica], in_flight: Sequence[int] = (),
              nodes: Sequence[NodeView] = (), now: float = 0.0, replace_delay: float = 0.0) -> Plan:
    """Compare the desired service with its replicas (every task of the service, ended ones
    included) and the placements in flight; return the plan."""
    pending = [Replica(f"{IN_FLIGHT}{i}", version, created_at=now) for i, version in enumerate(in_flight)]
    every = list(replicas) + pending
    if desired.deleting:
        stop = tuple(r.task_id for r in every if r.live and not r.task_id.startswith(IN_FLIGHT))
        return Plan(desired.version, desired.rollout, stop=stop,
                    gone=not any(not r.ended for r in every))
    version, rollout = desired.version, desired.rollout
    if rollout is not None and rollout.state == RUNNING:
        failure = _failure(desired, every, now)
        if failure and desired.update.on_failure == "rollback":
            version, rollout = rollout.from_version, rollout.with_state(ROLLED_BACK, failure)
        elif failure:
            rollout = rollout.with_state(PAUSED, failure)
    held = [r for r in every if r.ended and not r.stopping and r.ended_at is not None
            and now < r.ended_at + replace_delay]  # ended by themselves: replaced after the delay
    draining = {node.name for node in nodes if node.draining}
    leaving = [r for r in every if r.live and r.node in draining]
    staying = [r for r in every if not (r.live and r.node in draining)]
    if rollout is not None and rollout.state == PAUSED:
        place, stop = _paused(desired.replicas, rollout, staying, held, nodes)
    else:
        parallel = desired.update.max_parallel if rollout is not None and rollout.state == RUNNING else None
        place, stop = _converge(desired, version, parallel, staying, held, nodes, now)
    stop += _leave(desired, leaving, staying, nodes, now)
    rollout = _progress(desired, version, rollout, every, now, stop)
    return Plan(version, rollout, tuple(place), tuple(stop))


def _leave(desired: Desired, leaving: list[Replica], staying: list[Replica], nodes: Sequence[NodeView],
           now: float) -> list[str]:
    """Replicas on draining nodes are replaced first (their replacements are placed as if they
    were gone) and stopped once enough replicas elsewhere are updated to take their place."""
    updated = sum(1 for r in staying if is_updated(r, desired.update, now))
    return _choose_stops(leaving, len(leaving) - max(0, desired.replicas - updated), leaving, nodes)


def is_updated(replica: Replica, policy: UpdatePolicy, now: float) -> bool:
    """Healthy for at least min_healthy_time."""
    return (replica.live and replica.running and replica.healthy_since is not None
            and now - replica.healthy_since >= policy.min_healthy_time)


def _failure(desired: Desired, every: list[Replica], now: float) -> str | None:
    """Why the running rollout fails, if a new replica failed or missed its deadline."""
    target = desired.version
    for r in every:
        if r.version != target:
            continue
        if r.ended and r.failed:
            return f"replica {r.task_id} of version {target} failed"
        if r.live and not is_updated(r, desired.update, now) and now - r.created_at >= desired.update.healthy_deadline:
            return f"replica {r.task_id} of version {target} not healthy within {desired.update.healthy_deadline:g}s"
    return None


def _converge(desired: Desired, target: int, parallel: int | None, every: list[Replica], held: list[Replica],
              nodes: Sequence[NodeView], now: float) -> tuple[list[int], list[str]]:
    """Bring the replicas to N of `target`, replacing at most `parallel` at a time (None: all)."""
    n, policy = desired.replicas, desired.update
    live = [r for r in every if r.live]
    stopping = [r for r in every if not r.ended and r.stopping]  # still running until they end
    new = [r for r in live if r.version == target]
    old = [r for r in live if r.version != target]
    updated = [r for r in new if is_updated(r, policy, now)]
    p = max(n, 1) if parallel is None else parallel
    stop: list[str] = []
    if len(new) > n:  # fewer replicas wanted: old ones go first (below), then extra new ones
        stop += _choose_stops(new, len(new) - n, every, nodes)
        new = [r for r in new if r.task_id not in stop]
        updated = [r for r in updated if r.task_id not in stop]
    if policy.order == "start-first":
        in_progress = len(new) - len(updated)
        room = n + p - (len(old) + len(new) + len(stopping))
        held_new = sum(1 for r in held if r.version == target)
        count = max(0, min(p - in_progress, n - len(new) - held_new, room))
        stop += _choose_stops(old, len(old) - max(0, n - len(updated)), every, nodes)
        return [target] * count, stop
    unavailable = max(0, n - len(old) - len(updated))
    excess = len(old) + len(new) - n
    old_stops = max(excess, min(p - unavailable, len(old)))
    stop += _choose_stops(old, old_stops, every, nodes)
    missing = n - (len(old) + len(new) + len(stopping) + len(held))
    return [target] * max(0, missing), stop


def _paused(n: int, rollout: Rollout, every: list[Replica], held: list[Replica],
            nodes: Sequence[NodeView]) -> tuple[list[int], list[str]]:
    """A paused rollout replaces nothing and stops nothing: its new replicas stay as they are;
    a replica that ends is replaced with the old version; only a scale-down stops old ones."""
    live = [r for r in every if r.live]
    old = [r for r in live if r.version != rollout.to_version]
    if len(old) > n:
        return [], _choose_stops(old, len(old) - n, every, nodes)
    missing = n - len(live) - len(held)
    return [rollout.from_version] * max(0, missing), []


def _progress(desired: Desired, version: int, rollout: Rollout | None, every: list[Replica], now: float,
              stops: list[str]) -> Rollout | None:
    """The rollout's counts after this pass; a running one completes when every replica is
    of the new version and updated."""
    if rollout is None or rollout.state == COMPLETED:
        return rollout
    live = [r for r in every if r.live and r.task_id not in stops]
    updated = sum(1 for r in live if r.version == version and is_updated(r, desired.update, now))
    rollout = replace(rollout, updated=min(updated, desired.replicas), total=desired.replicas)
    if rollout.state == RUNNING and updated >= desired.replicas and all(r.version == version for r in live):
        rollout = rollout.with_state(COMPLETED)
    return rollout


def _choose_stops(candidates: list[Replica], count: int, every: list[Replica], nodes: Sequence[NodeView]) -> list[str]:
    """Pick `count` replicas to stop, one at a time (README's scale-down order)."""
    if count <= 0:
        return []
    info = {node.name: node for node in nodes}
    per_node: dict[str | None, int] = {}
    for r in every:
        if r.live:
            per_node[r.node] = per_node.get(r.node, 0) + 1
    left = [r for r in candidates if not r.task_id.startswith(IN_FLIGHT)]
    chosen: list[str] = []
    for _ in range(min(count, len(left))):
        best = min(left, key=lambda r: _stop_key(r, info, per_node))
        left.remove(best)
        per_node[best.node] = per_node.get(best.node, 1) - 1
        chosen.append(best.task_id)
    return chosen


def _stop_key(r: Replica, info: dict[str, NodeView], per_node: dict[str | None, int]) -> tuple:
    node = info.get(r.node or "")
    placed = r.node is not None
    draining = node is not None and node.draining
    healthy = r.running and r.healthy_since is not None
    return (placed and not draining, healthy, -per_node.get(r.node, 0), -(node.load if node else 0.0),
            -r.created_at, r.task_id)
