"""Retention in the simulation: the random schedule of tests/sim/driver.py (faults, crashes,
restarts of the manager and workers) with three more actions: a user's purge of a task
(Manager.purge, DELETE ?purge=true), the manager's periodic purge pass and the workers' own.

Invariants, checked after every step on top of the model's:
  R1  only a finished task is purged (the purge's answer is terminal, and it was terminal
      at the manager when last observed);
  R2  a purged task never comes back: not in the manager's memory (across its crashes and
      restarts), not in the store (task or event record);
  R3  a purged task is never sent to a worker again (no run order for it after its purge);
and at quiescence, after the retention has passed and every pass ran: the manager, its index,
the store and every worker hold only tasks that have not finished (memory stays bounded), and
no container of a purged task runs (the model's invariant 5).

    ORCA_RETENTION_SIM_SEEDS=200 python -m pytest tests/sim/test_retention_sim.py -q   # more seeds
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter

import pytest

from task import Conflict, NotFound, State, Unavailable
from tests.sim import driver
from tests.sim.events_check import EventChecker
from tests.sim.invariants import Checker, InvariantViolation
from tests.sim.world import World

SEEDS = int(os.environ.get("ORCA_RETENTION_SIM_SEEDS", "12"))
RETENTION = 30.0  # seconds of simulated time
# The simulated network delays a message without bound (a run order sent before a purge may
# arrive minutes later); a tombstone outlives any message in flight only if it outlives the
# run. The week below buries them.
TOMBSTONE_KEEP = 1e9
ACTIONS = driver.ACTIONS + ((3, "purge"), (2, "purge_pass"), (2, "worker_purge"))


@pytest.fixture(autouse=True)
def quiet_logs():
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


class RetentionCheck:
    """What was purged, and the invariants R1-R3."""

    def __init__(self, world: World, checker: Checker) -> None:
        self.world, self.checker = world, checker
        self.purged: set[str] = set()
        self.sent_after_purge: list[str] = []
        self.counts: Counter = Counter()
        net = world.net
        send_orders, send_event = net.send_orders, net.send_event

        def orders(address, events):
            self._check_sends(events)
            return send_orders(address, events)

        def event(address, one):
            self._check_sends([one])
            return send_event(address, one)
        net.send_orders, net.send_event = orders, event

    def _check_sends(self, events) -> None:
        for event in events:
            if event.task.id in self.purged and event.state is not State.COMPLETED:
                self.sent_after_purge.append(event.task.id)

    def forget(self, task_id: str, how: str) -> None:
        """A purge was answered (or the pass purged it): the user no longer expects the task."""
        before = self.checker.last.get(task_id)
        if before is not None and not before[0].is_terminal:
            raise InvariantViolation(f"R1: task {task_id} was purged ({how}) while {before[0].value}")
        self.purged.add(task_id)
        self.checker.acked.discard(task_id)
        self.checker.stop_acked.pop(task_id, None)
        self.counts[how] += 1

    def step(self) -> None:
        if self.sent_after_purge:
            raise InvariantViolation(f"R3: purged task {self.sent_after_purge[0]} was sent to a worker again")
        store = self.world.store
        for task_id in self.purged:
            if store.get("task", task_id) is not None:
                raise InvariantViolation(f"R2: purged task {task_id} is in the store")
        if any(e["task_id"] in self.purged for e in store.list("event")):
            raise InvariantViolation("R2: a purged task's event record is in the store")
        manager = self.world.manager
        if manager is None:
            return
        back = {t.id for t in manager.list()} & self.purged
        if back:
            raise InvariantViolation(f"R2: purged task {sorted(back)[0]} is at the manager again")


def configure(world: World, wall) -> None:
    """Retention on the manager (each incarnation) and every worker host (each boot)."""
    for host in world.hosts.values():
        host.retention, host.wall_clock = RETENTION, wall
        if host.purger is not None:
            host.purger.retention = RETENTION
            host.purger._wall_clock = wall
    if world.manager is not None:
        world.manager.retention, world.manager.wall_clock = RETENTION, wall
        world.manager.tombstone_keep = TOMBSTONE_KEEP


def act(world: World, check: RetentionCheck, action: str) -> bool:
    """The retention actions; False for any other action."""
    rng = world.rng
    if action == "purge":
        candidates = sorted(check.checker.acked)
        ended = [i for i in candidates if (last := check.checker.last.get(i)) and last[0].is_terminal]
        candidates = ended if ended and rng.random() < 0.8 else candidates  # mostly ones that can go
        if not candidates:
            return True
        task_id = rng.choice(candidates)
        try:
            task = world.manager_call("purge", lambda m: m.purge(task_id))
        except (Conflict, NotFound, Unavailable) as exc:
            world.trace(f"  purge of {task_id[:8]} refused: {exc}")
            return True
        if task is not None:
            if not task.state.is_terminal:
                raise InvariantViolation(f"R1: the purge of {task_id} answered a {task.state.value} task")
            world.trace(f"  purged {task_id[:8]} ({task.state.value})")
            check.forget(task_id, "user")
        return True
    if action == "purge_pass":
        manager = world.manager
        before = {t.id for t in manager.list()} if manager else set()
        world.manager_call("purge_finished", lambda m: m.purge_finished())
        if world.manager is not None:
            for task_id in before - {t.id for t in world.manager.list()}:
                check.forget(task_id, "pass")
        return True
    if action == "worker_purge":
        host = world.hosts[rng.choice(sorted(world.hosts))]
        if host.runs and host.purger is not None:
            check.counts["worker"] += host.purger.purge_finished()
        return True
    return False


def run(seed: int, steps: int = 300) -> tuple[RetentionCheck, World]:
    world = World(seed, n_workers=3, gc_wall_clock=1e12 if seed % 2 else 0.0)
    world.max_tasks = 10_000  # churn: tasks keep coming as others are purged
    offset = time.time() - world.clock.now  # the wall clock moves with simulated time

    def wall() -> float:
        return offset + world.clock.now
    checker, events = Checker(world), EventChecker(world)
    check = RetentionCheck(world, checker)
    configure(world, wall)
    faults: Counter = Counter()
    try:
        for number in range(steps):
            action = world.rng.choices([a for _, a in ACTIONS], [w for w, _ in ACTIONS])[0]
            world.trace(f"[{number}] t={world.clock.now:.1f} {action}")
            if action == "submit" and len(checker.acked) >= 12:
                action = "tick"  # keep a bounded crowd alive: the rest is churn
            if not act(world, check, action):
                driver._do(world, checker, action, faults)
            configure(world, wall)  # a restarted manager or worker gets the setting again
            checker.step()
            events.step()
            check.step()
        world.quiesce()
        configure(world, wall)
        checker.final()
        check.step()
        settle(world, check, checker)
    except (InvariantViolation, AssertionError) as exc:
        tail = "\n".join(world.lines[-60:])
        raise InvariantViolation(f"seed {seed}: {exc}\nlast steps:\n{tail}") from None
    return check, world


def settle(world: World, check: RetentionCheck, checker: Checker) -> None:
    """After the retention: every finished task is purged everywhere; what is left is bounded
    by the tasks that still run."""
    world.clock.advance(RETENTION + 1)
    for _ in range(3):
        world.round()  # the workers' feeds are read (the acknowledgement) and their jobs run
        before = {t.id for t in world.manager.list()}
        world.manager.purge_finished()
        for task_id in before - {t.id for t in world.manager.list()}:
            check.forget(task_id, "pass")
        for host in world.hosts.values():
            check.counts["worker"] += host.purger.purge_finished()
    check.step()
    manager = world.manager
    tasks = manager.list()
    finished = [t.id for t in tasks if t.state.is_terminal]
    assert not finished, f"finished tasks left after the retention: {finished}"
    assert sum(manager.task_counts().values()) == len(tasks) == len(manager._index)
    assert world.store.count("task") == len(tasks)
    assert world.store.count("event") <= len(tasks)
    for host in world.hosts.values():
        left = [t.id for t in host.worker.db.list() if t.state.is_terminal]
        assert not left, f"worker {host.name} still holds finished tasks {left}"
    checker.final()  # no container of a purged task runs, every live task runs once


@pytest.mark.parametrize("seed", range(SEEDS))
def test_purged_tasks_never_come_back_and_memory_stays_bounded(seed: int):
    check, world = run(20_000 + seed)
    assert check.counts["user"] + check.counts["pass"] > 0  # the schedule really purged tasks


def test_a_week_of_churn_keeps_the_manager_store_and_workers_bounded():
    """Tasks that finish keep arriving for a simulated week; at every hour the manager and the
    workers hold no more than the tasks of the last retention period plus those running."""
    world = World(7, n_workers=3, gc_wall_clock=1e12)
    offset = time.time() - world.clock.now

    def wall() -> float:
        return offset + world.clock.now
    checker = Checker(world)
    check = RetentionCheck(world, checker)
    configure(world, wall)
    world.manager.tombstone_keep = 60.0
    most = 0
    for hour in range(7 * 24):
        for _ in range(5):  # five short tasks an hour
            task = world.submit("no", 0)
            checker.ack_submit(task.id)
        world.round()  # placed and started
        for host in world.hosts.values():
            for status in host.runtime.running():
                world.exit_container(host.name, status.container_id, 0)
        world.round()  # their ends are read
        world.clock.advance(3600 - 2)
        world.round()
        for task in world.manager.list():
            if task.state.is_terminal:
                checker.acked.discard(task.id)
        world.manager.purge_finished()
        for host in world.hosts.values():
            host.purger.purge_finished()
        check.step()
        held = max(len(world.manager.list()), world.store.count("task"),
                   *(len(h.worker.db.list()) for h in world.hosts.values()))
        most = max(most, held)
    assert most <= 10, f"{most} tasks held at once over a week of 840"  # an hour's worth, twice at most
    assert world.store.count("event") <= 10
    assert world.store.count("purged") <= 10 and len(world.manager._tombstones) <= 10  # tombstones are buried
