"""Named regressions of the state model, each a small deterministic scenario on the
simulation harness. Each asserts the fixed outcome of a path the old code got wrong."""
from __future__ import annotations

import pytest

from store.sqlite import SqliteStore
from store.memory import MemoryStore
from task import State, Unavailable
from tests.sim.net import ANSWER_LOST, DELAYED, LOST
from tests.sim.scenario import cluster, lose, running, settle, start_task, work
from tests.sim.world import DOWN_AFTER


def posts(world, address=None):
    return [d for d in world.net.delivered if d[1] == "post" and address in (None, d[0])]


def test_1_failed_sends_and_503_never_count_as_missed_polls():
    world = cluster()
    task_id = start_task(world)
    world.net.rule = lambda address, method: LOST if method == "post" else None
    world.hosts["w0"].unavailable = True  # every task request and /stats answers 503
    for _ in range(DOWN_AFTER * 3):
        world.clock.advance(5.0)
        world.submit()  # sends that fail
        world.dispatch()
        world.sync_nodes()
        world.sync_tasks()
    assert not any(node.lost for node in world.manager.nodes())
    task = world.manager.get(task_id)
    assert (task.node, task.attempt, task.state) == ("w0", 1, State.RUNNING)


def test_2_moved_task_does_not_keep_running_on_its_old_worker():
    world = cluster()
    task_id = start_task(world)
    assert running(world, task_id) == [("w0", 1)]

    def declared_lost_meanwhile():
        lose(world, "w0")
        world.dispatch()  # the task moves to w1
        work(world, "w1")

    world.net.interleave = declared_lost_meanwhile
    world.watch("w0")  # the long poll in flight while w0 is declared lost
    assert "w0" not in world.manager._cursors, "a void read wrote its position back"
    assert world.manager.get(task_id).node == "w1"
    world.hosts["w0"].partitioned = False  # back, same instance id
    settle(world)
    work(world, "w0")
    settle(world)
    assert running(world, task_id) == [("w1", 2)]


def test_3_read_timeout_on_dispatch_does_not_send_the_task_elsewhere():
    world = cluster()
    first = []
    world.net.rule = lambda address, method: ANSWER_LOST if method == "post" and not first.append(1) else None
    task = world.submit()
    world.dispatch()  # delivered, the answer is lost
    for _ in range(10):
        world.clock.advance(2.0)
        world.dispatch()
        world.sync_nodes()
    settle(world)
    assert running(world, task.id) == [("w0", 1)]
    assert {d[0] for d in posts(world)} == {"w0"}


def test_4_stale_post_answer_does_not_roll_state_back():
    world = cluster()
    task = world.submit()

    def poll_first():  # the container starts and the long poll applies `running` first
        work(world, "w0")
        world.sync_tasks()
        assert world.manager.get(task.id).state is State.RUNNING

    world.net.hold["post"] = poll_first
    world.dispatch()  # then the POST's answer (`scheduled`, an older version) arrives
    assert world.manager.get(task.id).state is State.RUNNING
    settle(world)
    assert world.manager.get(task.id).state is State.RUNNING


def test_5_failed_task_does_not_flip_to_completed():
    world = cluster()
    task_id = start_task(world, restart_policy="no")
    lose(world, "w0")
    task = world.manager.get(task_id)
    assert task.state is State.FAILED and "lost" in task.error
    world.hosts["w0"].partitioned = False
    for _ in range(4):
        settle(world, 2)
        work(world, "w0")
    task = world.manager.get(task_id)
    assert task.state is State.FAILED and "lost" in task.error
    assert running(world, task_id) == []


def test_6a_stop_during_worker_shutdown_is_resent():
    world = cluster()
    task_id = start_task(world)
    world.hosts["w0"].worker.close_intake()  # shutting down: answers 503
    assert world.stop(task_id) is not None
    world.dispatch()
    assert world.manager.get(task_id).state is State.RUNNING
    world.crash_worker("w0")
    world.restart_worker("w0")
    for _ in range(5):
        settle(world, 2)
        work(world, "w0")
    assert world.manager.get(task_id).state is State.COMPLETED
    assert running(world, task_id) == []


def test_6b_worker_crash_after_the_stop_reached_it():
    world = cluster()
    task_id = start_task(world)
    assert world.stop(task_id) is not None
    world.dispatch()  # the DELETE is answered; the stop is queued on the worker
    assert any(d[1] == "delete" for d in world.net.delivered)
    world.crash_worker("w0")  # before it ran
    world.restart_worker("w0")
    for _ in range(5):
        settle(world, 2)
        work(world, "w0")
    assert world.manager.get(task_id).state is State.COMPLETED
    assert running(world, task_id) == []


def test_6c_stop_behind_a_failed_run_event_and_no_run_after_it():
    world = cluster()
    world.net.rule = lambda address, method: DELAYED if method == "post" else None
    task = world.submit()
    world.dispatch()  # the run is delayed (the manager saw no answer)
    world.net.rule = lambda address, method: None
    assert world.stop(task.id) is not None
    sent = len(posts(world))
    for _ in range(5):
        settle(world, 2)
    assert len(posts(world)) == sent, "a run was sent for a task the user stopped"
    while world.net.deliver_one(0):  # the old run arrives after the stop
        pass
    work(world, "w0")
    settle(world)
    assert world.manager.get(task.id).state is State.COMPLETED
    assert running(world, task.id) == []


class FailingOnce(MemoryStore):
    """A store whose next submit() commit fails once."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def submit(self, items):
        items = list(items)
        if self.fail:
            self.fail = False

            def broken() -> None:
                raise OSError("disk I/O error")
            return broken
        return super().submit(items)


def test_7_failed_store_commit_answers_unavailable_and_leaves_nothing():
    store = FailingOnce()
    world = cluster(store=store)
    store.fail = True
    task_id = world.new_id()
    from task import Task, TaskEvent
    with pytest.raises(Unavailable):
        world.manager.submit(TaskEvent(task=Task(id=task_id, name="sim-x", image="busybox:latest")))
    assert task_id not in [t.id for t in world.manager.list()]
    settle(world)
    assert posts(world) == []
    world.manager.submit(TaskEvent(task=Task(id=task_id, name="sim-x", image="busybox:latest")))
    settle(world)
    work(world, "w0")
    settle(world)
    assert world.manager.get(task_id).state is State.RUNNING


def test_8_stop_intent_survives_a_manager_restart(tmp_path):
    world = cluster(store=SqliteStore(str(tmp_path / "manager.db")))
    task_id = start_task(world)
    assert world.stop(task_id) is not None
    world.crash_manager()  # before the stop reached the worker
    world.start_manager()
    world.sync_nodes()
    lose(world, "w0")
    task = world.manager.get(task_id)
    assert (task.state, task.attempt, task.node) == (State.COMPLETED, 1, "w0")
    world.hosts["w0"].partitioned = False
    for _ in range(4):
        settle(world, 2)
        work(world, "w0")
    assert world.manager.get(task_id).state is State.COMPLETED
    assert running(world, task_id) == []


def test_9_no_garbage_collection_before_adoption_and_one_task_per_attempt():
    world = cluster(gc_wall_clock=1e12)
    task_id = start_task(world)
    host = world.hosts["w0"]
    host.runtime.exit(host.runtime.running()[0].container_id, 0)  # an exited container
    world.crash_worker("w0")
    world.restart_worker("w0")
    assert not host.worker.ready
    assert host.upkeep.collect_garbage() == 0
    assert len(host.runtime.containers_by_id) == 1
    world.worker_step("w0", "adopt")
    assert host.worker.ready
    # the same attempt of a new task, submitted twice "at once" (and a duplicate POST)
    world.net.rule = lambda address, method: "duplicated" if method == "post" else None
    other = world.submit()
    world.dispatch()
    world.net.rule = lambda address, method: None
    node = world.manager.get(other.id).node
    while world.net.deliver_one(0):
        pass
    created = [world.hosts[node].worker.db.get(other.id).version]
    assert world.hosts[node].worker.queue.__len__() == 1
    work(world, node)
    settle(world)
    assert running(world, other.id) == [(node, 1)] and created
    assert world.manager.get(task_id).state in (State.COMPLETED, State.RUNNING, State.SCHEDULED)
