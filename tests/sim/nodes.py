"""Nodes in the simulation: workers that join, leave, drain and change eligibility while
tasks with cpu requests are placed by the spread scheduler, under the state model's faults
(worker crashes, partitions, freezes, manager crashes, message faults).

The invariants added here, checked after every step:
  N1 no attempt is placed on a node that is ineligible, draining, or down (and not lost
     meanwhile);
  N2 a node's `allocated` never exceeds its capacity, and equals the sum of the requests of
     the tasks placed there;
  N3 a drain completes only when no task is placed on the node and, unless the node was cut
     off during the drain, no container runs there;
  N4 no task that has not ended is placed on a node the manager no longer has;
  N5 a task parked for want of room (not tried again at every pass) is one no node can
     take, unless room may have appeared since and the manager noted it (its next pass
     tries the parked tasks again).
"No task lost or duplicated by a drain" is the state model's invariants 1 and 4 (every
acknowledged task runs exactly once at quiescence; never two running copies of a task but
on a host cut off since), which the base checker keeps checking.
"""
from __future__ import annotations

import random
from collections import Counter

from manager.manager import Manager
from node.model import RESOURCES
from node.validation import DrainRequest, Registration
from scheduler import Spread
from scheduler.feasible import why_not
from task import Conflict, NotFound, Task, TaskEvent, Unavailable
from tests.sim import driver
from tests.sim.invariants import Checker, InvariantViolation
from tests.sim.world import DOWN_AFTER, MARGIN, World

CPUS = (0.0, 0.5, 1.0, 2.0)  # a task's cpu request; each node offers 4 (the simulated /stats)
EPSILON = 1e-6


class NodesWorld(World):
    """The simulated cluster where the last host is not configured: it joins at runtime."""

    def start_manager(self) -> None:
        initial = sorted(self.hosts)[:-1]
        self.manager = Manager(initial, self.net, Spread(random.Random(self.seed)), store=self.store,
                               down_after=DOWN_AFTER, clock=self.clock, disconnect_margin=MARGIN)

    def submit_sized(self, cpu: float) -> Task | None:
        task_id = self.new_id()
        task = Task(id=task_id, name=f"sim-{task_id[:8]}", image="busybox:latest", cpu=cpu,
                    restart_policy=self.rng.choice(("on-failure", "always")), max_restarts=self.rng.randint(1, 3))
        try:
            return self.manager_call("submit", lambda m: m.submit(TaskEvent(task=task, id=self.new_id())))
        except Unavailable:
            return None

    def node_request(self, what: str, call) -> bool:
        """An operator's request to the manager; False when refused (409, 404, shutting down)."""
        try:
            self.manager_call(what, call)
            return self.manager is not None
        except (Conflict, NotFound, Unavailable) as exc:
            self.trace(f"  {what} refused: {exc}")
            return False


class NodeChecker(Checker):
    """The state model's invariants plus N1-N4."""

    def __init__(self, world: NodesWorld) -> None:
        super().__init__(world)
        self.placements: set[tuple[str, int]] = set()
        self.drain_cut: dict[str, int] = {}  # node -> the host's cut_count when its drain was seen starting
        self.cancelled: set[str] = set()  # drains the last step cancelled (their end is not a completion)
        self.drains_completed = 0
        self.manager_seen = None  # the manager process of the previous step

    def step(self) -> None:
        super().step()
        manager = self.world.manager
        if manager is None:
            return
        nodes = {n.name: n for n in manager.nodes()}
        tasks = manager.list()
        # A placement first seen by a new manager process was made by the old one, against
        # the nodes as it saw them (the new one starts with every node down): not checked.
        self._placements(tasks, nodes, check=manager is self.manager_seen)
        self.manager_seen = manager
        self._allocation(tasks, nodes)
        self._drains(tasks, nodes)
        for task in tasks:
            if task.node is not None and not task.state.is_terminal and task.node not in nodes:
                self.fail("N4", f"task {task.id} is placed on {task.node}, which the manager no longer has")
        self.cancelled.clear()
        self._parked(manager)

    def _parked(self, manager: Manager) -> None:
        with manager._lock:
            if manager._room_freed or manager._nodes_signature() != manager._nodes_seen:
                return
            cluster = manager._cluster()
            for task_id in manager._blocked:
                task = manager._tasks[task_id]
                fits = [n.name for n in manager._nodes if why_not(task, n, cluster) is None]
                if fits:
                    self.fail("N5", f"task {task_id} is parked for want of room, but {fits} can take it")

    def fail(self, number, message: str) -> None:
        raise InvariantViolation(f"invariant {number}: {message}")

    def _placements(self, tasks, nodes, check: bool) -> None:
        for task in tasks:
            key = (task.id, task.attempt)
            if task.node is None or key in self.placements:
                continue
            self.placements.add(key)
            node = nodes.get(task.node)
            if node is None or task.attempt == 0 or not check:
                continue
            if not node.eligible or node.drain is not None:
                self.fail("N1", f"task {task.id} attempt {task.attempt} placed on {node.name}, which is "
                                f"{'draining' if node.drain else 'ineligible'}")
            if node.state != "up" and not node.lost:
                self.fail("N1", f"task {task.id} attempt {task.attempt} placed on {node.name}, which is down")

    def _allocation(self, tasks, nodes) -> None:
        sums = {name: Counter() for name in nodes}
        for task in tasks:
            if task.node in sums and not task.state.is_terminal:
                for resource in RESOURCES:
                    sums[task.node][resource] += getattr(task, resource)
        for name, node in nodes.items():
            for resource in RESOURCES:
                if node.allocated[resource] > node.capacity[resource] + EPSILON and node.capacity[resource]:
                    self.fail("N2", f"node {name} has {node.allocated[resource]} {resource} allocated of "
                                    f"{node.capacity[resource]}")
                if abs(node.allocated[resource] - sums[name][resource]) > EPSILON:
                    self.fail("N2", f"node {name} shows {node.allocated[resource]} {resource} allocated, its tasks "
                                    f"ask {sums[name][resource]}")

    def _drains(self, tasks, nodes) -> None:
        for name, node in nodes.items():
            host = self.world.hosts[name]
            if node.drain is not None:
                self.drain_cut.setdefault(name, host.cut_count)
                continue
            if name not in self.drain_cut:
                continue
            since = self.drain_cut.pop(name)
            if name in self.cancelled:
                continue
            self.drains_completed += 1
            placed = [t.id for t in tasks if t.node == name and not t.state.is_terminal]
            if placed:
                self.fail("N3", f"drain of {name} completed with tasks {placed} still placed there")
            running = [s.container_id for s in host.runtime.running()]
            if running and host.cut_count == since and not node.lost:
                self.fail("N3", f"drain of {name} completed while containers {running} still run there")


NODE_ACTIONS = ((4, "submit_sized"), (2, "drain"), (1, "cancel_drain"), (2, "eligibility"), (1.5, "remove"),
                (1.5, "join"))


def run(seed: int, steps: int = 200, verbose: bool = False) -> Counter:
    """One seeded schedule mixing the state model's actions with node actions; raises
    InvariantViolation (naming the seed and the last steps) if an invariant fails."""
    world = NodesWorld(seed, n_workers=4, verbose=verbose)
    checker = NodeChecker(world)
    done: Counter = Counter()
    actions = [(w, a) for w, a in driver.ACTIONS if a != "submit"] + list(NODE_ACTIONS)
    try:
        for number in range(steps):
            action = world.rng.choices([a for _, a in actions], [w for w, _ in actions])[0]
            world.trace(f"[{number}] t={world.clock.now:.1f} {action}")
            if action in {a for _, a in NODE_ACTIONS}:
                if _node_action(world, checker, action):
                    done[action] += 1
            else:
                driver._do(world, checker, action, done)  # noqa: SLF001 - the shared schedule
            checker.step()
        world.trace("[quiesce: every node back, eligible, nothing draining]")
        world.heal()
        _all_back(world, checker)
        world.quiesce()
        checker.final()
    except (InvariantViolation, AssertionError) as exc:
        tail = "\n".join(world.lines[-60:])
        raise InvariantViolation(f"seed {seed}: {exc}\nlast steps:\n{tail}") from None
    done["drains_completed"] = checker.drains_completed
    return done


def _node_action(world: NodesWorld, checker: NodeChecker, action: str) -> bool:
    rng, manager = world.rng, world.manager
    if manager is None:
        return False
    name = rng.choice(sorted(world.hosts))
    if action == "submit_sized":
        if len(checker.acked) >= driver.MAX_TASKS:
            return False
        task = world.submit_sized(rng.choice(CPUS))
        if task is not None:
            checker.ack_submit(task.id)
            world.trace(f"  submitted {task.id[:8]} cpu={task.cpu}")
        return task is not None
    if action == "drain":
        request = DrainRequest(deadline=rng.choice((2.0, 10.0, 60.0)), force=rng.random() < 0.2,
                               parallel=rng.choice((1, 1, 2)))
        world.trace(f"  drain {name} {request}")
        return world.node_request("drain", lambda m: m.drain(name, request))
    if action == "cancel_drain":
        world.trace(f"  cancel the drain of {name}")
        ok = world.node_request("cancel", lambda m: m.drain(name, DrainRequest(cancel=True)))
        if ok:
            checker.cancelled.add(name)
        return ok
    if action == "eligibility":
        eligible = rng.random() < 0.5
        world.trace(f"  {name} eligible={eligible}")
        return world.node_request("eligibility", lambda m: m.set_eligibility(name, eligible))
    if action == "remove":
        world.trace(f"  remove {name}")
        return world.node_request("remove", lambda m: m.remove_node(name))
    world.trace(f"  {name} joins")
    return world.node_request("join", lambda m: m.register(Registration(name, name, None, {})))


def _all_back(world: NodesWorld, checker: NodeChecker) -> None:
    """Before quiescence: every host registered, no drain, every node eligible."""
    manager = world.manager
    for name in sorted(world.hosts):
        manager.register(Registration(name, name, None, {}))
        if manager.node(name).drain is not None:
            manager.drain(name, DrainRequest(cancel=True))
            checker.cancelled.add(name)
        manager.set_eligibility(name, True)
    checker.step()
