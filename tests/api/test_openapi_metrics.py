"""GET /openapi.json and GET /metrics on both apps, with Flask's test client and the fakes.

The documents are checked three ways: they are valid OpenAPI 3.1; the routes of each app and
the operations of its document are the same set; and real answers of the apps (to good and
bad requests) validate against the document's schema for their status. The schemathesis run
against real processes is tests/integration/test_schemathesis.py.
"""
from __future__ import annotations

import json
import re

import prometheus_client
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_openapi
from prometheus_client.parser import text_string_to_metric_families

from common.http import require_token
from common.metrics import WorkerMetrics
from manager.api import create_app as create_manager_app
from task import WorkerUnreachable
from worker.api import create_app as create_worker_app
from worker.worker import Policy, Worker

from tests.api.conftest import STATS

TASK_ID = "0b9c8f4e-6a55-4d0e-9d3c-2f7b1d2a9e11"
OTHER_ID = "7a0c2d64-1f0e-4d8b-8a3c-5b6e7f809a1b"
UNKNOWN_ID = "3f1d2c4b-5a69-4e7f-8a9b-0c1d2e3f4a5b"
W1, W2 = "w1:1", "w2:2"
TOKEN = "s3cret-token-for-the-tests"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
MANAGER_FAMILIES = {"orca_tasks", "orca_events_pending", "orca_dispatch_seconds", "orca_worker_up",
                    "orca_engine_reachable"}
WORKER_FAMILIES = {"orca_container_starts", "orca_container_start_failures", "orca_container_exits",
                   "orca_worker_tasks"}


@pytest.fixture
def manager_app(manager):
    return create_manager_app(manager)


@pytest.fixture
def metered_worker(worker):
    """The worker with its metrics wired as WorkerService wires them; returns (worker, client)."""
    metrics = WorkerMetrics(worker)
    worker.on_container = metrics.container_event
    return worker, create_worker_app(worker, stats=lambda: dict(STATS), metrics=metrics).test_client()


def app_operations(app) -> set[tuple[str, str]]:
    """(METHOD, /path/{param}) of every route of a Flask app (HEAD and OPTIONS are Flask's own)."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("ui."):  # the dashboard: HTML, not the API
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operations |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return operations


def document_operations(document) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in HTTP_METHODS}


def document_of(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def conforms(document, method: str, path: str, response) -> None:
    """Assert that `response` (Flask's test client's or requests') is documented for the
    operation, with its required headers and content type, and validates against its schema."""
    operation = document["paths"][path][method.lower()]
    assert str(response.status_code) in operation["responses"], (method, path, response.status_code)
    answer = operation["responses"][str(response.status_code)]
    if "$ref" in answer:
        answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    for header, spec in answer.get("headers", {}).items():
        assert not spec.get("required") or header in response.headers, header
    content = answer.get("content", {})
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if content:
        assert media_type in content, (method, path, media_type)
    if media_type == "application/json":
        schema = {**content["application/json"]["schema"], "components": document["components"]}
        body = json.loads(response.get_data() if hasattr(response, "get_data") else response.content)
        errors = list(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(body))
        assert not errors, (method, path, [e.message[:300] for e in errors])


def samples(client) -> dict[tuple[str, tuple], float]:
    """The /metrics answer as {(sample name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(client, name: str, **labels) -> float | None:
    return samples(client).get((name, tuple(sorted(labels.items()))))


# ----- the documents


@pytest.mark.parametrize("which", ["manager", "worker"])
def test_every_route_is_documented_and_every_operation_is_a_route(request, which):
    app = request.getfixturevalue(f"{which}_app")
    document = document_of(app.test_client())
    assert app_operations(app) == document_operations(document)
    assert len(document_operations(document)) >= 9


@pytest.mark.parametrize("which", ["manager", "worker"])
def test_documents_are_valid_openapi_3_1(request, which):
    document = document_of(request.getfixturevalue(f"{which}_app").test_client())
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "ORCA_TOKEN, when the server has one"}
    for path, item in document["paths"].items():
        for method, operation in ((m, o) for m, o in item.items() if m in HTTP_METHODS):
            open_route = path == "/health"
            assert ("401" in operation["responses"]) is not open_route, (method, path)
            assert (operation.get("security") == []) is open_route, (method, path)
            if "requestBody" in operation and path == "/tasks":
                assert {"400", "413", "415"} <= set(operation["responses"])


def test_manager_answers_conform_to_its_document(manager_app, manager):
    client = manager_app.test_client()
    document = document_of(client)
    task = {"task": {"id": TASK_ID, "image": "busybox", "ports": {"80": None}}}
    calls = [
        ("POST", "/tasks", "/tasks", {"json": task}, 201),
        ("POST", "/tasks", "/tasks", {"json": task}, 409),
        ("POST", "/tasks", "/tasks?wait=0", {"json": {"task": {"id": OTHER_ID, "image": "busybox"}}}, 201),
        ("POST", "/tasks", "/tasks", {"json": {"task": {}}}, 400),
        ("POST", "/tasks", "/tasks?wait=301", {"json": task}, 400),
        ("POST", "/tasks", "/tasks", {"data": "x", "content_type": "text/plain"}, 415),
        ("POST", "/tasks", "/tasks", {"json": {"state": "completed", "task": {"id": UNKNOWN_ID}}}, 404),
        ("GET", "/tasks", "/tasks", {}, 200),
        ("GET", "/tasks/{task_id}", f"/tasks/{TASK_ID}", {}, 200),
        ("GET", "/tasks/{task_id}", f"/tasks/{UNKNOWN_ID}", {}, 404),
        ("GET", "/tasks/{task_id}/wait", f"/tasks/{TASK_ID}/wait?timeout=0", {}, 200),
        ("GET", "/tasks/{task_id}/wait", f"/tasks/{TASK_ID}/wait?timeout=x", {}, 400),
        ("GET", "/tasks/{task_id}/logs", f"/tasks/{TASK_ID}/logs?tail=5", {}, 200),
        ("GET", "/tasks/{task_id}/logs", f"/tasks/{TASK_ID}/logs?stream=nope", {}, 400),
        ("DELETE", "/tasks/{task_id}", f"/tasks/{TASK_ID}", {}, 202),
        ("DELETE", "/tasks/{task_id}", f"/tasks/{TASK_ID}", {}, 409),
        ("GET", "/nodes", "/nodes", {}, 200),
        ("GET", "/health", "/health", {}, 200),
        ("POST", "/jrpc", "/jrpc", {"json": {"jsonrpc": "2.0", "method": "ContainerService.Status",
                                             "params": {"job_id": OTHER_ID}, "id": 1}}, 200),
        ("POST", "/jrpc", "/jrpc", {"json": [{"jsonrpc": "2.0", "method": "nope", "id": "a"}, {"x": 1}]}, 200),
        ("POST", "/jrpc", "/jrpc", {"json": {"jsonrpc": "2.0", "method": "nope"}}, 204),
        ("GET", "/openapi.json", "/openapi.json", {}, 200),
        ("GET", "/metrics", "/metrics", {}, 200),
    ]
    for method, path, url, kwargs, status in calls:
        if path == "/nodes":
            manager.sync_nodes()  # nodes with stats and an engine state
        response = client.open(url, method=method, **kwargs)
        assert response.status_code == status, (method, url, response.get_data(as_text=True)[:200])
        conforms(document, method, path, response)


def test_worker_answers_conform_to_its_document(worker_app, worker, runtime, wait):
    client = worker_app.test_client()
    document = document_of(client)
    task = {"task": {"id": TASK_ID, "image": "busybox", "ports": {"8080": None}}}
    calls = [
        ("POST", "/tasks", "/tasks", {"json": task}, 201),
        ("POST", "/tasks", "/tasks", {"json": task}, 200),
        ("POST", "/tasks", "/tasks", {"json": {"task": {"image": 5}}}, 400),
        ("POST", "/tasks", "/tasks", {"json": {"state": "completed", "task": {"id": UNKNOWN_ID}}}, 404),
        ("GET", "/tasks", "/tasks", {}, 200),
        ("GET", "/tasks", "/tasks?since=0&wait=0.01", {}, 200),
        ("GET", "/tasks", "/tasks?since=0&wait=31", {}, 400),
        ("GET", "/tasks/{task_id}", f"/tasks/{TASK_ID}", {}, 200),
        ("GET", "/tasks/{task_id}", f"/tasks/{UNKNOWN_ID}", {}, 404),
        ("GET", "/tasks/{task_id}/logs", f"/tasks/{UNKNOWN_ID}/logs", {}, 404),
        ("GET", "/stats", "/stats", {}, 200),
        ("GET", "/health", "/health", {}, 200),
        ("DELETE", "/tasks/{task_id}", f"/tasks/{TASK_ID}", {}, 202),
        ("DELETE", "/tasks/{task_id}", f"/tasks/{UNKNOWN_ID}", {}, 404),
        ("GET", "/openapi.json", "/openapi.json", {}, 200),
        ("GET", "/metrics", "/metrics", {}, 200),
    ]
    for method, path, url, kwargs, status in calls:
        if method == "DELETE" and status == 202:  # a running task: host ports, container id, start time
            worker.run_pending()
            wait(lambda: worker.db.get(TASK_ID).state.value == "running")
            conforms(document, "GET", "/tasks/{task_id}", client.get(f"/tasks/{TASK_ID}"))
        response = client.open(url, method=method, **kwargs)
        assert response.status_code == status, (method, url, response.get_data(as_text=True)[:200])
        conforms(document, method, path, response)


def test_openapi_and_metrics_need_the_token_like_every_route_but_health(manager_app, worker_app):
    for app in (manager_app, worker_app):
        require_token(app, TOKEN)
        client = app.test_client()
        for path in ("/openapi.json", "/metrics"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/health").status_code == 200


# ----- metrics


@pytest.mark.parametrize("which, families", [("manager", MANAGER_FAMILIES), ("worker", WORKER_FAMILIES)])
def test_metrics_are_prometheus_text_with_the_named_families(request, which, families):
    client = request.getfixturevalue(f"{which}_app").test_client()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(response.get_data(as_text=True))}
    assert families <= names


def test_manager_metrics_follow_tasks_queue_dispatch_and_workers(manager, fake_workers):
    from common.metrics import ManagerMetrics

    metrics = ManagerMetrics(manager)
    manager.on_placed = metrics.placed
    client = create_manager_app(manager, metrics=metrics).test_client()
    for task_id in (TASK_ID, OTHER_ID):
        assert client.post("/tasks", json={"task": {"id": task_id, "image": "busybox"}}).status_code == 201
    assert value(client, "orca_tasks", state="pending") == 2
    assert value(client, "orca_events_pending") == 2
    assert value(client, "orca_worker_up", worker=W1) == 0
    assert value(client, "orca_engine_reachable", worker=W1) is None  # unknown yet

    manager.sync_nodes()
    manager.dispatch_pending()
    assert value(client, "orca_worker_up", worker=W1) == 1
    assert value(client, "orca_engine_reachable", worker=W2) == 1
    assert value(client, "orca_events_pending") == 0
    assert value(client, "orca_tasks", state="scheduled") == 2
    assert value(client, "orca_tasks", state="pending") == 0
    assert value(client, "orca_dispatch_seconds_count") == 2
    assert value(client, "orca_dispatch_seconds_bucket", le="+Inf") == 2

    fake_workers.fail("stats", W2, WorkerUnreachable("gone"))
    for _ in range(3):
        manager.sync_nodes()
    assert value(client, "orca_worker_up", worker=W2) == 0


def test_worker_counters_move_on_starts_failures_and_exits(metered_worker, runtime, wait):
    worker, client = metered_worker
    assert value(client, "orca_container_starts_total") == 0
    assert client.post("/tasks", json={"task": {"id": TASK_ID, "image": "busybox",
                                                "restart_policy": "no"}}).status_code == 201
    worker.run_pending()
    wait(lambda: value(client, "orca_container_starts_total") == 1)
    assert value(client, "orca_worker_tasks", state="running") == 1

    runtime.exit(f"c-{TASK_ID}", 0)
    worker.sync_states()
    assert value(client, "orca_container_exits_total", outcome="completed") == 1
    assert value(client, "orca_worker_tasks", state="completed") == 1

    runtime.start_error = "image 127.0.0.1:1/none:1 not found"
    assert client.post("/tasks", json={"task": {"id": OTHER_ID, "image": "127.0.0.1:1/none:1"}}).status_code == 201
    worker.run_pending()
    wait(lambda: value(client, "orca_container_start_failures_total") == 1)
    assert value(client, "orca_worker_tasks", state="failed") == 1
    assert value(client, "orca_container_starts_total") == 1


def test_worker_counts_a_restart_and_a_failure(metered_worker, runtime, wait):
    worker, client = metered_worker
    client.post("/tasks", json={"task": {"id": TASK_ID, "image": "busybox", "max_restarts": 1}})
    worker.run_pending()
    wait(lambda: worker.db.get(TASK_ID).state.value == "running")
    runtime.exit(f"c-{TASK_ID}", 3)
    worker.sync_states()
    assert value(client, "orca_container_exits_total", outcome="restarted") == 1
    assert value(client, "orca_container_exits_total", outcome="failed") == 0


def test_each_app_has_its_own_registry(runtime):
    workers = [Worker(name, runtime, Policy(), threads=1) for name in ("a", "b")]
    try:
        metrics = [WorkerMetrics(w) for w in workers]  # a second one in the global registry would raise
        metrics[0].container_event("started")
        clients = [create_worker_app(w, stats=dict, metrics=m).test_client() for w, m in zip(workers, metrics)]
        assert [value(c, "orca_container_starts_total") for c in clients] == [1, 0]
        assert not any(name.startswith("orca_") for name in prometheus_client.REGISTRY._names_to_collectors)
    finally:
        for w in workers:
            w.close()

