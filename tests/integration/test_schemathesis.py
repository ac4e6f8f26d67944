"""Schemathesis against a real manager and worker (`python main.py`, one worker, memory store).

Each operation of each app's GET /openapi.json gets schema-valid requests (coverage and
fuzzing phases, a bounded number per operation) and each answer is checked: no 5xx, a
documented status, the documented content type and headers, a body that validates against
the document's schema for that status.

Generated requests are kept schema-valid but short and local (see `bounded`): ?wait and
?timeout are cut to half a second and log follows are turned off, so no request holds the
run; a task that would start gets the test image (ORCA_ALLOWED_IMAGES refuses every other
one, so a random image name never makes Docker pull from anywhere) and publishes its ports
on any free host port. The containers those tasks create, whatever their restart policy, are
removed with the cluster when the module ends.
"""
from __future__ import annotations

import time
from typing import Any

import docker.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_headers_conformance, response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import Cluster

MAX_EXAMPLES = 25  # per operation, in the fuzzing phase (the coverage phase adds its boundary cases)
LONGEST_WAIT = 0.5  # seconds: what ?wait and ?timeout are cut to
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


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
    for attempt in range(tries):
        try:
            cluster.close()
            return
        except docker.errors.NotFound:
            if attempt == tries - 1:
                raise
            time.sleep(0.5)


def load(base_url: str):
    """The app's own document, set up for bounded positive testing."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema.config.generation.update(modes=[GenerationMode.POSITIVE], max_examples=MAX_EXAMPLES, database="none")
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


def bounded(case: Any, image: str) -> None:
    """Make a generated request short and local; it stays valid against the document."""
    query = case.query or {}
    for name in ("wait", "timeout"):
        if isinstance(query.get(name), (int, float)) and not isinstance(query[name], bool):
            query[name] = min(query[name], LONGEST_WAIT)
    if "follow" in query:
        query["follow"] = False
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


@manager_api.parametrize()
@SETTINGS
def test_manager_keeps_its_documented_contract(case, test_image):
    bounded(case, test_image)
    case.call_and_validate(checks=CHECKS)


@worker_api.parametrize()
@SETTINGS
def test_worker_keeps_its_documented_contract(case, test_image):
    bounded(case, test_image)
    case.call_and_validate(checks=CHECKS)
