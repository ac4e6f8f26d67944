"""Services in the simulation: a World whose manager process also runs the services (rebuilt
from the store after a manager crash), a seeded scenario of service requests and faults, and
the services' invariants.

Replica health in the simulation is "running": a bad version's containers exit (code 1) as
soon as they run, so its replicas never stay healthy for min_healthy_time and end failed once
their restarts are used up.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from manager.services import Services
from service.model import COMPLETED, PAUSED, ROLLED_BACK, RUNNING
from service.validation import ServiceRequest
from task import Conflict, NotFound, Unavailable
from tests.sim.invariants import Checker, InvariantViolation
from tests.sim.world import World

GOOD, BAD = "busybox:good", "busybox:bad"
NAME = "web"


class ServiceWorld(World):
    """The simulated cluster with services on the manager."""

    services: Services | None = None

    def start_manager(self) -> None:
        super().start_manager()
        self.services = Services(self.manager, self.store, clock=self.clock, replace_delay=2.0)

    def crash_manager(self) -> None:
        super().crash_manager()
        self.services = None

    def call(self, fn):
        """A user's request to the services (None: refused or the manager is down)."""
        if self.services is None:
            return None
        try:
            return fn(self.services)
        except (Conflict, NotFound, Unavailable) as exc:
            self.trace(f"  request refused: {exc}")
            return None

    def round(self) -> None:
        super().round()
        if self.manager is not None and self.services is not None:
            self.manager_call("reconcile_services", lambda m: self.services.reconcile_services())
            if self.manager is None:
                self.services = None
        self.crash_bad()

    def crash_bad(self) -> None:
        """Every running container of the bad version exits 1."""
        for host in self.hosts.values():
            for status in host.runtime.running():
                if '"busybox:bad"' in status.labels.get("orca.spec", ""):
                    self.exit_container(host.name, status.container_id, 1)

    def fingerprint(self) -> tuple:
        tasks, running, waiting = super().fingerprint()
        service = None
        if self.services is not None:
            listed = self.services.list()
            service = tuple((s["version"], s["replicas"], s["rollout"] and s["rollout"]["state"]) for s in listed)
            waiting = waiting or any((s["rollout"] or {}).get("state") == RUNNING or s["deleting"] for s in listed)
            waiting = waiting or any(n.drain is not None for n in self.manager.nodes())
        return (tasks, service), running, waiting


def spec(image: str) -> dict:
    return {"name": NAME, "image": image, "command": ["serve"], "env": {}, "cpu": 0.0, "memory": 0, "disk": 0,
            "ports": {}, "restart_policy": "on-failure", "max_restarts": 1, "health_check": None,
            "stop_after_disconnect": None, "constraints": []}


def request(image: str, replicas: int | None = None, update: dict | None = None) -> ServiceRequest:
    return ServiceRequest(NAME, replicas, spec(image), update)


@dataclass
class ServiceChecker:
    """The services' invariants, on top of the state model's (tasks of the service are
    registered with the base Checker as if a user had submitted and stopped them)."""

    world: ServiceWorld
    base: Checker = field(init=False)
    disturbed: bool = False  # a fault hit this phase: the rollout bounds are not promised
    paused_tasks: set[str] | None = None  # the service's tasks since its rollout paused
    paused_running: set[str] = field(default_factory=set)  # its live tasks when it paused
    checks: int = 0

    def __post_init__(self) -> None:
        self.base = Checker(self.world)

    def step(self) -> None:
        """After every round: the base invariants, the rollout bounds, a paused rollout."""
        self.checks += 1
        world = self.world
        if world.manager is None or world.services is None:
            self.base.step()
            return
        for task in world.manager.list():
            if task.service:
                self.base.ack_submit(task.id)
                if task.desired_state == "stopped":
                    self.base.ack_stop(task.id, task.attempt)
        self.base.step()
        try:
            service = world.services.get(NAME)
        except NotFound:
            return
        self._bounds(service)
        self._paused(service)

    def running_containers(self) -> int:
        tasks = {t.id: t for t in self.world.manager.list() if t.service == NAME}
        return sum(1 for h in self.world.hosts.values() for s in h.runtime.running() if s.task_id in tasks)

    def _bounds(self, service: dict) -> None:
        rollout, policy = service["rollout"], service["update"]
        if self.disturbed or rollout is None or rollout["state"] != RUNNING or service["deleting"]:
            return
        n, p, running = service["replicas"], policy["max_parallel"], self.running_containers()
        if policy["order"] == "start-first" and running > n + p:
            raise InvariantViolation(f"services: {running} replicas run during a start-first rollout of {n} "
                                     f"(max_parallel {p})")
        if policy["order"] == "stop-first" and running < n - p:
            raise InvariantViolation(f"services: only {running} replicas run during a stop-first rollout of {n} "
                                     f"(max_parallel {p})")

    def _paused(self, service: dict) -> None:
        """While paused, the rollout replaces nothing: no replica of the new version is
        created, and (while no fault hits) none is stopped but a surplus (a scale-down, a drained
        node's replacement)."""
        rollout = service["rollout"]
        if rollout is None or rollout["state"] != PAUSED:
            self.paused_tasks = None
            return
        tasks = [t for t in self.world.manager.list() if t.service == NAME]
        live = {t.id for t in tasks if not t.state.is_terminal and t.desired_state == "running"}
        if self.paused_tasks is None:
            self.paused_tasks, self.paused_running = {t.id for t in tasks}, live
            return
        for task in tasks:
            if task.id not in self.paused_tasks and task.service_version == rollout["to_version"]:
                raise InvariantViolation(f"services: paused rollout created replica {task.id} of version "
                                         f"{rollout['to_version']}")
            # stops only of a surplus (a drain's replacements, a scale-down), never below the count
            if task.id in self.paused_running and task.desired_state == "stopped" and len(live) < service["replicas"] \
                    and not self.disturbed:
                raise InvariantViolation(f"services: paused rollout stopped replica {task.id} on {task.node} "
                                         f"({task.state.value}, version {task.service_version}; "
                                         f"nodes {[(n.name, n.eligible, n.drain, n.state) for n in self.world.manager.nodes()]})")
        self.paused_tasks |= {t.id for t in tasks}

    def drained(self) -> None:
        """A node whose drain has completed holds no replica of the service."""
        for node in self.world.manager.nodes():
            if node.eligible or node.drain is not None:
                continue
            left = [t.id for t in self.world.manager.list() if t.service == NAME and t.node == node.name
                    and not t.state.is_terminal]
            if left:
                raise InvariantViolation(f"services: drained node {node.name} still holds replicas {left}")

    def final(self, expect: str | None, version: int | None, deleted: bool) -> None:
        """At quiescence: the base invariants; the running count is the desired count, on the
        version the rollout ended on (rollback: the previous one)."""
        self.base.final()
        world = self.world
        if deleted:
            if world.services.list() or self.running_containers():
                raise InvariantViolation("services: a deleted service or its replicas remain")
            return
        service = world.services.get(NAME)
        running = self.running_containers()
        if running != service["replicas"] or service["running"] != service["replicas"]:
            raise InvariantViolation(f"services: {running} containers / {service['running']} running replicas, "
                                     f"{service['replicas']} desired")
        rollout = service["rollout"]
        if expect is not None and (rollout is None or rollout["state"] != expect):
            raise InvariantViolation(f"services: rollout {rollout} at quiescence, expected {expect}")
        if expect in (COMPLETED, ROLLED_BACK):
            versions = {t.service_version for t in world.manager.list()
                        if t.service == NAME and t.state.value == "running"}
            if versions != {version} or service["version"] != version:
                raise InvariantViolation(f"services: replicas of versions {versions} run, service at version "
                                         f"{service['version']}, expected {version}")
