"""The /services routes through Flask's test client, over a real Manager with fake workers
and a fake clock: requests, validation, and the reconcile pass driving replicas."""
from __future__ import annotations

import pytest

from manager.api import create_app
from manager.services import Services

IMAGE = "busybox"


@pytest.fixture
def services(manager, clock):
    return Services(manager, manager.store, clock=clock, replace_delay=0.0)


@pytest.fixture
def client(manager, services):
    return create_app(manager, services=services).test_client()


def body(name="web", replicas=3, **task):
    return {"name": name, "replicas": replicas, "task": {"image": IMAGE, "command": ["sleep", "60"], **task},
            "update": {"min_healthy_time": 2, "healthy_deadline": 30}}


def settle(manager, services, fake_workers, clock, rounds=6, run=True):
    """Reconcile, dispatch, let the fake workers start what they got, mirror it back."""
    manager.sync_nodes()
    for _ in range(rounds):
        services.reconcile_services()
        manager.dispatch_pending()
        if run:
            for task in manager.list():
                if task.state.value == "scheduled" and task.node and task.desired_state == "running":
                    fake_workers.report(task.node, task.id, state="running", attempt=task.attempt,
                                        container_id=f"c-{task.id[:8]}")
        manager.sync_tasks()
        clock.advance(1.0)


def replicas(client, name="web"):
    return [t for t in client.get(f"/services/{name}/tasks").get_json()
            if t["desired_state"] == "running" and t["state"] not in ("completed", "failed")]


def test_create_then_get_list_and_replicas_spread(client, manager, services, fake_workers, clock):
    answer = client.post("/services", json=body())
    assert answer.status_code == 201 and answer.headers["Location"] == "/services/web"
    created = answer.get_json()
    assert (created["version"], created["replicas"], created["rollout"]) == (1, 3, None)
    assert created["task"]["name"] == "web" and "id" not in created["task"]
    settle(manager, services, fake_workers, clock)
    service = client.get("/services/web").get_json()
    assert (service["running"], service["healthy"]) == (3, 3)
    tasks = replicas(client)
    assert {(t["service"], t["service_version"]) for t in tasks} == {("web", 1)}
    assert len({t["node"] for t in tasks}) == 2  # both fake workers
    assert [s["name"] for s in client.get("/services").get_json()] == ["web"]


@pytest.mark.parametrize("change, problem", [
    ({"replicas": -1}, "replicas"), ({"replicas": 1001}, "replicas"), ({"replicas": True}, "replicas"),
    ({"name": "Web!"}, "name"), ({"update": {"max_paralel": 2}}, "update.max_paralel"),
    ({"update": {"on_failure": "explode"}}, "update.on_failure"), ({"update": {"max_parallel": 0}}, "max_parallel"),
    ({"task": {"image": IMAGE, "cpu": "lots"}}, "task.cpu"), ({"task": {"command": ["x"]}}, "task.image"),
    ({"task": {"image": IMAGE, "id": "5a6f8a2e-0c52-4a39-9e3b-6f0c0b9d6c11"}}, "task.id"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_input_is_400_naming_the_field(client, change, problem):
    answer = client.post("/services", json={**body(), **change})
    assert answer.status_code == 400 and problem in answer.get_json()["error"]
    assert client.get("/services").get_json() == []


def test_name_is_unique_and_unknown_names_are_404(client):
    assert client.post("/services", json=body()).status_code == 201
    assert client.post("/services", json=body()).status_code == 409
    for method, path in (("get", "/services/nope"), ("put", "/services/nope"), ("delete", "/services/nope"),
                         ("post", "/services/nope/scale"), ("post", "/services/nope/rollback"),
                         ("get", "/services/nope/tasks"), ("get", "/services/nope/versions")):
        answer = getattr(client, method)(path, json=body() if method == "put" else {"replicas": 1})
        assert answer.status_code == 404, (method, path)


def test_scale_up_and_down(client, manager, services, fake_workers, clock):
    client.post("/services", json=body())
    settle(manager, services, fake_workers, clock)
    assert client.post("/services/web/scale", json={"replicas": 7}).status_code == 200
    settle(manager, services, fake_workers, clock)
    assert len(replicas(client)) == 7
    assert client.post("/services/web/scale", json={"replicas": 2}).get_json()["replicas"] == 2
    settle(manager, services, fake_workers, clock)
    assert len(replicas(client)) == 2 and client.get("/services/web").get_json()["running"] == 2
    assert client.post("/services/web/scale", json={"replicas": -3}).status_code == 400
    assert client.post("/services/web/scale", json={"replicas": 2, "x": 1}).status_code == 400


def test_update_rolls_out_then_rollback_and_versions(client, manager, services, fake_workers, clock):
    client.post("/services", json=body())
    settle(manager, services, fake_workers, clock)
    update = client.put("/services/web", json={"task": {"image": IMAGE, "command": ["sleep", "61"]}})
    assert update.status_code == 200
    rollout = update.get_json()["rollout"]
    assert (rollout["from_version"], rollout["to_version"], rollout["state"]) == (1, 2, "running")
    assert update.get_json()["replicas"] == 3  # omitting replicas keeps the count
    assert client.post("/services/web/scale", json={"replicas": 5}).status_code == 409
    settle(manager, services, fake_workers, clock, rounds=30)
    service = client.get("/services/web").get_json()
    assert service["rollout"]["state"] == "completed" and service["rollout"]["updated"] == 3
    assert {t["service_version"] for t in replicas(client)} == {2}
    versions = client.get("/services/web/versions").get_json()
    assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, True)]
    back = client.post("/services/web/rollback").get_json()
    assert back["version"] == 1 and back["rollout"]["state"] == "rolled_back"
    assert back["task"]["command"] == ["sleep", "60"]
    settle(manager, services, fake_workers, clock, rounds=10)
    assert {t["service_version"] for t in replicas(client)} == {1} and len(replicas(client)) == 3
    assert client.post("/services/web/rollback").status_code == 409  # already rolled back


def test_reapplying_the_same_spec_changes_nothing(client, manager, services, fake_workers, clock):
    client.post("/services", json=body())
    client.post("/services/web/scale", json={"replicas": 4})
    again = client.put("/services/web", json={"task": body()["task"]}).get_json()
    assert (again["version"], again["replicas"], again["rollout"]) == (1, 4, None)


def test_a_replica_that_never_becomes_running_pauses_the_rollout(client, manager, services, fake_workers, clock):
    client.post("/services", json=body())
    settle(manager, services, fake_workers, clock)
    client.put("/services/web", json={"task": {"image": IMAGE, "command": ["false"]},
                                      "update": {"healthy_deadline": 5}})
    settle(manager, services, fake_workers, clock, rounds=12, run=False)
    service = client.get("/services/web").get_json()
    assert service["rollout"]["state"] == "paused" and "not healthy within 5s" in service["rollout"]["reason"]
    assert service["running"] == 2  # stop-first took one old replica down, the other two still serve
    assert {t["service_version"] for t in replicas(client) if t["state"] == "running"} == {1}


def test_delete_stops_every_replica_then_the_service_is_gone(client, manager, services, fake_workers, clock):
    client.post("/services", json=body())
    settle(manager, services, fake_workers, clock)
    assert client.delete("/services/web").status_code == 202
    assert client.put("/services/web", json=body()).status_code == 409
    settle(manager, services, fake_workers, clock)
    assert client.get("/services/web").status_code == 404
    assert all(t.state.is_terminal for t in manager.list())
    assert client.post("/services", json=body()).status_code == 201  # the name is free again


def test_rollout_events_reach_the_hook(client, manager, services, fake_workers, clock):
    seen = []
    services.on_event = lambda kind, data: seen.append((kind, data.get("state")))
    client.post("/services", json=body(replicas=2))
    settle(manager, services, fake_workers, clock)
    client.put("/services/web", json={"task": {"image": IMAGE, "command": ["sleep", "61"]}})
    settle(manager, services, fake_workers, clock, rounds=20)
    client.delete("/services/web")
    settle(manager, services, fake_workers, clock)
    kinds = [k for k, _ in seen]
    assert kinds[0] == "created" and ("rollout", "running") in seen and ("rollout", "completed") in seen
    assert kinds[-2:] == ["deleting", "removed"]
