"""The seeded random schedule: each step is a user request, a manager pass, a worker job, a
container exit, time passing or a fault; the invariants are checked after every step and at
quiescence. run(seed) is reproducible: the same seed gives the same trace."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from task import State
from tests.sim.events_check import EventChecker
from tests.sim.invariants import Checker, InvariantViolation
from tests.sim.world import World

MAX_TASKS = 10
WORKER_STEPS = ("run_pending", "exec", "exec", "exec", "sync_states", "stop_disconnected", "collect_garbage",
                "engine_check", "adopt")
# (weight, action)
ACTIONS = (
    (10, "submit"), (3, "stop"), (10, "dispatch"), (6, "sync_nodes"), (6, "sync_tasks"), (3, "watch"),
    (30, "worker"), (3, "exit"), (10, "tick"), (2, "deliver"), (0.7, "interleave"),
    (0.4, "partition"), (0.4, "freeze"), (0.4, "crash_worker"), (0.25, "crash_manager"),
    (0.25, "crash_manager_mid_call"), (0.5, "engine"), (0.4, "unavailable"), (0.4, "net_faults"),
    (0.4, "start_failure"), (3, "heal_one"),
)


@dataclass
class Result:
    """What a run did: its steps and the faults it injected, by kind."""

    seed: int
    steps: int
    faults: Counter = field(default_factory=Counter)
    checks: int = 0
    work: Counter = field(default_factory=Counter)  # tasks submitted, containers started, end states


def replay_command(seed: int, steps: int) -> str:
    return f"python -m tests.sim.run --seed {seed} --steps {steps} --verbose"


def run(seed: int, steps: int = 200, verbose: bool = False, workers: int = 3, max_tasks: int = MAX_TASKS) -> Result:
    """Run one seeded schedule of `steps` steps, then quiesce; raise InvariantViolation
    (with the replay command) if an invariant fails."""
    world = World(seed, n_workers=workers, gc_wall_clock=1e12 if seed % 2 else 0.0, verbose=verbose)
    world.max_tasks = max_tasks
    checker = Checker(world)
    events = EventChecker(world)
    result = Result(seed, steps)
    try:
        for number in range(steps):
            action = _choose(world)
            world.trace(f"[{number}] t={world.clock.now:.1f} {action}")
            _do(world, checker, action, result.faults)
            checker.step()
            events.step()
        world.trace("[quiesce]")
        rounds = world.quiesce()
        checker.final()
        events.step()
        world.trace(f"[quiet after {rounds} rounds]")
    except (InvariantViolation, AssertionError) as exc:
        tail = "\n".join(world.lines[-60:])
        raise InvariantViolation(f"seed {seed}: {exc}\nreplay: {replay_command(seed, steps)}\n"
                                 f"last steps:\n{tail}") from None
    result.faults.update(world.net.faults)
    result.checks = checker.checks
    result.work["tasks"] = len(checker.acked)
    result.work["stopped"] = len(checker.stop_acked)
    result.work["events"] = events.events
    result.work["containers_started"] = sum(h.runtime.starts for h in world.hosts.values())
    result.work["max_attempt"] = max((t.attempt for t in world.manager.list()), default=0)
    for task in world.manager.list():
        result.work[f"end_{task.state.value}"] += 1
    return result


def _choose(world: World) -> str:
    weights = [w for w, _ in ACTIONS]
    return world.rng.choices([a for _, a in ACTIONS], weights)[0]


def _do(world: World, checker: Checker, action: str, faults: Counter) -> None:
    rng = world.rng
    names = sorted(world.hosts)
    name = rng.choice(names)
    host = world.hosts[name]
    if action == "submit" and len(checker.acked) < world.max_tasks:
        policy = rng.choice(("no", "on-failure", "always"))
        sad = rng.choice((None, None, None, 5.0, 20.0))
        task = world.submit(policy, rng.randint(0, 3), sad)
        if task is not None:
            checker.ack_submit(task.id)
            world.trace(f"  submitted {task.id[:8]} {policy} max={task.max_restarts} sad={sad}")
    elif action == "stop" and checker.acked:
        task_id = rng.choice(sorted(checker.acked))
        task = world.stop(task_id)
        if task is not None:
            checker.ack_stop(task_id, task.attempt)
            world.trace(f"  stop of {task_id[:8]} acknowledged at attempt {task.attempt} ({task.state.value})")
    elif action == "dispatch":
        world.dispatch()
    elif action == "sync_nodes":
        world.sync_nodes()
    elif action == "sync_tasks":
        world.sync_tasks()
    elif action == "watch":
        world.watch(name)
    elif action == "worker":
        step = rng.choice(WORKER_STEPS)
        world.trace(f"  {name}.{step}")
        world.worker_step(name, step, rng.randrange(1 << 16))
    elif action == "exit":
        running = [(h.name, s.container_id) for h in world.hosts.values() for s in h.runtime.running()]
        if running:
            where, container_id = rng.choice(sorted(running))
            code = rng.choice((0, 1, 137))
            world.trace(f"  container {container_id} on {where} exits {code}")
            world.exit_container(where, container_id, code, notify=rng.random() < 0.7)
            faults["container_exit"] += 1
    elif action == "tick":
        world.clock.advance(rng.choice((0.2, 0.5, 1.0, 2.0, 5.0, 12.0)))
    elif action == "deliver" and world.net.in_flight:
        world.net.deliver_one(rng.randrange(len(world.net.in_flight)))
    elif action == "interleave" and world.manager is not None:
        if rng.random() < 0.5:
            world.net.interleave = lambda: _nested(world)
            faults["long_poll_interleaved"] += 1
        else:
            world.net.hold["post"] = lambda: _nested(world)
            faults["post_answer_held"] += 1
    else:
        _fault(world, action, name, host, faults)


def _nested(world: World) -> None:
    """Steps that run while a call of the manager is in flight (its other threads, the workers)."""
    world.trace("  (while a call is in flight:)")
    rng = world.rng
    for _ in range(rng.randint(1, 4)):
        world.clock.advance(rng.choice((0.5, 1.0, 5.0)))
        name = rng.choice(sorted(world.hosts))
        rng.choice((world.sync_nodes, world.dispatch, world.sync_tasks,
                    lambda: world.worker_step(name, "run_pending"),
                    lambda: world.worker_step(name, "exec", rng.randrange(1 << 16))))()


def _fault(world: World, action: str, name: str, host, faults: Counter) -> None:
    rng = world.rng
    if action == "partition" and not host.partitioned:
        host.partitioned, host.cut_count = True, host.cut_count + 1
    elif action == "freeze" and not host.frozen:
        host.frozen, host.cut_count = True, host.cut_count + 1
    elif action == "crash_worker" and host.worker is not None:
        world.crash_worker(name)
    elif action == "crash_manager" and world.manager is not None:
        world.crash_manager()
    elif action == "crash_manager_mid_call" and world.manager is not None:
        world.net.crash_manager = True
    elif action == "engine":
        host.runtime.down = not host.runtime.down
        action = "engine_down" if host.runtime.down else "engine_up"
    elif action == "unavailable":
        host.unavailable = not host.unavailable
        action = "answers_503" if host.unavailable else "answers_again"
    elif action == "net_faults":
        world.net.fault_rate = rng.choice((0.0, 0.05, 0.2))
        action = f"net_fault_rate_{world.net.fault_rate}"
    elif action == "start_failure":
        host.runtime.fail_next_start = True
    elif action == "heal_one":
        action = _heal_one(world, name, host)
    else:
        return
    if action:
        faults[action] += 1
        world.trace(f"  fault: {action} {name}")


def _heal_one(world: World, name: str, host) -> str:
    """End one fault of a host (or restart the manager)."""
    if world.manager is None:
        world.start_manager()
        return "manager_restart"
    if host.partitioned:
        host.partitioned = False
        return "partition_healed"
    if host.frozen:
        host.frozen = False
        return "thawed"
    if host.worker is None:
        world.restart_worker(name)
        return "worker_restart"
    return ""
