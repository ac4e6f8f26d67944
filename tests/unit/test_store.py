"""The Store protocol on every implementation (memory, SQLite, PostgreSQL); the persistent
ones also across a reopen, under concurrent writers, and through close()."""
from __future__ import annotations

import threading

import pytest

from store import MemoryStore, SqliteStore
from store.group import StoreClosed


def _opener(kind: str, request, tmp_path):
    """A function opening the same store again each time it is called."""
    if kind == "memory":
        return MemoryStore
    if kind == "sqlite":
        return lambda: SqliteStore(str(tmp_path / "t.db"))
    from store.postgres import PostgresStore

    url = request.getfixturevalue("pg_database")
    return lambda: PostgresStore(url)


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request, tmp_path):
    """The persistent stores."""
    return _opener(request.param, request, tmp_path)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path):
    s = _opener(request.param, request, tmp_path)()
    yield s
    s.close()


def test_put_get_list_count_delete(store):
    store.put("task", "a", {"x": 1})
    store.put("task", "b", {"x": 2})
    store.put("task", "a", {"x": 3})  # an update keeps its first place
    store.put("event", "e", {"y": 1})
    assert store.get("task", "a") == {"x": 3}
    assert store.get("task", "nope") is None
    assert store.list("task") == [{"x": 3}, {"x": 2}]
    assert (store.count("task"), store.count("event")) == (2, 1)
    store.delete("task", "a")
    assert store.list("task") == [{"x": 2}]


def test_values_are_copies(store):
    value = {"list": [1]}
    store.put("task", "a", value)
    value["list"].append(2)
    assert store.get("task", "a") == {"list": [1]}


def test_concurrent_writers_all_land_and_survive_a_reopen(opener):
    store = opener()

    def writer(n: int) -> None:
        for i in range(50):
            store.put("task", f"{n}-{i}", {"n": n, "i": i})
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    reopened = opener()
    assert reopened.count("task") == 800
    assert reopened.get("task", "15-49") == {"n": 15, "i": 49}
    reopened.close()


def test_close_commits_what_was_submitted_and_refuses_later_writes(opener):
    store = opener()
    wait = store.submit([("task", "late", {"ok": True})])
    store.close()
    wait()  # already committed by close()
    with pytest.raises(StoreClosed):
        store.put("task", "after", {})
    reopened = opener()
    assert reopened.get("task", "late") == {"ok": True}
    reopened.close()


def test_changes_in_one_batch_apply_in_order(store):
    store.put_many([("task", "a", {"v": 1}), ("task", "a", None), ("task", "b", {"v": 2}),
                    ("task", "a", {"v": 3}), ("event", "e", {"v": 4}), ("event", "e", None)])
    assert store.get("task", "a") == {"v": 3}
    assert store.get("event", "e") is None
    assert (store.count("task"), store.count("event")) == (2, 0)


def test_kinds_unknown_to_orca_round_trip(store):
    """Other parts (nodes, services) add kinds through the same protocol."""
    store.put("service", "web", {"replicas": 3, "labels": {"a": "b"}, "text": "é\u0000"})
    assert store.list("service") == [{"replicas": 3, "labels": {"a": "b"}, "text": "é\u0000"}]
    assert store.list("nothing") == [] and store.count("nothing") == 0
    store.delete("nothing", "absent")  # deleting what is not there is not an error
