"""Paged, filtered listings of tasks and nodes (GET /tasks, GET /nodes and Manager.query_*),
and the per-state counts /metrics reads, with Flask's test client and the fake workers."""
import random
from urllib.parse import quote

import pytest

from manager.index import TaskIndex
from manager.queries import DEFAULT_LIMIT, MAX_LIMIT
from task import State, Task

W1, W2 = "w1:1", "w2:2"


def submit(client, count):
    ids = []
    for _ in range(count):
        response = client.post("/tasks", json={"task": {"image": "busybox"}})
        assert response.status_code == 201
        ids.append(response.get_json()["id"])
    return ids


def pages(client, path, **params):
    """Every page of a listing, following X-Orca-Next; returns the pages' id lists."""
    result, after = [], None
    while True:
        query = {**params, **({"after": after} if after else {})}
        response = client.get(path, query_string=query)
        assert response.status_code == 200, response.get_json()
        key = "id" if path == "/tasks" else "name"
        result.append([item[key] for item in response.get_json()])
        after = response.headers.get("X-Orca-Next")
        if after is None:
            assert "Link" not in response.headers
            return result
        assert after == result[-1][-1]
        assert f"after={quote(after)}" in response.headers["Link"] and 'rel="next"' in response.headers["Link"]


def test_pages_list_every_task_once_in_intake_order(manager_client):
    ids = submit(manager_client, 23)
    listed = pages(manager_client, "/tasks", limit=5)
    assert [len(p) for p in listed] == [5, 5, 5, 5, 3]
    assert sum(listed, []) == ids


def test_a_page_that_ends_exactly_at_the_last_task_has_no_next_cursor(manager_client):
    ids = submit(manager_client, 4)
    response = manager_client.get("/tasks", query_string={"limit": 4})
    assert [t["id"] for t in response.get_json()] == ids
    assert "X-Orca-Next" not in response.headers


def test_the_unpaged_form_is_the_first_page_of_the_default_size(manager, manager_client):
    ids = submit(manager_client, 3)
    response = manager_client.get("/tasks")
    assert [t["id"] for t in response.get_json()] == ids and "X-Orca-Next" not in response.headers
    assert manager.query_tasks().items and DEFAULT_LIMIT < MAX_LIMIT


def test_filters_by_state_and_node_page_through_matches_only(manager, manager_client, fake_workers):
    ids = submit(manager_client, 12)
    manager.sync_nodes()
    manager.dispatch_pending()  # round robin: even ids on w1, odd on w2, all scheduled
    for task_id in ids[:6]:
        address = W1 if ids.index(task_id) % 2 == 0 else W2
        fake_workers.report(address, task_id, state="running", container_id="c")
    manager.sync_tasks()
    running_w1 = [i for n, i in enumerate(ids[:6]) if n % 2 == 0]
    assert sum(pages(manager_client, "/tasks", state="running", node=W1, limit=2), []) == running_w1
    assert sum(pages(manager_client, "/tasks", state="scheduled", limit=4), []) == ids[6:]
    assert sum(pages(manager_client, "/tasks", node=W2, limit=100), []) == ids[1::2]
    assert pages(manager_client, "/tasks", state="failed") == [[]]
    assert pages(manager_client, "/tasks", node="nowhere:1") == [[]]
    assert pages(manager_client, "/tasks", service="web") == [[]]  # no task belongs to a service


def test_counts_follow_state_changes_without_a_walk(manager, manager_client, fake_workers):
    ids = submit(manager_client, 5)
    assert manager.task_counts()["pending"] == 5
    manager.sync_nodes()
    manager.dispatch_pending()
    fake_workers.report(W1, ids[0], state="running", container_id="c")
    manager.sync_tasks()
    manager_client.delete(f"/tasks/{ids[0]}")
    counts = manager.task_counts()
    assert counts == {"pending": 0, "scheduled": 4, "running": 1, "completed": 0, "failed": 0}
    text = manager_client.get("/metrics").get_data(as_text=True)
    assert 'orca_tasks{state="scheduled"} 4.0' in text and 'orca_tasks{state="running"} 1.0' in text


@pytest.mark.parametrize("query, word", [
    ({"limit": "0"}, "limit"), ({"limit": str(MAX_LIMIT + 1)}, "limit"), ({"limit": "x"}, "limit"),
    ({"after": "no-such-task"}, "after"), ({"after": ""}, "after"), ({"state": "asleep"}, "state"),
    ({"node": ""}, "node"), ({"service": "s" * 300}, "service"),
])
def test_bad_paging_parameters_answer_400_naming_them(manager_client, query, word):
    submit(manager_client, 1)
    response = manager_client.get("/tasks", query_string=query)
    assert response.status_code == 400
    assert word in response.get_json()["error"]


def test_nodes_are_paged_and_filtered_by_state(manager, manager_client, fake_workers):
    assert pages(manager_client, "/nodes", limit=1) == [[W1], [W2]]
    assert pages(manager_client, "/nodes", state="up") == [[]]
    fake_workers.fail("stats", W2, Exception("no"))
    manager.sync_nodes()
    assert pages(manager_client, "/nodes", state="up") == [[W1]]
    for query, word in (({"state": "sideways"}, "state"), ({"after": "w9:9"}, "after"), ({"limit": "-1"}, "limit")):
        response = manager_client.get("/nodes", query_string=query)
        assert response.status_code == 400 and word in response.get_json()["error"]


# ----- the index itself, against a plain filter over a random history


def test_index_pages_match_a_plain_filter_through_random_changes():
    rng = random.Random(7)
    index, tasks = TaskIndex(), {}
    for step in range(3000):
        choice = rng.random()
        if choice < 0.4 or not tasks:
            task = Task(state=State.PENDING)
            tasks[task.id] = task
        elif choice < 0.9:
            task = tasks[rng.choice(sorted(tasks))]
            task.state, task.node = rng.choice(list(State)), rng.choice((None, "a", "b", "c"))
        else:
            gone = rng.choice(sorted(tasks))
            del tasks[gone]
            index.remove(gone)
            continue
        index.update(task)
    order = list(tasks)
    for state in [None, *State]:
        for node in (None, "a", "z"):
            filters = {k: v for k, v in (("state", state and state.value), ("node", node)) if v is not None}
            expected = [i for i in order if all(
                (tasks[i].state.value if k == "state" else tasks[i].node) == v for k, v in filters.items())]
            for limit in (1, 7, 5000):
                got, after = [], None
                while True:
                    ids, after = index.page(filters, after, limit)
                    got += ids
                    if after is None:
                        break
                assert got == expected, (filters, limit)
    assert dict(index.counts) == {s.value: sum(t.state is s for t in tasks.values()) for s in State
                                  if any(t.state is s for t in tasks.values()) or index.counts.get(s.value)}
