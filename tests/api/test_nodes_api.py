"""The node routes and drains through the manager's API, with fake workers (in memory). The
integration tests drive the same against real processes and the real engine."""
import pytest

from manager.api import create_app
from manager.manager import Manager
from scheduler import Spread
from store import MemoryStore
from tests.api.conftest import WORKERS

W1, W2 = WORKERS
W3 = "w3:3"


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
def mgr(fake_workers, clock, store):
    manager = Manager(list(WORKERS), fake_workers, Spread(), store=store, clock=clock)
    manager.sync_nodes()
    return manager


@pytest.fixture
def client(mgr):
    return create_app(mgr).test_client()


def post_task(client, **task):
    answer = client.post("/tasks", json={"task": {"image": "busybox", **task}})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def task_of(client, task_id):
    return client.get(f"/tasks/{task_id}").get_json()


def settle(mgr, rounds=6):
    """Run the manager's passes a few times (dispatch, kills, drains, mirror)."""
    for _ in range(rounds):
        mgr.dispatch_pending()
        mgr.sync_tasks()


# ----- join, lookups, bad input


def test_a_worker_joins_and_rejoins(client, mgr):
    body = {"name": "w3", "address": W3, "capacity": {"cpu": 2, "memory": "4g"}, "labels": {"zone": "a"},
            "id": "0b7c9a4e-3f0e-4d55-9d2a-5b0b1a1d2c3e"}
    joined = client.post("/nodes", json=body)
    assert joined.status_code == 201 and joined.headers["Location"] == "/nodes/w3"
    node = joined.get_json()
    assert (node["name"], node["address"], node["status"], node["eligible"], node["drain"]) == \
        ("w3", W3, "down", True, None)
    assert node["capacity"] == {"cpu": 2.0, "memory": 4 << 30, "disk": 0} and node["labels"] == {"zone": "a"}
    assert node["id"] == body["id"]
    mgr.sync_nodes()
    assert client.get("/nodes/w3").get_json()["status"] == "up"
    again = client.post("/nodes", json=body)
    assert again.status_code == 200 and again.get_json()["id"] == body["id"]
    assert [n["name"] for n in client.get("/nodes").get_json()] == [W1, W2, "w3"]


def test_a_name_taken_at_another_address_while_up_is_refused(client, mgr):
    answer = client.post("/nodes", json={"name": W1, "address": "10.0.0.9:1"})
    assert answer.status_code == 409 and W1 in answer.get_json()["error"]


def test_a_name_whose_node_is_down_may_move_to_another_address(client, mgr, fake_workers):
    client.post("/nodes", json={"name": "w3", "address": W3})
    answer = client.post("/nodes", json={"name": "w3", "address": "w3b:4"})
    assert answer.status_code == 200 and answer.get_json()["address"] == "w3b:4"


@pytest.mark.parametrize("body, named", [
    ({}, "address is required"),
    ({"address": "nohost"}, "address must be host:port"),
    ({"address": "h:99999"}, "address must be host:port"),
    ({"address": "h:1", "name": "a b"}, "name must be"),
    ({"address": "h:1", "capacity": {"cpu": -1}}, "capacity.cpu"),
    ({"address": "h:1", "capacity": {"gpu": 1}}, "unknown field capacity.gpu"),
    ({"address": "h:1", "capacity": {"memory": "lots"}}, "capacity.memory"),
    ({"address": "h:1", "labels": {"zone": 3}}, "labels.zone"),
    ({"address": "h:1", "labels": ["zone"]}, "labels must be a JSON object"),
    ({"address": "h:1", "id": "nope"}, "id must be a UUID"),
    ({"address": "h:1", "extra": 1}, "unknown field extra"),
])
def test_bad_registrations_are_refused_naming_the_field(client, body, named):
    answer = client.post("/nodes", json=body)
    assert answer.status_code == 400 and named in answer.get_json()["error"]


@pytest.mark.parametrize("method, path, body", [
    ("get", "/nodes/nope", None), ("post", "/nodes/nope/eligibility", {"eligible": False}),
    ("post", "/nodes/nope/drain", {}), ("delete", "/nodes/nope", None), ("get", "/nodes/a%20b", None),
])
def test_unknown_nodes_are_404(client, method, path, body):
    answer = getattr(client, method)(path, json=body) if body is not None else getattr(client, method)(path)
    assert answer.status_code == 404 and "not found" in answer.get_json()["error"]


@pytest.mark.parametrize("path, body, named", [
    (f"/nodes/{W1}/eligibility", {}, "eligible is required"),
    (f"/nodes/{W1}/eligibility", {"eligible": "no"}, "eligible is required"),
    (f"/nodes/{W1}/drain", {"deadline": -1}, "deadline must be"),
    (f"/nodes/{W1}/drain", {"force": 1}, "force must be true or false"),
    (f"/nodes/{W1}/drain", {"parallel": 0}, "parallel must be"),
    (f"/nodes/{W1}/drain", {"when": 1}, "unknown field when"),
])
def test_bad_node_requests_are_400(client, path, body, named):
    answer = client.post(path, json=body)
    assert answer.status_code == 400 and named in answer.get_json()["error"]


# ----- eligibility


def test_an_ineligible_node_gets_no_new_tasks_and_keeps_its_running_ones(client, mgr):
    first = post_task(client)
    settle(mgr)
    home = task_of(client, first)["node"]
    other = W2 if home == W1 else W1
    answer = client.post(f"/nodes/{home}/eligibility", json={"eligible": False})
    assert answer.status_code == 200 and answer.get_json()["eligible"] is False
    later = [post_task(client) for _ in range(3)]
    settle(mgr)
    assert {task_of(client, t)["node"] for t in later} == {other}
    assert task_of(client, first)["node"] == home and task_of(client, first)["state"] == "scheduled"
    client.post(f"/nodes/{other}/eligibility", json={"eligible": False})
    stuck = post_task(client)
    settle(mgr)
    assert task_of(client, stuck)["pending_reason"] == "no node can take it: 2 ineligible"
    client.post(f"/nodes/{home}/eligibility", json={"eligible": True})
    settle(mgr)
    assert task_of(client, stuck)["node"] == home


# ----- drains


def test_a_drain_moves_plain_tasks_one_at_a_time_stopping_each_first(client, mgr, fake_workers):
    client.post(f"/nodes/{W2}/eligibility", json={"eligible": False})
    ids = [post_task(client) for _ in range(2)]
    settle(mgr)
    assert {task_of(client, t)["node"] for t in ids} == {W1}
    client.post(f"/nodes/{W2}/eligibility", json={"eligible": True})
    answer = client.post(f"/nodes/{W1}/drain", json={"deadline": 600})
    assert answer.status_code == 202
    node = answer.get_json()
    assert node["eligible"] is False and node["drain"]["remaining"] == 2 and node["drain"]["deadline"]

    mgr.drain_nodes()  # the first task is detached from W1 and its copy told to stop
    moved = [t for t in ids if task_of(client, t)["node"] is None]
    assert len(moved) == 1
    assert (W1, moved[0]) in fake_workers.stops or not fake_workers.stops  # the stop is sent by the next pass
    mgr.dispatch_pending()  # sends the kill; the worker reports the copy ended
    assert (W1, moved[0]) in fake_workers.stops
    settle(mgr)
    assert task_of(client, moved[0])["node"] == W2 and task_of(client, moved[0])["attempt"] == 2
    settle(mgr)
    assert {task_of(client, t)["node"] for t in ids} == {W2}
    drained = client.get(f"/nodes/{W1}").get_json()
    assert drained["drain"] is None and drained["eligible"] is False and drained["allocated"]["cpu"] == 0
    assert all(task_of(client, t)["restart_count"] == 0 for t in ids)


def test_the_old_copy_is_stopped_before_the_new_attempt_is_placed(client, mgr, fake_workers):
    only = post_task(client)
    settle(mgr)
    home = task_of(client, only)["node"]
    fake_workers.fail("stop_task", home, __import__("task").WorkerUnavailable("busy"))
    client.post(f"/nodes/{home}/drain", json={})
    settle(mgr)
    assert task_of(client, only)["node"] is None and task_of(client, only)["state"] == "scheduled"
    assert client.get(f"/nodes/{home}").get_json()["drain"]["remaining"] == 1
    fake_workers.heal()
    mgr._clock.advance(5)
    settle(mgr)
    assert task_of(client, only)["node"] not in (None, home)
    assert client.get(f"/nodes/{home}").get_json()["drain"] is None


def test_force_and_the_deadline_move_everything_at_once(client, mgr, clock):
    client.post(f"/nodes/{W2}/eligibility", json={"eligible": False})
    ids = [post_task(client) for _ in range(3)]
    settle(mgr)
    client.post(f"/nodes/{W2}/eligibility", json={"eligible": True})
    client.post(f"/nodes/{W1}/drain", json={"deadline": 60})
    mgr.drain_nodes()
    assert sum(task_of(client, t)["node"] is None for t in ids) == 1
    clock.advance(61)
    mgr.drain_nodes()
    assert sum(task_of(client, t)["node"] is None for t in ids) == 3


def test_force_moves_everything_at_once(client, mgr):
    client.post(f"/nodes/{W2}/eligibility", json={"eligible": False})
    ids = [post_task(client) for _ in range(3)]
    settle(mgr)
    client.post(f"/nodes/{W2}/eligibility", json={"eligible": True})
    client.post(f"/nodes/{W1}/drain", json={"force": True})
    mgr.drain_nodes()
    assert all(task_of(client, t)["node"] is None for t in ids)
    settle(mgr)
    assert {task_of(client, t)["node"] for t in ids} == {W2}


def test_cancel_stops_a_drain_and_makes_the_node_eligible(client, mgr):
    assert client.post(f"/nodes/{W1}/drain", json={"cancel": True}).status_code == 409
    client.post(f"/nodes/{W1}/drain")
    assert client.post(f"/nodes/{W1}/eligibility", json={"eligible": True}).status_code == 409
    answer = client.post(f"/nodes/{W1}/drain", json={"cancel": True})
    assert answer.status_code == 202 and answer.get_json()["drain"] is None and answer.get_json()["eligible"]


def test_a_task_of_a_service_is_offered_to_the_replacement_hook(client, mgr):
    offered = []
    mgr.drain_replacement = lambda task, node: offered.append((task.id, node)) or True
    only = post_task(client)
    settle(mgr)
    with mgr._lock:
        mgr._tasks[only].service = "web"
    home = task_of(client, only)["node"]
    client.post(f"/nodes/{home}/drain", json={})
    mgr.drain_nodes()
    mgr.drain_nodes()
    assert offered == [(only, home)]  # once: it is the services layer's until it leaves the node
    assert task_of(client, only)["node"] == home


# ----- leave


def test_remove_only_a_node_that_is_down_or_drained(client, mgr, fake_workers, clock):
    answer = client.delete(f"/nodes/{W1}")
    assert answer.status_code == 409 and "drain it first" in answer.get_json()["error"]
    client.post(f"/nodes/{W1}/drain", json={})
    settle(mgr)
    assert client.delete(f"/nodes/{W1}").status_code == 200
    assert [n["name"] for n in client.get("/nodes").get_json()] == [W2]
    assert client.get(f"/nodes/{W1}").status_code == 404
    fake_workers.fail("stats", W2, __import__("task").WorkerUnreachable("gone"))
    for _ in range(3):
        mgr.sync_nodes()
    assert client.delete(f"/nodes/{W2}").status_code == 200
    assert client.get("/nodes").get_json() == []


def test_a_node_with_tasks_still_placed_cannot_be_removed(client, mgr):
    only = post_task(client)
    settle(mgr)
    home = task_of(client, only)["node"]
    client.post(f"/nodes/{home}/eligibility", json={"eligible": False})
    answer = client.delete(f"/nodes/{home}")
    assert answer.status_code == 409 and "1 task(s) placed" in answer.get_json()["error"]


def test_nodes_their_eligibility_drains_and_removals_survive_a_manager_restart(client, mgr, fake_workers, clock,
                                                                             store):
    client.post(f"/nodes/{W1}/drain", json={})
    settle(mgr)
    assert client.delete(f"/nodes/{W1}").status_code == 200
    client.post("/nodes", json={"name": "w3", "address": W3, "labels": {"zone": "a"}})
    client.post(f"/nodes/{W2}/eligibility", json={"eligible": False})
    client.post("/nodes/w3/drain", json={"deadline": 600})  # not run yet: still draining when the manager stops
    again = Manager(list(WORKERS), fake_workers, Spread(), store=store, clock=clock)
    nodes = {n.name: n for n in again.nodes()}
    assert set(nodes) == {W2, "w3"}
    assert nodes[W2].eligible is False and nodes["w3"].labels == {"zone": "a"}
    assert nodes["w3"].drain is not None and nodes["w3"].eligible is False


def test_registration_needs_the_token_when_one_is_set(mgr):
    from common.http import require_token

    app = create_app(mgr)
    require_token(app, "s" * 32)
    client = app.test_client()
    body = {"name": "w3", "address": W3}
    assert client.post("/nodes", json=body).status_code == 401
    assert client.post("/nodes", json=body, headers={"Authorization": "Bearer " + "x" * 32}).status_code == 401
    assert client.post("/nodes", json=body, headers={"Authorization": "Bearer " + "s" * 32}).status_code == 201
