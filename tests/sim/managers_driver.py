"""The seeded schedule of the several-managers simulation (tests/sim/managers.py): user
requests through any manager (a follower forwards writes to the leader), rounds of every
job, container exits, and faults of the leader. Checks after every step:

- the state model's invariants (tests/sim/invariants.py) on what the database holds;
- at most one manager's writes committed for any term;
- after quiescence: every acknowledged task runs exactly one container (or ended), none
  lost, none placed twice; the leader's memory holds what the database holds (D), also after
  commits that failed while it kept the lease ("flaky").
"""
from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field

from manager.manager import Manager
from scheduler.round_robin import RoundRobin
from task import Conflict, NotFound, State, Task, TaskEvent, Unavailable
from tests.sim.invariants import Checker, InvariantViolation
from tests.sim.managers import TTL, Database, SimManager
from tests.sim.world import World

N_MANAGERS = 3
MAX_TASKS = 12
WORKER_STEPS = ("engine_check", "adopt", "sync_states", "stop_disconnected", "collect_garbage", "run_pending")
ACTIONS = ((30, "submit"), (5, "stop"), (40, "round"), (6, "exit"), (3, "freeze"), (1.5, "kill"),
           (2, "cut"), (2, "flaky"), (1.5, "resign"), (4, "revive"))


@dataclass
class Cluster:
    """The world of one seed: a base World (workers, network, clock) and several managers."""

    seed: int
    verbose: bool = False
    world: World = field(init=False)
    db: Database = field(init=False)
    managers: dict[str, SimManager | None] = field(default_factory=dict)
    fences: dict = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.world = World(self.seed, n_workers=2, verbose=self.verbose)
        self.db = Database(self.world.clock)
        self.world.store = self.db.store
        self.world.manager = Manager(list(self.world.hosts), self.world.net, RoundRobin(), store=self.db.store)
        for i in range(N_MANAGERS):
            self.start(f"m{i}")

    @property
    def rng(self) -> random.Random:
        return self.world.rng

    def trace(self, line: str) -> None:
        self.world.trace(line)

    def start(self, name: str) -> None:
        self.managers[name] = SimManager(name, self.db, self.world.net, self.fences, list(self.world.hosts),
                                         self.world.clock)

    def alive(self) -> list[SimManager]:
        return [m for m in self.managers.values() if m is not None and not m.frozen_for]

    def leader(self) -> SimManager | None:
        """The manager a follower would forward to: one that leads and answers."""
        return next((m for m in self.alive() if m.leading and not m.store.cut), None)

    # ----- requests

    def submit(self, checker: Checker) -> None:
        via, target = self.rng.choice(list(self.managers)), self.leader()
        if target is None or self.managers[via] is None:
            self.stats["refused_no_leader"] += 1
            return
        task_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        event = TaskEvent(task=Task(id=task_id, name=f"sim-{task_id[:8]}", image="busybox:latest"), id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))
        try:
            acked = target.manager.submit(event)
        except Unavailable as exc:
            self.trace(f"  submit via {via} -> {target.name}: 503 {exc}")
            self.stats["refused_503"] += 1
            return
        checker.ack_submit(acked.id)
        self.stats["acknowledged"] += 1
        self.trace(f"  submit via {via} -> {target.name} (term {target.leadership.term}): {acked.id[:8]}")

    def stop(self, checker: Checker) -> None:
        target = self.leader()
        if target is None or not checker.acked:
            return
        task_id = self.rng.choice(sorted(checker.acked))
        try:
            acked = target.manager.stop(task_id)
        except (Unavailable, Conflict, NotFound):
            return
        checker.ack_stop(task_id, acked.attempt)
        self.trace(f"  stop {task_id[:8]} via {target.name}")

    # ----- time

    def round(self) -> None:
        """A second passes: every live manager claims, the leader runs its jobs, every
        worker its steps."""
        self.world.clock.advance(1.0)
        for manager in [m for m in self.managers.values() if m is not None]:
            if manager.frozen_for:
                manager.frozen_for -= 1
                if not manager.frozen_for:
                    self.thaw(manager)
                continue
            manager.leadership.tick()
            if manager.leading:
                self.jobs(manager)
        for name in self.world.hosts:
            for step in WORKER_STEPS:
                self.world.worker_step(name, step)
            host = self.world.hosts[name]
            if host.executor is not None:
                host.executor.run_all()

    def jobs(self, manager: SimManager, gated: bool = True) -> None:
        for job in ("sync_nodes", "sync_tasks", "dispatch_pending"):
            if gated and not manager.leading:
                return
            try:
                getattr(manager.manager, job)()
            except Unavailable as exc:
                self.trace(f"  {manager.name} {job}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a pass must never raise
                self.world.errors.append(f"{manager.name} {job} raised {type(exc).__name__}: {exc}")

    def thaw(self, manager: SimManager) -> None:
        """A frozen manager wakes; one that was frozen mid-pass finishes that pass first, with
        the memory and term it had: its writes and commands must be refused if it was replaced."""
        self.trace(f"  {manager.name} wakes (term {manager.leadership.term}, zombie pass: {manager.zombie})")
        if manager.zombie:
            manager.zombie = False
            before = (manager.store.refused, manager.client.refused)
            self.jobs(manager, gated=False)
            if (manager.store.refused, manager.client.refused) != before:
                self.stats["zombie_refused"] += 1

    # ----- faults of the leader

    def fault(self, kind: str) -> None:
        leader = self.leader()
        if kind == "revive":
            for name, manager in self.managers.items():
                if manager is None:
                    self.trace(f"  restart {name}")
                    self.start(name)
                elif manager.store.cut:
                    manager.store.cut = False
                    self.trace(f"  {name} reaches the database again")
            return
        if leader is None:
            return
        self.stats[kind] += 1
        if kind == "freeze":
            leader.frozen_for = self.rng.randint(2, int(TTL * 2))
            leader.zombie = self.rng.random() < 0.7
            self.trace(f"  freeze {leader.name} (term {leader.leadership.term}) for {leader.frozen_for} s")
        elif kind == "kill":
            self.managers[leader.name] = None
            self.trace(f"  kill -9 {leader.name}")
        elif kind == "cut":
            leader.store.cut = True
            self.trace(f"  cut {leader.name} from the database")
        elif kind == "flaky":
            leader.store.failing = 2 * self.rng.randint(2, 8)
            self.trace(f"  every other one of {leader.name}'s next {leader.store.failing} commits fails")
        elif kind == "resign":
            self.trace(f"  SIGTERM {leader.name}: resigns")
            leader.leadership.resign()
            self.managers[leader.name] = None

    def heal(self) -> None:
        for manager in self.managers.values():
            if manager is not None and manager.frozen_for:
                manager.frozen_for = 1
        self.fault("revive")

    # ----- checks

    def check_terms(self) -> None:
        """T: one manager's writes per term, and never a write of a term older than one that
        has already committed (a deposed leader's)."""
        if self.db.stale_commits:
            raise InvariantViolation(f"invariant T: {self.db.stale_commits[0]}")
        for term, names in self.db.commits.items():
            if len(names) > 1:
                raise InvariantViolation(f"invariant T: managers {sorted(names)} all committed writes in term {term}")

    def check_memory(self) -> None:
        """D (at quiescence): the leader's memory holds what the database holds. A change
        whose commit failed was undone, or was written again since."""
        leader = self.leader()
        if leader is None:
            return
        durable = {t.id: t for t in self.world.manager.list()}
        for task in leader.manager.list():
            stored = durable.get(task.id)
            mine = (task.state.value, task.attempt, task.node, task.desired_state)
            theirs = stored and (stored.state.value, stored.attempt, stored.node, stored.desired_state)
            if mine != theirs:
                raise InvariantViolation(f"invariant D: {leader.name} holds task {task.id} as {mine}, "
                                         f"the database as {theirs}")

    def observe(self) -> None:
        """The checker's manager reads what the database holds."""
        self.world.manager.reload()


def run(seed: int, steps: int = 150, verbose: bool = False) -> Counter:
    """One seeded schedule; raises InvariantViolation (with the trace's tail) on a violation."""
    cluster = Cluster(seed, verbose=verbose)
    checker = Checker(cluster.world)
    weights, names = [w for w, _ in ACTIONS], [a for _, a in ACTIONS]
    try:
        for number in range(steps):
            action = cluster.rng.choices(names, weights)[0]
            if action == "submit" and len(checker.acked) >= MAX_TASKS:
                action = "round"
            cluster.trace(f"[{number}] t={cluster.world.clock.now:.0f} {action}")
            if action == "submit":
                cluster.submit(checker)
            elif action == "stop":
                cluster.stop(checker)
            elif action == "round":
                cluster.round()
            elif action == "exit":
                _exit_one(cluster)
            else:
                cluster.fault(action)
            cluster.observe()
            checker.step()
            cluster.check_terms()
        cluster.trace("[quiesce]")
        cluster.heal()
        _quiesce(cluster, checker)
        cluster.observe()
        checker.final()
        cluster.check_terms()
        cluster.check_memory()
    except (InvariantViolation, AssertionError) as exc:
        tail = "\n".join(cluster.world.lines[-50:])
        raise InvariantViolation(f"seed {seed}: {exc}\nlast steps:\n{tail}") from None
    cluster.stats["terms"] = max(cluster.db.commits, default=0)
    cluster.stats["ran"] = sum(1 for t in cluster.world.manager.list() if t.started_at)
    return cluster.stats


def _exit_one(cluster: Cluster) -> None:
    running = [(h.name, s.container_id) for h in cluster.world.hosts.values() for s in h.runtime.running()]
    if running:
        name, container_id = cluster.rng.choice(running)
        cluster.world.exit_container(name, container_id, cluster.rng.choice((0, 1)))


def _quiesce(cluster: Cluster, checker: Checker, max_rounds: int = 200) -> None:
    """Rounds until a leader runs and the database and the containers stop changing."""
    same, previous = 0, None
    for _ in range(max_rounds):
        cluster.round()
        cluster.observe()
        checker.step()
        tasks = tuple((t.id, t.state.value, t.attempt, t.node) for t in cluster.world.manager.list())
        running = tuple(sorted((h.name, s.container_id) for h in cluster.world.hosts.values()
                               for s in h.runtime.running()))
        leader = cluster.leader()
        waiting = any(h.worker is not None and (h.worker.queue or h.worker._delayed)  # e.g. a restart's back-off
                      for h in cluster.world.hosts.values())
        busy = leader is None or waiting or bool(leader.manager.pending_count() or leader.manager._kills)
        current = (tasks, running)
        same = same + 1 if current == previous and not busy else 0
        previous = current
        if same >= 3:
            return
    raise AssertionError(f"no quiescence after {max_rounds} rounds: {previous}")
