"""Placement by capacity through the manager: allocation follows the tasks, a task that
fits nowhere waits with the reason and is placed when room appears. Fake workers (each
4 cores, 8 GiB) stand in for the real ones; the integration tests use real processes."""
import pytest

from manager.api import create_app
from manager.manager import Manager
from scheduler import Spread
from tests.api.conftest import WORKERS

W1, W2 = WORKERS


@pytest.fixture
def spread_manager(fake_workers, clock):
    manager = Manager(list(WORKERS), fake_workers, Spread(), clock=clock)
    manager.sync_nodes()
    return manager


def post(client, **task):
    response = client.post("/tasks", json={"task": {"image": "busybox", **task}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_a_task_that_fits_nowhere_waits_with_the_reason_until_a_task_ends(spread_manager, fake_workers):
    client = create_app(spread_manager).test_client()
    first, second, third = (post(client, cpu=3) for _ in range(3))
    spread_manager.dispatch_pending()
    placed = {client.get(f"/tasks/{i}").get_json()["node"] for i in (first, second)}
    assert placed == {W1, W2}
    waiting = client.get(f"/tasks/{third}").get_json()
    assert waiting["state"] == "pending" and waiting["node"] is None
    assert waiting["pending_reason"] == "no node can take it: 2 lack cpu (needs 3.0)"
    nodes = {n["name"]: n for n in client.get("/nodes").get_json()}
    assert nodes[W1]["allocated"]["cpu"] == nodes[W2]["allocated"]["cpu"] == 3.0
    assert nodes[W1]["capacity"] == {"cpu": 4.0, "memory": 8 << 30, "disk": 100 << 30}

    ended = client.get(f"/tasks/{first}").get_json()["node"]
    fake_workers.report(ended, first, state="completed", exit_code=0)
    spread_manager.sync_tasks()
    assert client.get("/nodes").get_json()[WORKERS.index(ended)]["allocated"]["cpu"] == 0.0
    spread_manager.dispatch_pending()
    now = client.get(f"/tasks/{third}").get_json()
    assert (now["state"], now["node"], now["pending_reason"]) == ("scheduled", ended, None)


def test_constraints_hold_and_a_failing_one_is_named(spread_manager):
    client = create_app(spread_manager).test_client()
    for node in spread_manager._nodes:
        node.labels = {"zone": "a" if node.name == W2 else "b"}
    ids = [post(client, constraints=[{"label": "zone", "op": "==", "value": "a"}]) for _ in range(3)]
    nowhere = post(client, constraints=[{"label": "zone", "op": "in", "value": ["c", "d"]}])
    spread_manager.dispatch_pending()
    assert {client.get(f"/tasks/{i}").get_json()["node"] for i in ids} == {W2}
    assert client.get(f"/tasks/{nowhere}").get_json()["pending_reason"] == \
        "no node can take it: 2 fail constraint zone in [c,d]"


def test_spread_without_requests_alternates_by_task_count(spread_manager):
    client = create_app(spread_manager).test_client()
    ids = [post(client) for _ in range(4)]
    spread_manager.dispatch_pending()
    nodes = [client.get(f"/tasks/{i}").get_json()["node"] for i in ids]
    assert sorted(nodes) == sorted([W1, W1, W2, W2])


def test_a_bad_constraint_is_refused_naming_the_field(spread_manager):
    client = create_app(spread_manager).test_client()
    answer = client.post("/tasks", json={"task": {"image": "busybox", "constraints": [{"label": "zone", "op": "~",
                                                                                      "value": "a"}]}})
    assert answer.status_code == 400 and "task.constraints[0].op" in answer.get_json()["error"]
