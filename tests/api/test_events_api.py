"""GET /events (Flask test client, fake workers): what the manager publishes, and the stream.

The real thing (waitress, a client that hangs up, real workers and Docker) is in
tests/integration/test_events_stream.py.
"""
from __future__ import annotations

import json
import time

import pytest

from manager.api import create_app
from manager.events import EventLog
from manager.manager import Manager
from scheduler import RoundRobin
from task import WorkerUnreachable
from tests.api.conftest import WORKERS

W1 = WORKERS[0]


class Stream:
    """An open GET /events response read message by message."""

    def __init__(self, response) -> None:
        self.response = response
        self._chunks = iter(response.response)
        self._buffer = ""
        self.comments: list[str] = []

    def messages(self, until, timeout: float = 5.0) -> list[dict]:
        """Read messages until `until(messages)` holds; fail after `timeout` s."""
        found: list[dict] = []
        deadline = time.monotonic() + timeout
        while not until(found):
            assert time.monotonic() < deadline, f"stream gave only {found}"
            self._buffer += next(self._chunks).decode()
            while "\n\n" in self._buffer:
                block, self._buffer = self._buffer.split("\n\n", 1)
                found.extend(self._parse(block))
        return found

    def _parse(self, block: str) -> list[dict]:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" not in fields:
            return []
        return [{"id": fields.get("id"), "event": fields.get("event"), "data": json.loads(fields["data"])}]

    def close(self) -> None:
        self.response.close()


@pytest.fixture
def app(manager):
    return create_app(manager, max_event_streams=2, heartbeat=0.05)


@pytest.fixture
def client(app):
    return app.test_client()


def open_stream(client, query: str = "", **headers) -> Stream:
    response = client.get(f"/events{query}", headers=headers, buffered=False)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    return Stream(response)


def task_events(manager, since: int = 0) -> list[tuple[str, str, int]]:
    events, _ = manager.events.since(since, ("task",))
    return [(e["kind"], e["data"]["state"], e["data"]["attempt"]) for e in events]


def submit(client, command=("sleep", "30")) -> str:
    response = client.post("/tasks", json={"task": {"image": "busybox", "command": list(command)}})
    assert response.status_code == 201, response.data
    return response.get_json()["id"]


def test_every_task_change_is_published_with_its_attempt(manager, client, fake_workers):
    manager.sync_nodes()
    task_id = submit(client)
    manager.dispatch_pending()
    fake_workers.report(W1, task_id, state="running", attempt=1)
    manager.sync_tasks()
    assert client.delete(f"/tasks/{task_id}").status_code == 202
    manager.dispatch_pending()
    manager.sync_tasks()
    assert manager.get(task_id).state.value == "completed"
    changes = [event for event in task_events(manager) if event[0] != "updated"]
    assert changes == [("created", "pending", 0), ("state", "scheduled", 1), ("state", "running", 1),
                       ("state", "completed", 1)]
    events, _ = manager.events.since(0, ("task",))
    assert {e["data"]["id"] for e in events} == {task_id}
    stop_asked = next(e for e in events if e["data"]["desired_state"] == "stopped")
    assert stop_asked["kind"] == "updated" and stop_asked["data"]["state"] == "running"
    assert events[-1]["data"]["previous"] == "running" and events[-1]["data"]["node"] == W1


def test_a_lost_and_returning_node_is_published(manager, fake_workers, clock):
    manager.sync_nodes()  # both answer: up
    fake_workers.fail("stats", W1, WorkerUnreachable("no route"))
    for _ in range(3):
        manager.sync_nodes()
    fake_workers.heal()
    manager.sync_nodes()
    events, _ = manager.events.since(0, ("node",))
    assert [(e["kind"], e["data"]["name"]) for e in events] == [("up", W1), ("up", WORKERS[1]), ("down", W1),
                                                                ("up", W1)]
    assert "no route" in events[2]["data"]["error"] and events[2]["data"]["status"] == "down"


def test_the_stream_sends_events_after_since_then_new_ones_live(manager, client):
    first = submit(client)
    stream = open_stream(client, "?since=0")
    try:
        got = stream.messages(lambda m: len(m) >= 1)
        assert got[0]["id"] == "1" and got[0]["event"] == "task"
        assert got[0]["data"]["index"] == 1 and got[0]["data"]["data"]["id"] == first
        second = submit(client)
        got = stream.messages(lambda m: len(m) >= 1)
        assert got[0]["data"]["data"]["id"] == second and got[0]["id"] == "2"
    finally:
        stream.close()


def test_without_since_only_new_events_come_and_last_event_id_resumes(manager, client):
    submit(client)
    submit(client)
    fresh = open_stream(client)
    try:
        third = submit(client)
        got = fresh.messages(lambda m: len(m) >= 1)
        assert [m["data"]["data"]["id"] for m in got] == [third]
    finally:
        fresh.close()
    resumed = open_stream(client, "?since=0", **{"Last-Event-ID": "1"})  # a reconnecting EventSource
    try:
        got = resumed.messages(lambda m: len(m) >= 2)
        assert [m["id"] for m in got] == ["2", "3"]
    finally:
        resumed.close()


def test_a_topic_filter_sends_only_those_topics(manager, client, fake_workers):
    stream = open_stream(client, "?since=0&topic=node")
    try:
        submit(client)
        manager.sync_nodes()
        got = stream.messages(lambda m: len(m) >= 2)
        assert {m["event"] for m in got} == {"node"}
        assert [m["data"]["kind"] for m in got] == ["up", "up"]
    finally:
        stream.close()


def test_idle_streams_get_heartbeat_comments(client):
    stream = open_stream(client)
    try:
        stream.messages(lambda m: "heartbeat" in stream.comments)
    finally:
        stream.close()


def test_an_index_no_longer_kept_answers_410_with_the_oldest(fake_workers, clock):
    manager = Manager(list(WORKERS), fake_workers, RoundRobin(), clock=clock, events=EventLog(capacity=3))
    client = create_app(manager).test_client()
    for _ in range(3):
        submit(client)  # events 1..3
    assert client.get("/events?since=0", buffered=False).status_code == 200  # 1..3 all kept
    submit(client)  # event 4 pushes out event 1
    response = client.get("/events?since=0")
    assert response.status_code == 410
    assert response.get_json() == {"error": "events after 0 are gone; the oldest kept is 2", "oldest": 2, "last": 4}
    ahead = client.get("/events?since=99")
    assert ahead.status_code == 410 and "restarted" in ahead.get_json()["error"]


def test_a_reader_overtaken_by_the_ring_gets_a_gone_message_and_the_stream_ends(fake_workers, clock):
    manager = Manager(list(WORKERS), fake_workers, RoundRobin(), clock=clock, events=EventLog(capacity=2))
    app = create_app(manager, heartbeat=0.05)
    client = app.test_client()
    stream = open_stream(client, "?since=0")
    try:
        stream.messages(lambda m: True)  # the opening comment: the reader sits at index 0
        for _ in range(3):
            submit(client)
        got = stream.messages(lambda m: bool(m))
        assert got[0]["event"] == "gone" and got[0]["data"]["oldest"] == 2
        with pytest.raises(StopIteration):
            stream.messages(lambda m: False)
    finally:
        stream.close()


@pytest.mark.parametrize("query, field", [("?since=-1", "since"), ("?since=x", "since"), ("?topic=tasks", "topic"),
                                          ("?topic=task,,nodes", "topic")])
def test_bad_parameters_get_400_naming_them(client, query, field):
    response = client.get(f"/events{query}")
    assert response.status_code == 400 and field in response.get_json()["error"]


def test_a_bad_last_event_id_gets_400(client):
    response = client.get("/events", headers={"Last-Event-ID": "abc"})
    assert response.status_code == 400 and "Last-Event-ID" in response.get_json()["error"]


def test_streams_beyond_the_limit_get_503_and_a_closed_one_frees_its_slot(client):
    streams = [open_stream(client), open_stream(client)]
    refused = client.get("/events")
    assert refused.status_code == 503 and "event streams" in refused.get_json()["error"]
    streams[0].close()
    streams[0] = open_stream(client)
    for stream in streams:
        stream.close()


def test_shutdown_ends_open_streams(manager, client):
    stream = open_stream(client)
    manager.close_intake()
    with pytest.raises(StopIteration):
        stream.messages(lambda m: False)
    stream.close()


def test_a_reload_from_the_store_publishes_what_changed_there(fake_workers, clock):
    from store import MemoryStore

    store = MemoryStore()
    follower = Manager(list(WORKERS), fake_workers, RoundRobin(), store=store, clock=clock)
    leader = Manager(list(WORKERS), fake_workers, RoundRobin(), store=store, clock=clock)
    task_id = submit(create_app(leader).test_client())
    follower.reload()
    assert task_events(follower) == [("created", "pending", 0)]
    follower.reload()  # nothing changed: nothing published
    assert follower.events.last == 1
    leader.stop(task_id)
    follower.reload()
    assert task_events(follower, since=1) == [("state", "completed", 0)]
