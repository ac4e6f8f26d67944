"""Services in the simulation: per seed, a service is created, scaled up and down, updated to
a healthy version and to a failing one (pause or rollback), rolled back and sometimes deleted,
while faults hit during the rollouts: workers crash or are cut off (and declared lost),
containers exit, the manager crashes mid-rollout and restarts from its store. The state
model's invariants hold after every round, plus the services' own (tests/sim/services.py).

    ORCA_SIM_SERVICE_SEEDS=2000 python -m pytest tests/sim/test_services_sim.py -q
"""
from __future__ import annotations

import logging
import os

import pytest

from service.model import COMPLETED, PAUSED, ROLLED_BACK
from node.validation import DrainRequest
from tests.sim.invariants import InvariantViolation
from tests.sim.services import BAD, GOOD, NAME, ServiceChecker, ServiceWorld, request

SEEDS = int(os.environ.get("ORCA_SIM_SERVICE_SEEDS", "120"))
CASES = 4


def run(seed: int, verbose: bool = False) -> dict:
    """One seeded scenario; raises InvariantViolation naming the seed and the last steps."""
    world = ServiceWorld(seed, n_workers=3, verbose=verbose)
    world.sync_nodes()
    rng, checker = world.rng, ServiceChecker(world)
    n = rng.randint(2, 5)
    update = {"max_parallel": rng.randint(1, 2), "min_healthy_time": rng.choice((1, 3)),
              "healthy_deadline": rng.choice((6, 15)), "on_failure": rng.choice(("pause", "rollback")),
              "order": rng.choice(("stop-first", "start-first"))}
    stats = {"faults": 0}
    try:
        world.trace(f"[create] {n} replicas, {update}")
        assert world.call(lambda s: s.create(request(GOOD, n, update)))
        phase(world, checker, stats, faults=False)
        checker.final(None, 1, False)
        for replicas in (rng.randint(0, 7), rng.randint(1, 5)):
            world.trace(f"[scale] {replicas}")
            world.call(lambda s: s.scale(NAME, replicas))
            phase(world, checker, stats, faults=rng.random() < 0.5)
        world.trace("[update] a healthy version")
        good = world.call(lambda s: s.update(NAME, request(GOOD + "2")))["version"]
        if phase(world, checker, stats, faults=rng.random() < 0.6):
            # a replica cut off by a fault may miss its healthy_deadline: then the rollout fails
            rollout = world.services.get(NAME)["rollout"]
            if rollout["state"] != COMPLETED:
                world.trace(f"[a fault failed the healthy rollout: {rollout}]")
                good = 1
                if rollout["state"] == PAUSED:
                    world.call(lambda s: s.rollback(NAME))
                    phase(world, checker, stats, faults=False)
                checker.final(ROLLED_BACK, good, False)
        else:
            checker.final(COMPLETED, good, False)
        world.trace("[update] a failing version")
        world.call(lambda s: s.update(NAME, request(BAD)))
        phase(world, checker, stats, faults=rng.random() < 0.6)
        expect = PAUSED if update["on_failure"] == "pause" else ROLLED_BACK
        if world.services.get(NAME)["replicas"] == 0:
            expect = COMPLETED  # nothing to fail with no replicas
        checker.final(expect, good, False)
        if expect == PAUSED:
            world.trace("[rollback]")
            assert world.call(lambda s: s.rollback(NAME))
            phase(world, checker, stats, faults=rng.random() < 0.5)
            checker.final(ROLLED_BACK, good, False)
        if rng.random() < 0.5:
            world.trace("[delete]")
            world.call(lambda s: s.delete(NAME))
            phase(world, checker, stats, faults=rng.random() < 0.5)
            checker.final(None, None, True)
    except (InvariantViolation, AssertionError) as exc:
        tail = "\n".join(world.lines[-80:])
        raise InvariantViolation(f"seed {seed}: {exc}\nreplay: ORCA_SIM_SEED={seed} python -m pytest "
                                 f"tests/sim/test_services_sim.py -k replay -s\nlast steps:\n{tail}") from None
    stats["checks"] = checker.checks
    return stats


def phase(world: ServiceWorld, checker: ServiceChecker, stats: dict, faults: bool) -> bool:
    """Rounds after a request, with faults if asked, then heal and run until quiet. Returns
    whether a fault was injected."""
    rng = world.rng
    checker.disturbed = disturbed = False
    for number in range(rng.randint(3, 25)):
        if faults and rng.random() < 0.25:
            checker.disturbed = disturbed = True
            stats["faults"] += 1
            fault(world, rng)
        world.trace(f"[round] t={world.clock.now:.0f}")
        world.round()
        checker.step()
    world.trace("[quiesce]")
    world.quiesce()
    checker.disturbed = False
    checker.step()
    checker.drained()
    for node in world.manager.nodes():  # drained nodes take work again in the next phase
        if not node.eligible:
            world.manager.set_eligibility(node.name, True)
    return disturbed


def fault(world: ServiceWorld, rng) -> None:
    name = rng.choice(sorted(world.hosts))
    kind = rng.choice(("crash_worker", "partition", "crash_manager", "exit", "lose", "drain"))
    world.trace(f"  fault: {kind} {name}")
    host = world.hosts[name]
    if kind == "crash_worker" and host.worker is not None:
        world.crash_worker(name)
    elif kind == "partition":
        host.partitioned, host.cut_count = True, host.cut_count + 1
    elif kind == "lose":  # cut off long enough to be declared lost: its replicas move
        host.partitioned, host.cut_count = True, host.cut_count + 1
        for _ in range(4):
            world.clock.advance(1.0)
            world.sync_nodes()
    elif kind == "crash_manager" and world.manager is not None:
        world.crash_manager()
        world.round()  # time passes with no manager
        world.start_manager()
    elif kind == "drain" and world.manager is not None and sum(
            1 for n in world.manager.nodes() if n.eligible and n.name != name) >= 2:
        # its replicas are replaced first, then stopped (two other nodes stay to take them)
        deadline = rng.choice((5.0, 120.0))
        world.manager_call("drain", lambda m: m.drain(name, DrainRequest(deadline=deadline)))
    elif kind == "exit":
        running = [(h.name, s.container_id) for h in world.hosts.values() for s in h.runtime.running()]
        if running:
            where, container = rng.choice(sorted(running))
            world.exit_container(where, container, rng.choice((0, 1)))


@pytest.fixture(autouse=True, scope="module")
def quiet_logs():
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("case", range(CASES))
def test_services_batch(case: int):
    per = -(-SEEDS // CASES)
    failures, faults = [], 0
    for seed in range(case * per, min(SEEDS, (case + 1) * per)):
        try:
            faults += run(seed)["faults"]
        except InvariantViolation as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures[:3])
    assert faults > 0  # the batch did inject faults


@pytest.mark.skipif("ORCA_SIM_SEED" not in os.environ, reason="set ORCA_SIM_SEED to replay a seed")
def test_services_replay():
    logging.disable(logging.NOTSET)
    logging.basicConfig(level=logging.INFO)
    run(int(os.environ["ORCA_SIM_SEED"]), verbose=True)
