"""The worker's HTTP API with Flask's test client, over a Worker driving a fake runtime.

FakeRuntime (tests/api/conftest.py) only checks the worker's bookkeeping: which runtime calls
it makes and what it records. It is never the only proof of Docker behaviour; the
integration tests run the same paths against the real engine.
"""
import threading

import pytest

from task import State
from tests.api.conftest import wait_until
from worker.runtime import ContainerEvent

TASK_ID = "0b9c8f4e-6a55-4d0e-9d3c-2f7b1d2a9e11"
OTHER_ID = "7a0c2d64-1f0e-4d8b-8a3c-5b6e7f809a1b"


def post(client, task_id=TASK_ID, **task_fields):
    return client.post("/tasks", json={"state": "running", "task": {"id": task_id, "image": "busybox",
                                                                    **task_fields}})


def state_of(client, task_id=TASK_ID):
    return client.get(f"/tasks/{task_id}").get_json()["state"]


def run_until(worker, client, state, wait, task_id=TASK_ID):
    """Hand queued events to the pool and wait for the task to reach `state`; return its JSON."""
    worker.run_pending()
    wait(lambda: state_of(client, task_id) == state)
    return client.get(f"/tasks/{task_id}").get_json()


def assert_json_error(response, status, *words):
    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    for word in words:
        assert word in body["error"]


def test_post_schedules_then_run_pending_starts(worker_client, worker, runtime, wait):
    response = post(worker_client, name="web", ports={"8080": None})
    assert response.status_code == 201
    assert response.headers["Location"] == f"/tasks/{TASK_ID}"
    task = response.get_json()
    assert (task["id"], task["state"], task["node"], task["name"]) == (TASK_ID, "scheduled", "w-test", "web")
    assert task["created_at"] and task["container_id"] is None
    assert runtime.start_calls == []  # nothing runs until the pass hands the event over

    assert worker.run_pending() == 1
    task = run_until(worker, worker_client, "running", wait)
    assert task["container_id"] == f"c-{TASK_ID}"
    assert task["host_ports"] == {"8080/tcp": 32768}
    assert task["started_at"] == runtime.STARTED_AT
    assert runtime.start_calls == [TASK_ID]


def test_repeat_post_is_idempotent(worker_client, worker, runtime, wait):
    first = post(worker_client)
    again = post(worker_client)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == TASK_ID
    assert again.get_json()["state"] == "scheduled"

    run_until(worker, worker_client, "running", wait)
    third = post(worker_client)
    assert third.status_code == 200
    assert third.get_json()["state"] == "running"
    assert worker.run_pending() == 0  # the repeats queued nothing
    assert runtime.start_calls == [TASK_ID]
    assert len(worker_client.get("/tasks").get_json()) == 1


def test_delete_stops_and_completes(worker_client, worker, runtime, wait):
    post(worker_client)
    run_until(worker, worker_client, "running", wait)

    response = worker_client.delete(f"/tasks/{TASK_ID}")
    assert response.status_code == 202
    assert response.get_json()["id"] == TASK_ID

    task = run_until(worker, worker_client, "completed", wait)
    assert runtime.stop_calls == [(f"c-{TASK_ID}", worker.policy.stop_timeout)]
    # A stop on request is a completion even though the container was killed (137).
    assert (task["exit_code"], task["error"]) == (137, None)
    assert task["finished_at"] == runtime.FINISHED_AT


def test_stop_event_by_post_is_accepted(worker_client, worker, runtime, wait):
    post(worker_client)
    run_until(worker, worker_client, "running", wait)
    response = worker_client.post("/tasks", json={"state": "completed", "task": {"id": TASK_ID}})
    assert response.status_code == 202
    run_until(worker, worker_client, "completed", wait)
    assert len(runtime.stop_calls) == 1


def test_delete_of_finished_task_only_removes_its_container(worker_client, worker, runtime, wait):
    post(worker_client)
    running = run_until(worker, worker_client, "running", wait)
    worker_client.delete(f"/tasks/{TASK_ID}")
    run_until(worker, worker_client, "completed", wait)

    response = worker_client.delete(f"/tasks/{TASK_ID}")
    assert response.status_code == 202
    assert response.get_json()["state"] == "completed"
    assert worker.run_pending() == 1
    wait(lambda: running["container_id"] in runtime.remove_calls)
    assert len(runtime.stop_calls) == 1
    assert worker.db.get(TASK_ID).state.value == "completed"


def test_a_finished_attempt_is_never_started_again_but_a_newer_attempt_is(worker_client, worker, runtime, wait):
    post(worker_client)
    run_until(worker, worker_client, "running", wait)
    worker_client.delete(f"/tasks/{TASK_ID}")
    run_until(worker, worker_client, "completed", wait)
    repeat = post(worker_client)  # the same attempt again (a late or duplicated message)
    assert repeat.status_code == 200 and repeat.get_json()["state"] == "completed"
    worker.run_pending()
    assert runtime.start_calls == [TASK_ID]
    newer = worker_client.post("/tasks", json={"task": {"id": TASK_ID, "image": "busybox"}, "attempt": 2})
    assert newer.status_code == 201 and newer.get_json()["attempt"] == 2
    run_until(worker, worker_client, "running", wait)
    assert runtime.start_calls == [TASK_ID, TASK_ID]


def test_events_for_an_older_attempt_are_ignored(worker_client, worker, runtime, wait):
    worker_client.post("/tasks", json={"task": {"id": TASK_ID, "image": "busybox"}, "attempt": 3})
    run_until(worker, worker_client, "running", wait)
    old_run = worker_client.post("/tasks", json={"task": {"id": TASK_ID, "image": "busybox"}, "attempt": 2})
    assert old_run.status_code == 200 and old_run.get_json()["attempt"] == 3
    old_stop = worker_client.delete(f"/tasks/{TASK_ID}?attempt=2")
    assert old_stop.status_code == 202 and old_stop.get_json()["state"] == "running"
    worker.run_pending()
    assert runtime.start_calls == [TASK_ID] and runtime.stop_calls == []


def test_a_stop_for_an_attempt_it_never_got_keeps_that_attempt_from_starting(worker_client, worker, runtime):
    stop = worker_client.delete(f"/tasks/{TASK_ID}?attempt=1")
    assert stop.status_code == 202 and stop.get_json()["state"] == "completed"
    late_run = worker_client.post("/tasks", json={"task": {"id": TASK_ID, "image": "busybox"}, "attempt": 1})
    assert late_run.status_code == 200 and late_run.get_json()["state"] == "completed"
    worker.run_pending()
    assert runtime.start_calls == []


def test_start_failure_fails_the_task_with_the_error(worker_client, worker, runtime, wait):
    runtime.start_error = "image 'nosuch:1' is not available: pull access denied"
    post(worker_client, image="nosuch:1", restart_policy="no")
    task = run_until(worker, worker_client, "failed", wait)
    assert task["error"] == "image 'nosuch:1' is not available: pull access denied"
    assert task["finished_at"] is not None
    assert task["container_id"] is None
    # Nothing to stop: a DELETE of the failed task is accepted and makes no runtime call.
    assert worker_client.delete(f"/tasks/{TASK_ID}").status_code == 202
    worker.run_pending()
    assert runtime.stop_calls == []


@pytest.mark.parametrize(
    ("exit_code", "oom_killed", "state", "error"),
    [(0, False, "completed", None), (3, False, "failed", "exited with code 3"),
     (0, True, "failed", "out of memory")],
    ids=["exit-0", "exit-3", "oom"],
)
def test_container_exit_found_by_sync_states(worker_client, worker, runtime, wait, exit_code, oom_killed,
                                             state, error):
    post(worker_client, restart_policy="no")
    run_until(worker, worker_client, "running", wait)
    runtime.exit(f"c-{TASK_ID}", exit_code, oom_killed)
    worker.sync_states()
    task = worker_client.get(f"/tasks/{TASK_ID}").get_json()
    assert (task["state"], task["exit_code"], task["error"]) == (state, exit_code, error)


def test_container_that_exits_during_start_is_recorded(worker_client, worker, runtime, wait):
    runtime.exit_on_start = 0
    post(worker_client)
    task = run_until(worker, worker_client, "completed", wait)
    assert (task["exit_code"], task["container_id"]) == (0, f"c-{TASK_ID}")


def test_vanished_container_fails_the_task(worker_client, worker, runtime, wait):
    post(worker_client, restart_policy="no")
    run_until(worker, worker_client, "running", wait)
    runtime.live.clear()
    worker.sync_states()
    task = worker_client.get(f"/tasks/{TASK_ID}").get_json()
    assert (task["state"], task["error"]) == ("failed", "container disappeared")


def test_die_event_records_the_exit(worker_client, worker, runtime, wait):
    post(worker_client, restart_policy="no")
    run_until(worker, worker_client, "running", wait)
    runtime.exit(f"c-{TASK_ID}", 3)
    worker.on_container_event(ContainerEvent(TASK_ID, f"c-{TASK_ID}", "die"))
    wait(lambda: state_of(worker_client) == "failed")
    assert worker_client.get(f"/tasks/{TASK_ID}").get_json()["error"] == "exited with code 3"


def test_delete_during_a_slow_start_cancels_at_once_and_the_start_removes_its_container(
        worker_client, worker, runtime, wait):
    """A stop never waits behind a start (a pull can take minutes): the task ends completed
    while its start is still under way, and that start, when it returns, finds the task moved
    on and removes the container it made."""
    runtime.start_gate = threading.Event()
    post(worker_client)
    worker.run_pending()
    assert runtime.start_entered.wait(3)
    assert worker_client.delete(f"/tasks/{TASK_ID}").status_code == 202
    worker.run_pending()
    wait(lambda: state_of(worker_client) == "completed")  # the start is still held at the gate
    runtime.start_gate.set()
    wait(lambda: runtime.remove_calls == [f"c-{TASK_ID}"])
    assert runtime.stop_calls == [] and not runtime.live
    assert state_of(worker_client) == "completed"


def test_get_unknown_task_is_json_404(worker_client):
    assert_json_error(worker_client.get(f"/tasks/{OTHER_ID}"), 404, OTHER_ID)


def test_delete_unknown_task_is_json_404(worker_client):
    assert_json_error(worker_client.delete(f"/tasks/{OTHER_ID}"), 404, OTHER_ID)


def test_unknown_route_is_json_404(worker_client):
    assert_json_error(worker_client.get("/containers"), 404, "/containers")


@pytest.mark.parametrize(
    ("body", "field"),
    [({"task": {"image": "busybox", "memory": -1}}, "task.memory"),
     ({"task": {}}, "task.image"),
     ({"task": {"image": "busybox"}, "extra": 1}, "extra")],
)
def test_bad_event_is_json_400_naming_the_field(worker_client, body, field):
    assert_json_error(worker_client.post("/tasks", json=body), 400, field)


def test_non_json_body_is_415(worker_client):
    response = worker_client.post("/tasks", data="{}", content_type="text/plain")
    assert_json_error(response, 415, "JSON")


def test_list_since_returns_only_changed_tasks_and_the_version(worker_client, worker, wait):
    full = worker_client.get("/tasks")
    assert full.get_json() == []
    start = int(full.headers["X-Orca-Version"])
    assert start > 1_700_000_000 * 10**6  # versions start at the worker's start time in microseconds

    post(worker_client)
    base = int(worker_client.get("/tasks").headers["X-Orca-Version"])
    post(worker_client, task_id=OTHER_ID)

    changed = worker_client.get(f"/tasks?since={base}")
    assert changed.status_code == 200
    assert [t["id"] for t in changed.get_json()] == [OTHER_ID]
    version = int(changed.headers["X-Orca-Version"])
    assert version > base

    nothing = worker_client.get(f"/tasks?since={version}")
    assert nothing.get_json() == []
    assert nothing.headers["X-Orca-Version"] == str(version)

    run_until(worker, worker_client, "running", wait, task_id=TASK_ID)
    wait(lambda: state_of(worker_client, OTHER_ID) == "running")
    later = worker_client.get(f"/tasks?since={version}")
    assert sorted(t["id"] for t in later.get_json()) == sorted([TASK_ID, OTHER_ID])
    assert {t["state"] for t in later.get_json()} == {"running"}

    everything = worker_client.get("/tasks?since=0")
    assert len(everything.get_json()) == 2


def test_stats_include_host_figures_and_task_count(worker_client, worker, wait):
    empty = worker_client.get("/stats")
    assert empty.status_code == 200
    assert empty.get_json()["task_count"] == 0

    post(worker_client)
    post(worker_client, task_id=OTHER_ID)
    stats = worker_client.get("/stats").get_json()
    assert stats["task_count"] == 2
    for key in ("hostname", "cpu_count", "cpu_percent", "load_avg", "memory", "disk"):
        assert key in stats

    run_until(worker, worker_client, "running", wait)
    worker_client.delete(f"/tasks/{TASK_ID}")
    run_until(worker, worker_client, "completed", wait)
    assert worker_client.get("/stats").get_json()["task_count"] == 1  # finished tasks do not count


def test_closed_worker_refuses_new_tasks_with_503(worker_client, worker):
    worker.close_intake()
    assert_json_error(post(worker_client), 503, "shutting down")


def stop_before_start(worker, client):
    """POST then DELETE, and let the stop event reach the per-task lock first.

    run_pending hands a task's start and stop events to a pool of several threads; either may
    take the per-task lock first. Reversing the queue makes the stop win deterministically.
    """
    post(client)
    assert client.delete(f"/tasks/{TASK_ID}").status_code == 202
    assert [e.state for e in worker.queue] == [State.RUNNING, State.COMPLETED]
    worker.queue.reverse()
    def stopped() -> bool:
        worker.run_pending()
        return State(state_of(client)).is_terminal
    wait_until(stopped)
    worker.run_pending()  # the start event, if it was still queued
    worker.close()  # wait for every handler to finish


def test_stop_that_wins_the_race_against_start_is_not_lost(worker_client, worker, runtime):
    """Whatever the order, a DELETE ends the task completed with no container left running."""
    stop_before_start(worker, worker_client)
    task = worker_client.get(f"/tasks/{TASK_ID}").get_json()
    assert (task["state"], task["error"]) == ("completed", None)
    assert not runtime.live


@pytest.mark.parametrize("since", ["null", "1.5", "x", str(2**63)])
def test_a_bad_since_is_a_json_400_not_the_whole_list(worker_client, since):
    """Found by schemathesis' negative phase: ?since=null used to answer 200 with every task."""
    assert_json_error(worker_client.get(f"/tasks?since={since}"), 400, "since")
