"""Bugs the simulation found, as regressions: BUG-1 and BUG-2 failed before their fixes."""
from __future__ import annotations

import pytest

from task import State
from tests.sim.net import LOST
from tests.sim.scenario import cluster, lose, running, settle, start_task, work


def _moved_back_to_w0(world, task_id):
    """w0 is lost while its task runs; when it is back the task's next attempt lands on w0 again."""
    lose(world, "w0")
    world.hosts["w1"].partitioned = True  # so the move can only go back to w0
    world.hosts["w0"].partitioned = False
    world.sync_nodes()
    world.sync_nodes()
    world.sync_nodes()


def test_bug1_attempt_lost_in_a_worker_crash_is_sent_again():
    world = cluster(n_workers=2)
    task_id = start_task(world)  # attempt 1 on w0
    _moved_back_to_w0(world, task_id)
    world.dispatch()  # attempt 2 placed on w0 and accepted; not started yet
    task = world.manager.get(task_id)
    assert (task.node, task.attempt) == ("w0", 2)
    world.crash_worker("w0")  # the queued start of attempt 2 dies with the process
    world.restart_worker("w0")
    world.hosts["w1"].partitioned = False
    for _ in range(20):
        settle(world, 2)
        work(world, "w0")
    assert running(world, task_id) == [("w0", 2)]


def test_bug2_stop_of_an_attempt_the_worker_never_got_ends_the_task():
    world = cluster(n_workers=2)
    task_id = start_task(world)  # attempt 1 on w0
    _moved_back_to_w0(world, task_id)
    world.net.rule = lambda address, method: LOST if method == "post" else None
    world.dispatch()  # attempt 2 placed on w0; its run is lost
    assert world.manager.get(task_id).attempt == 2
    world.net.rule = lambda address, method: None
    assert world.stop(task_id) is not None
    world.hosts["w1"].partitioned = False
    for _ in range(20):
        settle(world, 2)
        work(world, "w0")
    assert world.manager.get(task_id).state is State.COMPLETED
    assert running(world, task_id) == []
