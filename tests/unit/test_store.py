"""The Store protocol on both implementations; SQLite also across a reopen."""
from __future__ import annotations

import threading

import pytest

from store import MemoryStore, SqliteStore
from store.sqlite import StoreClosed


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else SqliteStore(str(tmp_path / "t.db"))
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


def test_concurrent_writers_all_land_and_survive_a_reopen(tmp_path):
    path = str(tmp_path / "t.db")
    store = SqliteStore(path)

    def writer(n: int) -> None:
        for i in range(50):
            store.put("task", f"{n}-{i}", {"n": n, "i": i})
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    reopened = SqliteStore(path)
    assert reopened.count("task") == 800
    assert reopened.get("task", "15-49") == {"n": 15, "i": 49}
    reopened.close()


def test_close_commits_what_was_submitted_and_refuses_later_writes(tmp_path):
    path = str(tmp_path / "t.db")
    store = SqliteStore(path)
    wait = store.submit([("task", "late", {"ok": True})])
    store.close()
    wait()  # already committed by close()
    with pytest.raises(StoreClosed):
        store.put("task", "after", {})
    reopened = SqliteStore(path)
    assert reopened.get("task", "late") == {"ok": True}
    reopened.close()
