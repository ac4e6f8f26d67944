"""A dispatch pass places many tasks before it sends any: a task whose node was declared lost
meanwhile (and which was moved by that) is not sent to the lost node."""
from __future__ import annotations

from manager.manager import Manager
from scheduler.round_robin import RoundRobin
from store import MemoryStore
from task import State, Task, TaskEvent
from task.lifecycle import Action
from tests.api.conftest import WORKERS, FakeWorkerClient


def test_a_batch_sends_only_the_tasks_still_placed_on_its_node(clock):
    workers = FakeWorkerClient()
    manager = Manager(list(WORKERS), workers, RoundRobin(), MemoryStore(), clock=clock)
    manager.sync_nodes()
    task = manager.submit(TaskEvent(task=Task(image="busybox"), state=State.RUNNING))
    other = next(name for name in WORKERS if name != WORKERS[0])
    with manager._lock:  # as if the pass placed it on WORKERS[0], then that node was lost and it moved
        manager._tasks[task.id].node = other
    assert manager._send_batch(WORKERS[0], [(task.id, Action.SEND_RUN)]) == 0
    assert workers.sent == []
