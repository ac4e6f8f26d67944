"""Services on the manager: the requests (create, update, scale, rollback, delete), the
reconcile pass that turns service/reconcile.py's plans into tasks and stops, and their
persistence (kind "service" in the manager's store, through the Store protocol).

Replicas are ordinary tasks of the Manager's task DB, marked with `service` and
`service_version`; the Manager places, restarts, moves and stops them like any task. This
module only decides how many of which version should exist and which to stop. What the
reconciler needs that workers do not report (when a replica became healthy, when its attempt
was placed, when it ended) is kept here in memory on the manager's clock: after a manager
restart those timers start again from the first observation (a rollout resumes where it
was, its new replicas just wait min_healthy_time once more).
"""
from __future__ import annotations

import copy
import logging
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from service.model import PAUSED, ROLLED_BACK, RUNNING, Rollout, Service, UpdatePolicy
from service.reconcile import Desired, NodeView, Plan, Replica, reconcile
from service.validation import ServiceRequest, merge_update
from manager.queries import MAX_LIMIT
from task import DESIRED_STOPPED, Conflict, NotFound, State, Task, TaskEvent, Unavailable, utc_now

log = logging.getLogger(__name__)

REPLACE_DELAY = 5.0  # seconds an ended replica waits before it is replaced
_LOST = re.compile(r"^worker \S+ lost")  # task.lifecycle.on_node_lost's failure: the node's fault


@dataclass
class _Seen:
    """The manager's observations of one replica (its clock)."""

    attempt: int
    placed_at: float
    healthy_key: tuple[int, int] | None = None  # (attempt, restart_count) healthy_since belongs to
    healthy_since: float | None = None
    ended_at: float | None = None


class Services:
    """Owns the services (behind a lock) over a Manager's task DB and a Store.

    Request threads call create/update/scale/rollback/delete/get/list; the reconcile pass
    (`reconcile_services`) runs on every change (on_change wakes it) and periodically.
    A request is answered only once its change is durable.
    """

    def __init__(self, manager, store, clock: Callable[[], float] = time.monotonic,
                 replace_delay: float = REPLACE_DELAY) -> None:
        self._manager = manager
        self._store = store
        self._clock = clock
        self._replace_delay = replace_delay
        self._lock = threading.RLock()
        self._pass = threading.Lock()  # one reconcile pass at a time
        self._services: dict[str, Service] = {Service.from_dict(d).name: Service.from_dict(d)
                                              for d in store.list("service")}
        self._in_flight: dict[str, list[int]] = {}  # service -> versions of placements not yet recorded
        self._seen: dict[str, _Seen] = {}
        self.on_change: Callable[[], None] = lambda: None  # wakes the reconcile pass
        self.on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None  # rollout events
        if hasattr(manager, "drain_replacement"):  # the drainer's hook (manager/nodes/drain.py)
            manager.drain_replacement = self.take_over_drained
        if self._services:
            log.info("loaded %d service(s) from the store", len(self._services))

    def reload(self) -> None:
        """Replace the services in memory by the store's (several managers: a follower's
        refresh of its reads, a new leader's take-over), as a restart would."""
        services = {Service.from_dict(d).name: Service.from_dict(d) for d in self._store.list("service")}
        with self._lock:
            self._services = services
            self._in_flight.clear()
            self._seen.clear()

    @property
    def manager(self):
        """The Manager whose task DB holds the replicas."""
        return self._manager

    # ----- requests

    def create(self, request: ServiceRequest) -> dict[str, Any]:
        """Record a new service (version 1); raises Conflict if the name is taken."""
        self._check_accepting()
        now = utc_now()
        service = Service(name=request.name or "", replicas=1 if request.replicas is None else request.replicas,
                          task=request.task, update=merge_update(UpdatePolicy(), request.update),
                          created_at=now, updated_at=now)
        service.version = service.add_version(request.task, now)
        with self._lock:
            if service.name in self._services:
                raise Conflict(f"service {service.name} already exists")
            self._put(service)
            self._services[service.name] = service
        log.info("service %s created: %d replica(s) of %s", service.name, service.replicas, service.task["image"])
        self.on_change()
        return self.get(service.name)

    def update(self, name: str, request: ServiceRequest) -> dict[str, Any]:
        """A new task spec starts a rollout to a new version; the same spec only changes the
        replicas (if given) and the update policy. Omitting replicas keeps the count."""
        self._check_accepting()
        if request.name is not None and request.name != name:
            raise Conflict(f"name {request.name} does not match the service {name} (a service cannot be renamed)")
        with self._lock:
            service = self._live(name)
            changed = copy.deepcopy(service)
            changed.update = merge_update(service.update, request.update)
            if request.replicas is not None and request.replicas != service.replicas:
                if service.rollout_running and request.task == service.task:
                    raise Conflict(f"service {name}: a rollout is running; scale it once it has ended")
                changed.replicas = request.replicas
            if request.task != service.task:
                self._new_version(changed, request.task)
            changed.updated_at = utc_now()
            self._put(changed)
            self._services[name] = changed
        self.on_change()
        return self.get(name)

    def _new_version(self, service: Service, task: dict[str, Any]) -> None:
        rollout = service.rollout
        good = rollout.from_version if rollout is not None and rollout.state in (RUNNING, PAUSED) else service.version
        number = service.add_version(task, utc_now())
        service.rollout = Rollout(good, number, RUNNING, 0, service.replicas)
        service.version, service.task = number, dict(task)
        log.info("service %s: rolling out version %d (from %d)", service.name, number, good)
        self.on_event("rollout_started", {"service": service.name, "from_version": good, "to_version": number})

    def apply(self, request: ServiceRequest) -> tuple[dict[str, Any], bool]:
        """Create the service, or update it if it exists (the seed API's upsert); returns
        (the service, whether it was created)."""
        with self._lock:
            exists = request.name in self._services
        if not exists:
            try:
                return self.create(request), True
            except Conflict:
                pass  # created meanwhile: update it
        return self.update(request.name or "", request), False

    def scale(self, name: str, replicas: int) -> dict[str, Any]:
        """Set the desired replicas; Conflict while a rollout is running."""
        self._check_accepting()
        with self._lock:
            service = self._live(name)
            if service.rollout_running:
                raise Conflict(f"service {name}: a rollout is running; scale it once it has ended")
            changed = replace(service, replicas=replicas, updated_at=utc_now())
            self._put(changed)
            self._services[name] = changed
        log.info("service %s scaled to %d", name, replicas)
        self.on_change()
        return self.get(name)

    def rollback(self, name: str) -> dict[str, Any]:
        """Back to the version the last rollout started from, at once."""
        self._check_accepting()
        with self._lock:
            service = self._live(name)
            rollout = service.rollout
            if rollout is None:
                raise Conflict(f"service {name} has no previous version")
            if rollout.state == ROLLED_BACK:
                raise Conflict(f"service {name} is already rolled back to version {service.version}")
            spec = service.spec_of(rollout.from_version)
            if spec is None:
                raise Conflict(f"service {name}: version {rollout.from_version} is no longer kept")
            changed = replace(service, version=rollout.from_version, task=spec, updated_at=utc_now(),
                              rollout=rollout.with_state(ROLLED_BACK, "rolled back by request"))
            self._put(changed)
            self._services[name] = changed
        log.info("service %s rolled back to version %d", name, rollout.from_version)
        self.on_event("rolled_back", {"service": name, "version": rollout.from_version, "reason": "request"})
        self.on_change()
        return self.get(name)

    def delete(self, name: str) -> dict[str, Any]:
        """Stop every replica; the service is gone once they have ended."""
        self._check_accepting()
        with self._lock:
            service = self._service(name)
            if not service.deleting:
                changed = replace(service, deleting=True, updated_at=utc_now())
                self._put(changed)
                self._services[name] = changed
        log.info("service %s: delete requested", name)
        self.on_change()
        return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        """The service with its observed counts; raises NotFound."""
        with self._lock:
            service = copy.deepcopy(self._service(name))
        return self._view(service, self.tasks(name))

    def list(self) -> list[dict[str, Any]]:
        """Every service with its observed counts, oldest first."""
        with self._lock:
            services = [copy.deepcopy(s) for s in self._services.values()]
        return [self._view(s, self._service_tasks(s.name)) for s in services]

    def tasks(self, name: str) -> list[Task]:
        """The service's replicas (ended ones included), oldest first; raises NotFound."""
        with self._lock:
            self._service(name)
        return self._service_tasks(name)

    def versions(self, name: str) -> list[dict[str, Any]]:
        """The kept versions, oldest first, the current one marked."""
        with self._lock:
            service = self._service(name)
            return [{**copy.deepcopy(v), "current": v["version"] == service.version} for v in service.versions]

    def _view(self, service: Service, tasks: list[Task]) -> dict[str, Any]:
        data = service.to_dict()
        del data["versions"]
        live = [t for t in tasks if t.state is State.RUNNING and t.desired_state != DESIRED_STOPPED]
        data["running"] = len(live)
        data["healthy"] = sum(1 for t in live if _healthy(t))
        return data

    def take_over_drained(self, task: Task, node: str) -> bool:
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

    # ----- the reconcile pass

    def reconcile_services(self) -> None:
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

    def _reconcile_one(self, name: str, tasks: list[Task], nodes: list[NodeView], sound: set[str],
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

    def _record(self, service: Service, plan: Plan) -> None:
        """Persist the version and rollout the plan says (caller holds the lock)."""
        if plan.version == service.version and plan.rollout == service.rollout:
            return
        before = service.rollout
        changed = replace(service, version=plan.version, rollout=plan.rollout,
                          task=service.spec_of(plan.version) or service.task)
        if (before and before.state) != (plan.rollout and plan.rollout.state) or plan.version != service.version:
            changed.updated_at = utc_now()
            self._announce(service.name, before, plan)
        self._put(changed)
        self._services[service.name] = changed

    def _announce(self, name: str, before: Rollout | None, plan: Plan) -> None:
        rollout = plan.rollout
        if rollout is None:
            return
        log.log(logging.INFO if rollout.state != PAUSED else logging.WARNING,
                "service %s: rollout %d -> %d %s%s", name, rollout.from_version, rollout.to_version,
                rollout.state, f": {rollout.reason}" if rollout.reason else "")
        self.on_event(f"rollout_{rollout.state}", {"service": name, **rollout.to_dict()})

    def _place(self, name: str, version: int) -> None:
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
                self._seen[created.id] = _Seen(attempt=created.attempt, placed_at=self._clock())
            log.info("service %s: replica %s of version %d created", name, created.id, version)
        finally:
            with self._lock:
                self._in_flight[name].remove(version)

    def _stop(self, task_id: str) -> None:
        try:
            self._manager.stop(task_id)
        except (Conflict, NotFound):
            pass  # it ended meanwhile: the next pass sees it

    def _remove(self, name: str) -> None:
        with self._lock:
            self._store.delete("service", name)
            self._services.pop(name, None)
        log.info("service %s removed: every replica has ended", name)
        self.on_event("service_removed", {"service": name})

    # ----- observations

    def _replica(self, task: Task, sound: bool, now: float) -> Replica:
        """The reconciler's view of a task, with the manager's timers (caller holds the lock).
        A replica counts as healthy only while its node answers every liveness check (`sound`):
        what a node that stopped answering last reported is not evidence of health."""
        seen = self._seen.get(task.id)
        if seen is None or seen.attempt != task.attempt:
            seen = self._seen[task.id] = _Seen(attempt=task.attempt, placed_at=now)
        key = (task.attempt, task.restart_count)
        if sound and _healthy(task) and task.desired_state != DESIRED_STOPPED:
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

    def _service_tasks(self, name: str) -> list[Task]:
        """Every task of the service (the manager's index by service), oldest first."""
        tasks: list[Task] = []
        after = None
        while True:
            page = self._manager.query_tasks(service=name, after=after, limit=MAX_LIMIT)
            tasks += page.items
            if page.next is None:
                return tasks
            after = page.next

    def _forget_gone(self, by_service: dict[str, list[Task]]) -> None:
        known = {t.id for tasks in by_service.values() for t in tasks}
        with self._lock:
            for task_id in [k for k in self._seen if k not in known]:
                del self._seen[task_id]

    def _node_views(self) -> list[NodeView]:
        views = []
        for node in self._manager.nodes():
            draining = bool(getattr(node, "drain", None))
            capacity = getattr(node, "capacity", None) or {}
            allocated = getattr(node, "allocated", None) or {}
            shares = [allocated.get(k, 0) / capacity[k] for k in ("cpu", "memory") if capacity.get(k)]
            views.append(NodeView(node.name, draining=draining, load=max(shares, default=0.0)))
        return views

    # ----- helpers

    def _put(self, service: Service) -> None:
        """Write the service durably (caller holds the lock); 503 if the store fails."""
        try:
            self._store.put("service", service.name, service.to_dict())
        except Exception as exc:
            raise Unavailable(f"service {service.name}: the change could not be recorded: {exc}") from None

    def _service(self, name: str) -> Service:
        service = self._services.get(name)
        if service is None:
            raise NotFound(f"service {name[:64]} not found")
        return service

    def _live(self, name: str) -> Service:
        service = self._service(name)
        if service.deleting:
            raise Conflict(f"service {name} is being deleted")
        return service

    def _check_accepting(self) -> None:
        if not self._manager.accepting:
            raise Unavailable("manager is shutting down")


def _healthy(task: Task) -> bool:
    """Running, and passing its health check when it has one."""
    return task.state is State.RUNNING and (task.health_check is None or task.healthy is True)
