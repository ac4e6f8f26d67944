"""Helpers for the step-by-step regression scenarios (same harness as the random runs)."""
from __future__ import annotations

from tests.sim.world import DOWN_AFTER, World


def cluster(n_workers: int = 2, **kwargs) -> World:
    """A world whose nodes the manager has already seen up."""
    world = World(0, n_workers=n_workers, **kwargs)
    world.sync_nodes()
    return world


def work(world: World, name: str) -> None:
    """Let a worker run everything it has queued (its pool drains)."""
    host = world.hosts[name]
    if host.runs:
        world.worker_step(name, "run_pending")
        host.executor.run_all()


def settle(world: World, rounds: int = 5) -> None:
    """A few rounds of every periodic job (no faults are healed)."""
    for _ in range(rounds):
        world.round()


def lose(world: World, name: str) -> None:
    """Cut a worker off and let the manager declare it lost."""
    world.hosts[name].partitioned = True
    for _ in range(DOWN_AFTER):
        world.clock.advance(1.0)
        world.sync_nodes()
    assert world.manager.nodes()[list(world.hosts).index(name)].lost


def running(world: World, task_id: str) -> list[tuple[str, int]]:
    """(host, attempt) of every running container of a task."""
    return sorted((h.name, int(s.labels["orca.attempt"])) for h in world.hosts.values()
                  for s in h.runtime.running() if s.task_id == task_id)


def start_task(world: World, **spec) -> str:
    """Submit a task, place it and let its worker start it; returns its id."""
    task = world.submit(**spec)
    assert task is not None
    world.dispatch()
    node = world.manager.get(task.id).node
    work(world, node)
    world.sync_tasks()
    assert world.manager.get(task.id).state.value == "running"
    return task.id
