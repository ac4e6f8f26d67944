"""Docker may report a container's OOM after its exit (containerd sends the two events
unordered; CI saw an OOM-killed task recorded as "exited with code 137"). A memory-limited
container killed by SIGKILL waits `oom_grace` for the late 'oom' event before its exit is
recorded; any other exit is recorded at once."""
from __future__ import annotations

import pytest

from task import State, Task, TaskEvent
from tests.api.conftest import FakeClock, FakeRuntime
from worker.containers import ContainerEvent
from worker.upkeep import Upkeep
from worker.worker import Policy, Worker

TASK_ID = "0b7f4c3e-5d1a-4c55-9d1e-4b8f0f0e9a77"
CONTAINER = f"c-{TASK_ID}"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def worker(clock):
    worker = Worker("w", FakeRuntime(), Policy(oom_grace=1.0), threads=2, clock=clock)
    Upkeep(worker).adopt()
    yield worker
    worker.close()


def running(worker, wait, memory: int = 8 * 1024 * 1024):
    worker.submit(TaskEvent(task=Task(id=TASK_ID, name="hog", image="busybox", memory=memory,
                                      restart_policy="no"), state=State.RUNNING))
    worker.run_pending()
    wait(lambda: worker.db.get(TASK_ID).state is State.RUNNING)


def observed(worker):
    task = worker.db.get(TASK_ID)
    return task.state.value, task.exit_code, task.error


def test_an_oom_reported_after_the_exit_is_still_an_oom(worker, clock, wait):
    running(worker, wait)
    worker.runtime.exit(CONTAINER, 137, oom_killed=False)  # the die, before Docker knows of the OOM
    worker._observe(TASK_ID)
    worker.sync_states()
    assert observed(worker) == ("running", None, None)
    clock.advance(0.5)
    worker.runtime.exit(CONTAINER, 137, oom_killed=True)  # then the 'oom' event
    worker.on_container_event(ContainerEvent(TASK_ID, CONTAINER, "oom"))
    wait(lambda: observed(worker)[0] == "failed")
    assert observed(worker) == ("failed", 137, "out of memory")
    assert worker._oom_waits == {}


def test_a_sigkill_with_no_oom_is_recorded_after_the_grace(worker, clock, wait):
    running(worker, wait)
    worker.runtime.exit(CONTAINER, 137)
    worker._observe(TASK_ID)
    clock.advance(0.99)
    worker.sync_states()
    assert observed(worker)[0] == "running"
    clock.advance(0.02)
    worker.sync_states()
    assert observed(worker) == ("failed", 137, "exited with code 137")
    assert worker._oom_waits == {}


@pytest.mark.parametrize(("memory", "exit_code"), [(0, 137), (8 * 1024 * 1024, 1)], ids=["no-limit", "exit-1"])
def test_other_exits_are_recorded_at_once(worker, wait, memory, exit_code):
    running(worker, wait, memory=memory)
    worker.runtime.exit(CONTAINER, exit_code)
    worker._observe(TASK_ID)
    assert observed(worker) == ("failed", exit_code, f"exited with code {exit_code}")


def test_a_stop_during_the_wait_records_the_stop_and_forgets_the_wait(worker, clock, wait):
    running(worker, wait)
    worker.runtime.exit(CONTAINER, 137)
    worker._observe(TASK_ID)
    assert TASK_ID in worker._oom_waits
    worker.stop(TASK_ID)
    worker.run_pending()
    wait(lambda: observed(worker)[0] == "completed")
    assert worker._oom_waits == {}
