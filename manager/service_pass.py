"""The services' reconcile pass: it runs service/reconcile.py for each service over the
manager's view of its replicas and applies the plan (new replica tasks, stops, the rollout's
new state), each service in its own try.

What the reconciler needs that workers do not report (since when a replica is healthy, when
its attempt was placed, when it ended) is kept here in memory on the manager's clock: after a
manager restart those timers start again from the first observation (a rollout resumes where
it was, its new replicas just wait min_healthy_time once more).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from manager.queries import MAX_LIMIT
from service.model import PAUSED, RUNNING, Rollout, Service
from service.reconcile import Desired, NodeView, Plan, Replica, reconcile
from task import DESIRED_STOPPED, Conflict, NotFound, State, Task, TaskEvent, Unavailable, utc_now

if TYPE_CHECKING:
    from manager.services import Services

log = logging.getLogger("manager.services")

_LOST = re.compile(r"^worker \S+ lost")  # task.lifecycle.on_node_lost's failure: the node's fault


@dataclass
class Seen:
    """The manager's observations of one replica (its clock)."""

    attempt: int
    placed_at: float
    healthy_key: tuple[int, int] | None = None  # (attempt, restart_count) healthy_since belongs to
    healthy_since: float | None = None
    ended_at: float | None = None


class ServicePass:
    """Mixin of Services: reconcile_services() and the observations it needs."""

    def take_over_drained(self: "Services", task: Task, node: str) -> bool:
        """A replica of a live service on a draining node is ours to move: the reconciler
        places its replacement first and stops it once a replica elsewhere is updated in its
        place (service/reconcile.py). Returns False for a service being deleted or unknown."""
        with self._lock:
            service = self._services.get(task.service or "")
            ours = service is not None and not service.deleting
        if ours:
            log.info("service %s: replica %s on draining node %s is replaced first", task.service, task.id, node)
            self.on_change()
        return ours

    def purge_blocker(self: "Services", task: Task) -> str | None:
        """Why a finished replica must not be purged yet (Manager.purge_blocker), or None: the
        reconciler still counts it while its end is recent (it is replaced after the delay) and,
        during a running rollout, as a failure of the rollout's version. Reads without the lock
        (the manager's lock is held by the caller): each read is one atomic lookup."""
        service = self._services.get(task.service or "")
        if service is None or service.deleting:
            return None
        rollout = service.rollout
        if rollout is not None and rollout.state == RUNNING and task.service_version == rollout.to_version:
            return (f"task {task.id} is a replica of version {rollout.to_version} of service {service.name}, "
                    f"whose rollout is running and counts its failures; purge it once the rollout has ended")
        seen = self._seen.get(task.id)
        if seen is None or seen.ended_at is None or self._clock() < seen.ended_at + self._replace_delay:
            return (f"task {task.id} is a replica of service {service.name} that ended a moment ago: the "
                    f"service replaces it first; try again in {self._replace_delay:g} s")
        return None

    # ----- the reconcile pass

    def reconcile_services(self: "Services") -> None:
        """One pass over every service, each in its own try."""
        with self._pass:
            now = self._clock()
            with self._lock:
                names = list(self._services)
            by_service = {name: self._service_tasks(name) for name in names}
            self._forget_gone(by_service)
            nodes = self._node_views()
            sound = {n.name for n in self._manager.nodes() if n.is_up and n.misses == 0}
            for name in names:
                try:
                    self._reconcile_one(name, by_service.get(name, []), nodes, sound, now)
                except (Unavailable, Conflict, NotFound) as exc:
                    log.info("service %s: reconcile deferred: %s", name, exc)
                except Exception:
                    log.exception("service %s: reconcile failed; it will be tried again", name)

    def _reconcile_one(self: "Services", name: str, tasks: list[Task], nodes: list[NodeView], sound: set[str],
                       now: float) -> None:
        with self._lock:
            service = self._services.get(name)
            if service is None:
                return
            desired = Desired(service.replicas, service.version, service.update, service.rollout, service.deleting)
            replicas = [self._replica(task, task.node in sound, now) for task in tasks]
            plan = reconcile(desired, replicas, list(self._in_flight.get(name, ())), nodes, now, self._replace_delay)
            self._record(service, plan)
        if plan.gone:
            self._remove(name)
            return
        for task_id in plan.stop:
            self._stop(task_id)
        for version in plan.place:
            self._place(name, version)

    def _record(self: "Services", service: Service, plan: Plan) -> None:
        """Persist the version and rollout the plan says (caller holds the lock)."""
        if plan.version == service.version and plan.rollout == service.rollout:
            return
        before = service.rollout
        changed = replace(service, version=plan.version, rollout=plan.rollout,
                          task=service.spec_of(plan.version) or service.task)
        moved = (before and before.state) != (plan.rollout and plan.rollout.state) or plan.version != service.version
        if moved:
            changed.updated_at = utc_now()
        self._put(changed)
        self._services[service.name] = changed
        self._announce(service.name, plan.rollout, moved)

    def _announce(self: "Services", name: str, rollout: Rollout | None, moved: bool) -> None:
        """Publish the rollout's progress; log when its state (or the version) changed."""
        if rollout is None:
            return
        if moved:
            log.log(logging.INFO if rollout.state != PAUSED else logging.WARNING,
                    "service %s: rollout %d -> %d %s%s", name, rollout.from_version, rollout.to_version,
                    rollout.state, f": {rollout.reason}" if rollout.reason else "")
        self.on_event("rollout", {"service": name, **rollout.to_dict()})

    def _place(self: "Services", name: str, version: int) -> None:
        """Create one replica of `version` (durable before it counts); in flight meanwhile."""
        with self._lock:
            service = self._services.get(name)
            spec = service.spec_of(version) if service else None
            if spec is None:
                return
            self._in_flight.setdefault(name, []).append(version)
        try:
            task = Task.from_dict({**spec, "service": name, "service_version": version})
            created = self._manager.submit(TaskEvent(task=task))
            with self._lock:
                self._seen[created.id] = Seen(attempt=created.attempt, placed_at=self._clock())
            log.info("service %s: replica %s of version %d created", name, created.id, version)
        finally:
            with self._lock:
                self._in_flight[name].remove(version)

    def _stop(self: "Services", task_id: str) -> None:
        try:
            self._manager.stop(task_id)
        except (Conflict, NotFound):
            pass  # it ended meanwhile: the next pass sees it

    def _remove(self: "Services", name: str) -> None:
        with self._lock:
            self._store.delete("service", name)
            self._services.pop(name, None)
        log.info("service %s removed: every replica has ended", name)
        self.on_event("removed", {"service": name})

    # ----- observations

    def _replica(self: "Services", task: Task, sound: bool, now: float) -> Replica:
        """The reconciler's view of a task, with the manager's timers (caller holds the lock).
        A replica counts as healthy only while its node answers every liveness check (`sound`):
        what a node that stopped answering last reported is not evidence of health."""
        seen = self._seen.get(task.id)
        if seen is None or seen.attempt != task.attempt:
            seen = self._seen[task.id] = Seen(attempt=task.attempt, placed_at=now)
        key = (task.attempt, task.restart_count)
        if sound and healthy(task) and task.desired_state != DESIRED_STOPPED:
            if seen.healthy_key != key or seen.healthy_since is None:
                seen.healthy_key, seen.healthy_since = key, now
        else:
            seen.healthy_key = seen.healthy_since = None
        ended = task.state.is_terminal
        if ended and seen.ended_at is None:
            seen.ended_at = now
        failed = (task.state is State.FAILED and task.desired_state != DESIRED_STOPPED
                  and not _LOST.match(task.error or ""))
        return Replica(task.id, task.service_version or 0, node=task.node, running=task.state is State.RUNNING,
                       ended=ended, failed=failed, stopping=task.desired_state == DESIRED_STOPPED,
                       healthy_since=seen.healthy_since, created_at=seen.placed_at, ended_at=seen.ended_at)

    def _service_tasks(self: "Services", name: str) -> list[Task]:
        """Every task of the service (the manager's index by service), oldest first."""
        tasks: list[Task] = []
        after = None
        while True:
            page = self._manager.query_tasks(service=name, after=after, limit=MAX_LIMIT)
            tasks += page.items
            if page.next is None:
                return tasks
            after = page.next

    def _forget_gone(self: "Services", by_service: dict[str, list[Task]]) -> None:
        known = {t.id for tasks in by_service.values() for t in tasks}
        with self._lock:
            for task_id in [k for k in self._seen if k not in known]:
                del self._seen[task_id]

    def _node_views(self: "Services") -> list[NodeView]:
        views = []
        for node in self._manager.nodes():
            draining = bool(getattr(node, "drain", None))
            capacity = getattr(node, "capacity", None) or {}
            allocated = getattr(node, "allocated", None) or {}
            shares = [allocated.get(k, 0) / capacity[k] for k in ("cpu", "memory") if capacity.get(k)]
            views.append(NodeView(node.name, draining=draining, load=max(shares, default=0.0)))
        return views


def healthy(task: Task) -> bool:
    """Running, and passing its health check when it has one."""
    return task.state is State.RUNNING and (task.health_check is None or task.healthy is True)
