"""common.jobs.Jobs: a wake() is never lost, wherever it lands relative to a pass.

The race is reproduced deterministically: a hook runs a wake() at the exact point where a
pass has taken its last look at its work and is ending (inside the pass's function, before
APScheduler has counted it finished). The job's interval is an hour, so only the wake can
make it run again: the test waits for that run, with a deadline.
"""
from __future__ import annotations

import threading
import time

import pytest

from common.jobs import Jobs

HOUR = 3600.0


def wait_until(condition, deadline: float = 10.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def jobs():
    jobs = Jobs("test", threads=2)
    yield jobs
    jobs.shutdown()


def test_a_wake_landing_as_a_pass_ends_runs_the_job_again(jobs):
    passes = []
    jobs.add("work", lambda: passes.append(1), HOUR)
    woke = threading.Event()

    def wake_at_the_end(job_id: str) -> None:
        if not woke.is_set():  # the first pass, right after its last look at the work
            woke.set()
            jobs.wake(job_id)
    jobs._pass_ended = wake_at_the_end
    jobs.start()
    assert wait_until(lambda: len(passes) >= 2), f"the wake was lost: {len(passes)} pass(es)"


def test_a_wake_during_a_pass_makes_it_go_again(jobs):
    passes = []
    in_pass, release = threading.Event(), threading.Event()

    def work() -> None:
        passes.append(1)
        if len(passes) == 1:
            in_pass.set()
            release.wait(10)
    jobs.add("work", work, HOUR)
    jobs.start()
    assert in_pass.wait(10)
    jobs.wake("work")
    release.set()
    assert wait_until(lambda: len(passes) >= 2), f"the wake was lost: {len(passes)} pass(es)"


def test_wakes_while_idle_each_run_the_job(jobs):
    passes = []
    jobs.add("work", lambda: passes.append(1), HOUR)
    jobs.start()
    assert wait_until(lambda: len(passes) == 1)
    for expected in (2, 3, 4):
        assert wait_until(lambda: not jobs._state["work"].running)
        jobs.wake("work")
        assert wait_until(lambda: len(passes) >= expected), f"wake {expected - 1} was lost"


def test_a_burst_of_wakes_costs_few_passes_and_none_is_lost(jobs):
    passes, seen = [], []
    queue: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        with lock:
            seen.extend(queue)
            queue.clear()
        passes.append(1)
    jobs.add("work", work, HOUR)
    jobs.start()
    for item in range(500):
        with lock:
            queue.append(item)
        jobs.wake("work")
    assert wait_until(lambda: len(seen) == 500), f"{500 - len(seen)} item(s) left waiting for the next tick"
    assert len(passes) < 500
