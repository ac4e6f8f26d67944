"""Services on the manager: the requests (create, update, scale, rollback, delete) and their
persistence (kind "service" in the manager's store, through the Store protocol); the
reconcile pass is manager/service_pass.py.

Replicas are ordinary tasks of the Manager's task DB, marked with `service` and
`service_version`; the Manager places, restarts, moves and stops them like any task. The
services only decide how many of which version should exist and which to stop.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable

from manager.service_pass import ServicePass, Seen, healthy
from service.model import PAUSED, ROLLED_BACK, RUNNING, Rollout, Service, UpdatePolicy
from service.validation import ServiceRequest, merge_update
from task import DESIRED_STOPPED, Conflict, NotFound, State, Task, Unavailable, utc_now

log = logging.getLogger(__name__)

REPLACE_DELAY = 5.0  # seconds an ended replica waits before it is replaced


class Services(ServicePass):
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
        self._seen: dict[str, Seen] = {}
        self.on_change: Callable[[], None] = lambda: None  # wakes the reconcile pass
        self.on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None  # rollout events
        events = getattr(manager, "events", None)  # manager/events.py's log, where the manager has one
        if events is not None:
            self.on_event = lambda kind, data: events.publish("service", kind, data)
        if hasattr(manager, "purge_blocker"):  # the retention's veto (manager/retention.py)
            manager.purge_blocker = self.purge_blocker
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
        self.on_event("created", {"service": service.name, "version": service.version, "replicas": service.replicas})
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
        self.on_event("rollout", {"service": service.name, **service.rollout.to_dict()})

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
        self.on_event("scaled", {"service": name, "replicas": replicas})
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
        self.on_event("rollout", {"service": name, **changed.rollout.to_dict()})
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
        self.on_event("deleting", {"service": name})
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
        data["healthy"] = sum(1 for t in live if healthy(t))
        return data

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
