"""Logs, wait, run-to-completion and engine health at the API level, with the fakes of
conftest.py (plus a runtime fake that has output). They check parameters, shapes and the
bookkeeping; tests/integration/test_logs_wait.py and test_health_cleanup.py prove the same
behaviour against real processes and the real Docker engine."""
from __future__ import annotations

import threading
from typing import Iterator

import pytest

from common.streams import StreamLimit, relay
from manager.logs import OUTPUT_LIMIT
from task import Unavailable
from tests.api.conftest import WORKERS, FakeRuntime

TASK_ID = "5d0f3c1e-8a2b-4c6d-9e7f-0a1b2c3d4e5f"
FIRST, SECOND = WORKERS


class OutputRuntime(FakeRuntime):
    """FakeRuntime whose containers have output: `output[container_id]` is a list of lines.
    Following a running container blocks until close() or until `exit()` ends it."""

    def __init__(self) -> None:
        super().__init__()
        self.output: dict[str, list[bytes]] = {}
        self.ended: dict[str, threading.Event] = {}
        self.blocked = threading.Event()  # a follow has sent all output so far and waits for more

    def stream_logs(self, container_id, tail, stdout, stderr, follow):
        if container_id not in self.live:
            return None
        lines = self.output.get(container_id, [])
        lines = lines if tail is None else lines[len(lines) - tail:] if tail else []
        ended = self.ended.setdefault(container_id, threading.Event())

        def chunks() -> Iterator[bytes]:
            yield from lines
            if follow:
                self.blocked.set()
                ended.wait(5)
        return chunks(), ended.set

    def exit(self, container_id, exit_code, oom_killed=False):
        super().exit(container_id, exit_code, oom_killed)
        self.ended.setdefault(container_id, threading.Event()).set()


@pytest.fixture
def runtime():
    return OutputRuntime()


def assert_error(response, status, *words):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    for word in words:
        assert word in body["error"]


def start_task(worker, worker_client, wait, command=("sh",)):
    response = worker_client.post("/tasks", json={"task": {"id": TASK_ID, "image": "busybox", "command": list(command)}})
    assert response.status_code == 201
    worker.run_pending()
    wait(lambda: worker.db.get(TASK_ID).state.value == "running")
    return f"c-{TASK_ID}"


# ----- worker: logs

@pytest.mark.parametrize("query, name", [
    ("tail=-1", "tail"), ("tail=x", "tail"), ("tail=1.5", "tail"),
    ("follow=maybe", "follow"), ("stream=stdin", "stream"),
])
def test_worker_logs_parameters_are_validated(worker_client, worker, wait, query, name):
    start_task(worker, worker_client, wait)
    assert_error(worker_client.get(f"/tasks/{TASK_ID}/logs?{query}"), 400, name)


def test_worker_logs_of_an_unknown_task_is_404(worker_client):
    assert_error(worker_client.get(f"/tasks/{TASK_ID}/logs"), 404, TASK_ID)


def test_worker_logs_read_tail_and_empty_without_container(worker_client, worker, runtime, wait):
    runtime.start_error = "image 'busybox' is not available"
    worker_client.post("/tasks", json={"task": {"id": TASK_ID, "image": "busybox"}})
    worker.run_pending()
    wait(lambda: worker.db.get(TASK_ID).state.value == "failed")
    response = worker_client.get(f"/tasks/{TASK_ID}/logs?follow=true")
    assert (response.status_code, response.get_data()) == (200, b"")
    assert worker_client.get(f"/tasks/{TASK_ID}/logs").get_data() == b""


def test_worker_logs_read_the_current_container(worker_client, worker, runtime, wait):
    container = start_task(worker, worker_client, wait)
    runtime.output[container] = [b"one\n", b"two\n", b"three\n"]
    response = worker_client.get(f"/tasks/{TASK_ID}/logs")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert response.get_data() == b"one\ntwo\nthree\n"
    assert worker_client.get(f"/tasks/{TASK_ID}/logs?tail=1").get_data() == b"three\n"
    assert worker_client.get(f"/tasks/{TASK_ID}/logs?tail=0").get_data() == b""


def test_worker_follow_ends_when_the_task_ends(worker_client, worker, runtime, wait):
    container = start_task(worker, worker_client, wait)
    runtime.output[container] = [b"a\n", b"b\n"]
    result = {}
    reader = threading.Thread(target=lambda: result.update(
        body=worker_client.get(f"/tasks/{TASK_ID}/logs?follow=true").get_data()))
    reader.start()
    assert runtime.blocked.wait(5), "the follow never reached the end of the output so far"
    assert reader.is_alive(), "a follow of a running task must not end by itself"
    runtime.exit(container, 0)
    worker.sync_states()
    reader.join(5)
    assert not reader.is_alive()
    assert result["body"] == b"a\nb\n"


def looks_at(db, task_id: str) -> threading.Semaphore:
    """Spy on db.get: the returned semaphore is released once per look at `task_id` made by
    a thread other than the caller's (the request thread serving a follow)."""
    looked, caller, real_get = threading.Semaphore(0), threading.get_ident(), db.get

    def get(wanted):
        if wanted == task_id and threading.get_ident() != caller:
            looked.release()
        return real_get(wanted)
    db.get = get
    return looked


def test_worker_follow_waits_for_a_task_not_started_yet(worker_client, worker, runtime, wait):
    worker_client.post("/tasks", json={"task": {"id": TASK_ID, "image": "busybox"}})  # scheduled, not started
    looked = looks_at(worker.db, TASK_ID)
    result = {}
    reader = threading.Thread(target=lambda: result.update(
        body=worker_client.get(f"/tasks/{TASK_ID}/logs?follow=true").get_data()))
    reader.start()
    for _ in range(3):  # the follow found no container, waited, and looked again: it did not give up
        assert looked.acquire(timeout=5), "the follow stopped looking at the task"
    assert reader.is_alive() and runtime.start_calls == []
    runtime.output[f"c-{TASK_ID}"] = [b"late\n"]
    worker.run_pending()
    wait(lambda: worker.db.get(TASK_ID).state.value == "running")
    runtime.exit(f"c-{TASK_ID}", 0)
    worker.sync_states()
    reader.join(5)
    assert result["body"] == b"late\n"


# ----- worker: engine health

def test_worker_health_reports_the_engine(worker_client, worker):
    assert worker_client.get("/health").status_code == 200  # not checked yet: not refused
    worker.record_engine({"reachable": True, "version": "20.10.24", "api_version": "1.41"})
    body = worker_client.get("/health").get_json()
    assert body["docker"]["reachable"] is True and body["docker"]["version"] == "20.10.24"
    assert body["docker"]["api_version"] == "1.41"


def test_worker_with_engine_down_answers_503_and_takes_no_new_task(worker_client, worker, runtime):
    worker.record_engine({"reachable": False, "error": "docker engine unreachable: no socket"})
    response = worker_client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["docker"] == {"reachable": False, "error": "docker engine unreachable: no socket",
                                             "checked_at": response.get_json()["docker"]["checked_at"]}
    assert_error(worker_client.post("/tasks", json={"task": {"image": "busybox"}}), 503, "docker engine unreachable")
    assert worker.db.list() == [] and runtime.start_calls == []
    worker.record_engine({"reachable": True, "version": "20.10", "api_version": "1.41"})
    assert worker_client.post("/tasks", json={"task": {"image": "busybox"}}).status_code == 201


# ----- manager: wait and run to completion

def post(client, query="", **task):
    return client.post(f"/tasks{query}", json={"task": {"id": TASK_ID, "image": "busybox", **task}})


@pytest.mark.parametrize("query, name", [("timeout=-1", "timeout"), ("timeout=301", "timeout"), ("timeout=x", "timeout")])
def test_wait_parameters_are_validated(manager_client, query, name):
    post(manager_client)
    assert_error(manager_client.get(f"/tasks/{TASK_ID}/wait?{query}"), 400, name)


def test_wait_unknown_task_is_404(manager_client):
    assert_error(manager_client.get(f"/tasks/{TASK_ID}/wait?timeout=1"), 404, TASK_ID)


def test_wait_times_out_with_the_current_state(manager_client):
    post(manager_client)
    body = manager_client.get(f"/tasks/{TASK_ID}/wait?timeout=0.3").get_json()
    assert (body["done"], body["timed_out"], body["task"]["state"]) == (False, True, "pending")


def test_wait_returns_as_soon_as_the_task_ends(manager_client, manager, fake_workers, monkeypatch):
    post(manager_client)
    manager.sync_nodes()
    manager.dispatch_pending()
    looked, real_get = threading.Event(), manager.get

    def get(task_id):
        looked.set()  # the wait has read the task (not ended yet) and is about to block
        return real_get(task_id)
    monkeypatch.setattr(manager, "get", get)

    def finish():
        assert looked.wait(5)
        fake_workers.report(FIRST, TASK_ID, state="completed", exit_code=0)
        manager.sync_tasks()
    finisher = threading.Thread(target=finish)
    finisher.start()
    # Without the wake-up on the task's change, this would answer timed_out after 60 s.
    body = manager_client.get(f"/tasks/{TASK_ID}/wait?timeout=60").get_json()
    finisher.join(5)
    assert (body["done"], body["timed_out"], body["task"]["state"]) == (True, False, "completed")


@pytest.mark.parametrize("query", ["?wait=-1", "?wait=1000", "?wait=soon"])
def test_run_to_completion_wait_is_validated_before_anything_is_created(manager_client, manager, query):
    assert_error(post(manager_client, query), 400, "wait")
    assert manager.list() == []


def test_run_to_completion_answers_with_exit_code_and_output(manager_client, manager, fake_workers):
    opened = []

    def open_logs(address, task_id, params, follow):
        opened.append((address, task_id, params, follow))
        return iter([b"hello\n", b"world\n"]), lambda: None
    fake_workers.open_logs = open_logs
    manager.sync_nodes()

    def run_and_finish():
        manager.dispatch_pending()
        fake_workers.report(FIRST, TASK_ID, state="failed", exit_code=3, error="exit code 3")
        manager.sync_tasks()
    threading.Timer(0.2, run_and_finish).start()
    response = post(manager_client, "?wait=20", restart_policy="no")
    assert response.status_code == 201 and response.headers["Location"] == f"/tasks/{TASK_ID}"
    body = response.get_json()
    assert (body["done"], body["timed_out"], body["exit_code"]) == (True, False, 3)
    assert body["task"]["state"] == "failed"
    assert body["output"] == {"text": "hello\nworld\n", "bytes": 12, "truncated": False, "cut": None}
    assert opened == [(FIRST, TASK_ID, {"follow": "false", "stream": "both"}, False)]


def test_run_to_completion_keeps_the_end_of_long_output(manager_client, manager, fake_workers):
    lines = [f"{i:07d}\n".encode() for i in range(20000)]  # 160000 bytes
    fake_workers.open_logs = lambda *args, **kwargs: (iter(lines), lambda: None)
    manager.sync_nodes()
    threading.Timer(0.1, lambda: (manager.dispatch_pending(),
                                  fake_workers.report(FIRST, TASK_ID, state="completed", exit_code=0),
                                  manager.sync_tasks())).start()
    output = post(manager_client, "?wait=20").get_json()["output"]
    assert (output["bytes"], output["truncated"], output["cut"]) == (160000, True, "head")
    assert len(output["text"].encode()) == OUTPUT_LIMIT
    assert output["text"].endswith("0019999\n")


def test_run_to_completion_that_times_out_says_so(manager_client):
    body = post(manager_client, "?wait=0.2").get_json()
    assert (body["done"], body["timed_out"], body["exit_code"]) == (False, True, None)
    assert body["task"]["state"] == "pending"
    assert body["output"]["text"] == ""


# ----- manager: logs

def test_manager_logs_of_a_pending_task_are_empty(manager_client):
    post(manager_client)
    response = manager_client.get(f"/tasks/{TASK_ID}/logs")
    assert (response.status_code, response.get_data()) == (200, b"")


@pytest.mark.parametrize("query, name", [("tail=-5", "tail"), ("follow=2", "follow"), ("stream=all", "stream")])
def test_manager_logs_parameters_are_validated(manager_client, query, name):
    post(manager_client)
    assert_error(manager_client.get(f"/tasks/{TASK_ID}/logs?{query}"), 400, name)


def test_manager_logs_of_an_unknown_task_is_404(manager_client):
    assert_error(manager_client.get(f"/tasks/{TASK_ID}/logs?follow=true"), 404, TASK_ID)


def test_manager_logs_come_from_the_task_worker(manager_client, manager, fake_workers):
    calls = []
    fake_workers.open_logs = lambda address, task_id, params, follow: (
        calls.append((address, params, follow)) or iter([b"x\n"]), lambda: None)
    post(manager_client)
    manager.sync_nodes()
    manager.dispatch_pending()
    assert manager_client.get(f"/tasks/{TASK_ID}/logs?tail=5&stream=stderr").get_data() == b"x\n"
    assert manager_client.get(f"/tasks/{TASK_ID}/logs?follow=true").get_data() == b"x\n"
    assert calls == [(FIRST, {"follow": "false", "stream": "stderr", "tail": "5"}, False),
                     (FIRST, {"follow": "true", "stream": "both"}, True)]


# ----- manager: engine health and placement

def test_manager_health_and_nodes_show_each_engine(manager_client, manager, fake_workers):
    fake_workers.engines[SECOND] = {"reachable": False, "error": "docker engine unreachable: gone"}
    manager.sync_nodes()
    health = manager_client.get("/health").get_json()
    assert health["status"] == "degraded"
    by_name = {w["name"]: w for w in health["workers"]}
    assert by_name[FIRST]["docker"]["reachable"] is True and by_name[FIRST]["accepts_tasks"] is True
    assert by_name[SECOND]["docker"] == {"reachable": False, "error": "docker engine unreachable: gone"}
    assert by_name[SECOND]["state"] == "up" and by_name[SECOND]["accepts_tasks"] is False
    nodes = {n["name"]: n for n in manager_client.get("/nodes").get_json()}
    assert nodes[SECOND]["engine"]["reachable"] is False

    fake_workers.engines.clear()
    manager.sync_nodes()
    assert manager_client.get("/health").get_json()["status"] == "ok"


def test_tasks_skip_a_worker_whose_engine_is_down(manager_client, manager, fake_workers):
    fake_workers.engines[FIRST] = {"reachable": False, "error": "docker engine unreachable: gone"}
    manager.sync_nodes()
    for i in range(3):
        manager_client.post("/tasks", json={"task": {"image": "busybox", "name": f"t{i}"}})
    manager.dispatch_pending()
    assert [address for address, _ in fake_workers.sent] == [SECOND] * 3


def test_a_worker_without_health_still_gets_tasks(manager_client, manager, fake_workers):
    from task import NotFound
    fake_workers.fail("health", "*", NotFound("no route /health"))
    manager.sync_nodes()
    assert all(n.accepts_tasks for n in manager.nodes())


# ----- the helpers

def test_stream_limit_refuses_beyond_its_limit():
    limit = StreamLimit(2, "log follows")
    first, second = limit.acquire(), limit.acquire()
    with pytest.raises(Unavailable, match="log follows"):
        limit.acquire()
    first()
    first()  # a second release is harmless
    third = limit.acquire()
    second(), third()


def test_relay_gives_up_on_a_blocked_source_when_told_to_stop():
    unblock, closed, woken = threading.Event(), [], []

    def source():
        yield b"one\n"
        woken.append(unblock.wait(10))  # True only if relay's close ended the wait
        yield b"never\n"
    stopping = threading.Event()
    received = []
    for chunk in relay(source(), lambda: (closed.append(True), unblock.set()), stop=stopping.is_set, poll=0.05):
        received.append(chunk)
        stopping.set()
    assert received == [b"one\n"] and closed == [True]
    assert woken in ([], [True]), "relay waited for the blocked source instead of closing it"
