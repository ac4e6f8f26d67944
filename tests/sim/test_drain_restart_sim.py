"""A drain's stop-then-move across a manager restart, on the simulation harness with the
state model's invariants and N1-N4 of tests/sim/nodes.py checked after every step.

The drain moves a task off node A; the kill order of its old copy is not delivered (lost
on the way, A stays up and readable); the manager is killed and a new process starts on the
same store. The new manager must neither place the task while the old copy may still run
(invariant 4: never two running copies but on a host cut off) nor report the drain complete
while the copy runs (N3). Once the kill gets through, the task runs once, elsewhere."""
from __future__ import annotations

import logging

import pytest

from node.validation import DrainRequest
from tests.sim.net import LOST
from tests.sim.nodes import NodeChecker, NodesWorld
from tests.sim.scenario import running, work


@pytest.fixture(autouse=True)
def quiet_logs():
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def step(world, checker, rounds=1):
    for _ in range(rounds):
        world.round()
        checker.step()


@pytest.mark.parametrize("restart_before_move", [False, True])
def test_manager_restart_with_a_drains_kill_order_undelivered(restart_before_move):
    world = NodesWorld(7, n_workers=3)
    checker = NodeChecker(world)
    step(world, checker, 3)
    task = world.submit_sized(1.0)
    assert task is not None
    checker.ack_submit(task.id)
    step(world, checker, 3)
    placed = world.manager.get(task.id)
    node = placed.node
    assert placed.state.value == "running" and running(world, task.id) == [(node, 1)]

    world.net.rule = lambda address, method: LOST if method == "delete" and address == node else None
    world.manager.drain(node, DrainRequest(deadline=600.0))
    checker.step()
    if restart_before_move:
        world.crash_manager()  # before the first drain pass: the drain itself is persisted
        world.start_manager()
        checker.step()
    world.dispatch()  # the drain pass moves the task; the kill order is lost
    checker.step()
    assert world.manager.get(task.id).node is None and running(world, task.id) == [(node, 1)]

    world.crash_manager()  # kill -9 with the kill order still undelivered
    world.start_manager()
    checker.step()
    step(world, checker, 10)  # every periodic job, the kill still lost
    assert running(world, task.id) == [(node, 1)]
    assert world.manager.get(task.id).node is None, "placed while its old copy still runs"
    assert world.manager.node(node).drain is not None, "drain completed while the old copy runs"

    world.net.rule = lambda address, method: None  # the kill gets through: the old copy stops, then the task moves
    step(world, checker, 5)
    for name in world.hosts:
        work(world, name)
    step(world, checker, 3)
    moved = world.manager.get(task.id)
    assert moved.node not in (None, node) and moved.attempt == 2 and moved.moving_from is None
    assert running(world, task.id) == [(moved.node, 2)]
    assert world.manager.node(node).drain is None
    assert checker.drains_completed == 1
    world.quiesce()
    checker.final()
