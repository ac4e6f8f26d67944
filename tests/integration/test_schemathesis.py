"""Schemathesis against a real manager and worker (`python main.py`, one worker, memory store).

Each operation of each app's GET /openapi.json gets schema-valid requests (positive) and
schema-invalid ones (negative: wrong types, out-of-range numbers, missing or extra fields,
bad path and query values), in the coverage and fuzzing phases, a bounded number per
operation. Each answer is checked: no 5xx, a documented status, the documented content type
(JSON errors) and headers, a body that validates against the document's schema for that
status, and an invalid request is refused with a 4xx.

Generated requests are kept short and local (see `bounded`): ?wait and ?timeout are cut to
half a second, and the long-lived routes are driven on real, short-lived tasks: a log follow
(`follow=true`) and a wait are pointed at a task that prints and ends within about a second
(every other case; the rest keep their generated id), so they run and end by themselves; GET /events asks for an index the manager never
reached (a 410 at once, not an endless stream). A
task that would start gets the test image (ORCA_ALLOWED_IMAGES refuses every other one, so a
random image name never makes Docker pull from anywhere) and publishes its ports on any free
host port. A node that joins is given a closed loopback port as its address, so the manager
never polls anything beyond this host. The containers those tasks create, whatever their restart policy, are removed with
the cluster when the module ends.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any

import docker.errors
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, negative_data_rejection, not_a_server_error, response_headers_conformance,
    response_schema_conformance, status_code_conformance,
)

from tests.integration.conftest import Cluster, post_task, wait_for

MAX_EXAMPLES = 25  # per operation, in the fuzzing phase (the coverage phase adds its boundary cases)
LONGEST_WAIT = 0.5  # seconds: what ?wait and ?timeout are cut to
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
SHORT_TASK = ["sh", "-c", "echo start; sleep 0.3; echo end >&2"]  # what follows and waits are pointed at


@pytest.fixture(scope="module")
def orca_under_test(tmp_path_factory, docker_client, test_image):
    """One manager and one worker; restarts held back so restarting tasks stay few."""
    cluster = Cluster(tmp_path_factory.mktemp("schemathesis"), docker_client)
    try:
        yield cluster.start("all", workers=1, ORCA_STORE="memory", ORCA_ALLOWED_IMAGES=test_image,
                            ORCA_PLACEHOLDER_IMAGE=test_image,
                            ORCA_RESTART_BACKOFF="60", ORCA_STOP_TIMEOUT="1")
    finally:
        close(cluster)


def close(cluster: Cluster, tries: int = 5) -> None:
    """Kill the processes and remove their containers. A removal the killed worker had
    already asked Docker for can land while the list is being read (a 404): read it again."""
    failures = []

    def closed() -> bool:
        try:
            cluster.close()
            return True
        except docker.errors.NotFound as exc:
            failures.append(exc)
            if len(failures) >= tries:
                raise
            return False
    wait_for(closed, timeout=60, interval=0.5, what="the cluster's containers to be removed")


class ShortTasks:
    """Ids of real tasks that run about a second: the current one while it has not ended,
    else a new one (posted, not waited for: a follow or wait of it covers its start too).
    Every other call answers None (keep the generated id: the unknown-task path)."""

    def __init__(self, manager_url: str, image: str) -> None:
        self._url, self._image = manager_url, image
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._current: str | None = None

    def pick(self) -> str | None:
        if next(self._turn) % 2:
            return None
        with self._lock:
            if self._current is None or self._ended(self._current):
                response = post_task(self._url, {"image": self._image, "command": SHORT_TASK, "restart_policy": "no"})
                assert response.status_code == 201, response.text
                self._current = response.json()["id"]
            return self._current

    def _ended(self, task_id: str) -> bool:
        return requests.get(f"{self._url}/tasks/{task_id}", timeout=5).json()["state"] in ("completed", "failed")


@pytest.fixture(scope="module")
def short_tasks(orca_under_test, test_image):
    return ShortTasks(orca_under_test.manager_url, test_image)


def load(base_url: str):
    """The app's own document, set up for bounded positive and negative testing."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                    max_examples=MAX_EXAMPLES, database="none")
    schema.config.phases.update(phases=["coverage", "fuzzing"])
    schema.config.update(request_timeout=10)
    return schema


@pytest.fixture(scope="module")
def manager_schema(orca_under_test):
    return load(orca_under_test.manager_url)


@pytest.fixture(scope="module")
def worker_schema(orca_under_test):
    return load(orca_under_test.worker_url(0))


manager_api = schemathesis.pytest.from_fixture("manager_schema")
worker_api = schemathesis.pytest.from_fixture("worker_schema")
SETTINGS = settings(deadline=None, max_examples=MAX_EXAMPLES, suppress_health_check=list(HealthCheck))


def positive(case: Any) -> bool:
    """Whether the case was generated schema-valid (then it may be kept valid while bounded)."""
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def valid_since(value: Any) -> bool:
    """Whether ?since is absent or an index GET /events would take (then a stream would start)."""
    if value is None:
        return True
    try:
        return 0 <= int(str(value)) < 2**63 and str(value).strip().isdigit()
    except ValueError:
        return False


def bounded(case: Any, image: str, short_tasks: ShortTasks) -> None:
    """Make a generated request short and local. Only what keeps a valid request valid and an
    invalid one invalid is changed, so negative cases stay negative."""
    query = case.query if isinstance(case.query, dict) else {}
    for name in ("wait", "timeout"):
        if name in query:
            query[name] = shortened(query[name])
    if case.path == "/events" and valid_since(query.get("since")):
        case.query = query = {**query, "since": 2**62}  # ahead of the log: a 410 at once, not an endless stream
    if not positive(case):
        return
    long_lived = case.path.endswith("/wait") or (case.path.endswith("/logs") and query.get("follow") in (True, "true"))
    if long_lived and isinstance(case.path_parameters, dict) and "task_id" in case.path_parameters:
        task_id = short_tasks.pick()
        if task_id is not None:
            case.path_parameters["task_id"] = task_id
    body = case.body
    if case.method.upper() == "POST" and case.path == "/tasks" and isinstance(body, dict) \
            and isinstance(body.get("task"), dict):
        task = body["task"]
        if body.get("state", "running") == "running":
            task["image"] = image
        if isinstance(task.get("ports"), dict):
            task["ports"] = dict.fromkeys(task["ports"])  # any free host port: never a chosen one
    if case.method.upper() in ("POST", "PUT") and "/service" in case.path and isinstance(body, dict):
        _few_replicas(body, image)
    if case.method.upper() == "POST" and case.path == "/nodes" and isinstance(body, dict) \
            and isinstance(body.get("address"), str):
        body["address"] = "127.0.0.1:1"  # a node that joins is polled: only ever a closed local port


def _few_replicas(body: dict, image: str) -> None:
    """Services and seed containers: at most one replica each, of the test image."""
    for holder in [body, body.get("container"), *(body.get("containers") or [])]:
        if isinstance(holder, dict) and isinstance(holder.get("replicas"), int) and not isinstance(holder["replicas"], bool):
            holder["replicas"] = min(holder["replicas"], 1)
        if isinstance(holder, dict) and "image" in holder:
            holder["image"] = image
    task = body.get("task")
    if isinstance(task, dict):
        task["image"] = image
        if isinstance(task.get("ports"), dict):
            task["ports"] = dict.fromkeys(task["ports"])


def shortened(value: Any) -> Any:
    """A ?wait or ?timeout value the server would take as a number in (LONGEST_WAIT, 300]
    (a number, or a string of one) cut to LONGEST_WAIT; anything else, valid or not, as is."""
    if isinstance(value, bool):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    if not LONGEST_WAIT < number <= 300:
        return value
    return LONGEST_WAIT if isinstance(value, (int, float)) else str(LONGEST_WAIT)


def check(case: Any) -> None:
    """Call and validate. JSON-RPC answers its errors in the body with HTTP 200 (README,
    JSON-RPC), so an invalid /jrpc request must get a JSON-RPC error there instead of a 4xx."""
    if case.path != "/jrpc":
        case.call_and_validate(checks=CHECKS)
        return
    response = case.call_and_validate(checks=[c for c in CHECKS if c is not negative_data_rejection])
    # 405 and 413 are JSON errors (checked above); OPTIONS gets Flask's empty answer with Allow.
    if not positive(case) and response.status_code == 200 and case.method.upper() != "OPTIONS":
        answers = response.json()
        answers = answers if isinstance(answers, list) else [answers]
        assert any(isinstance(a, dict) and a.get("error") for a in answers), \
            f"an invalid JSON-RPC request answered without an error: {response.text[:500]}"


@manager_api.parametrize()
@SETTINGS
def test_manager_keeps_its_documented_contract(case, test_image, short_tasks):
    bounded(case, test_image, short_tasks)
    check(case)


@worker_api.parametrize()
@SETTINGS
def test_worker_keeps_its_documented_contract(case, test_image, short_tasks):
    bounded(case, test_image, short_tasks)
    check(case)
