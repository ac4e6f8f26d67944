"""The manager's event log (manager/events.py): indices, the bounded ring, topics, gone, waits."""
from __future__ import annotations

import threading

import pytest

from manager.events import TOPICS, EventLog, EventsGone, check_topics


def fill(log: EventLog, count: int, topic: str = "task") -> list[int]:
    return [log.publish(topic, "state", {"n": n}) for n in range(count)]


def test_indices_start_at_one_and_grow_by_one_across_topics():
    log = EventLog(capacity=10)
    assert (log.last, log.oldest) == (0, 1)
    assert [log.publish(topic, "k", {}) for topic in TOPICS] == [1, 2, 3, 4]
    events, position = log.since(0)
    assert [(e["index"], e["topic"]) for e in events] == list(zip([1, 2, 3, 4], TOPICS))
    assert position == 4 and log.last == 4


def test_since_returns_only_later_events_and_a_limit_moves_the_position():
    log = EventLog(capacity=100)
    fill(log, 10)
    events, position = log.since(3, limit=4)
    assert [e["index"] for e in events] == [4, 5, 6, 7] and position == 7
    events, position = log.since(position)
    assert [e["index"] for e in events] == [8, 9, 10] and position == 10
    assert log.since(10) == ([], 10)


def test_a_topic_filter_skips_others_but_still_moves_on():
    log = EventLog(capacity=100)
    log.publish("task", "state", {"id": "a"})
    log.publish("node", "down", {"name": "w1"})
    log.publish("task", "state", {"id": "b"})
    log.publish("node", "up", {"name": "w1"})
    events, position = log.since(0, ("node",))
    assert [(e["index"], e["kind"]) for e in events] == [(2, "down"), (4, "up")] and position == 4
    events, position = log.since(2, ("task",), limit=1)
    assert [e["data"]["id"] for e in events] == ["b"] and position == 3


def test_the_ring_keeps_the_last_capacity_events_and_older_reads_are_gone():
    log = EventLog(capacity=5)
    fill(log, 12)
    assert (log.oldest, log.last) == (8, 12)
    events, _ = log.since(7)
    assert [e["index"] for e in events] == [8, 9, 10, 11, 12]
    assert [e["data"]["n"] for e in events] == [7, 8, 9, 10, 11]
    with pytest.raises(EventsGone) as gone:
        log.since(6)
    assert (gone.value.index, gone.value.oldest, gone.value.last) == (6, 8, 12)
    assert "oldest kept is 8" in str(gone.value)


def test_an_index_ahead_of_the_log_is_gone_too():
    log = EventLog(capacity=5)
    fill(log, 2)
    with pytest.raises(EventsGone) as gone:
        log.since(3)
    assert gone.value.oldest == 1 and "restarted" in str(gone.value)


def test_published_data_is_a_copy():
    log = EventLog()
    data = {"id": "a", "nested": {"state": "running"}}
    log.publish("task", "state", data)
    data["nested"]["state"] = "failed"
    assert log.since(0)[0][0]["data"]["nested"]["state"] == "running"


def test_unknown_topics_are_refused():
    log = EventLog()
    with pytest.raises(ValueError):
        log.publish("tasks", "state", {})
    with pytest.raises(ValueError, match="unknown topic 'nodes'"):
        check_topics(["task", "nodes"])
    assert check_topics(["node", "task", "node"]) == ("node", "task")


def test_wait_returns_when_an_event_arrives_and_when_closed():
    log = EventLog()
    fill(log, 1)
    assert log.wait(0, timeout=0) is True  # already newer: no wait
    assert log.wait(1, timeout=0.01) is False
    arrived = threading.Event()

    def waiter():
        if log.wait(1, timeout=30):
            arrived.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    log.publish("node", "up", {})
    thread.join(30)
    assert arrived.is_set()

    closed_waiter = threading.Thread(target=log.wait, args=(log.last, 30))
    closed_waiter.start()
    log.close()
    closed_waiter.join(30)
    assert not closed_waiter.is_alive() and log.closed


def test_concurrent_publishers_get_distinct_gapless_indices():
    log = EventLog(capacity=100_000)
    threads = [threading.Thread(target=fill, args=(log, 1000)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events, position = log.since(0, limit=100_000)
    assert [e["index"] for e in events] == list(range(1, 8001)) and position == 8000
