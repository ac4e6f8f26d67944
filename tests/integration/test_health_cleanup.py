"""Engine health (a worker whose Docker engine is down) and `cleanup`, against real processes
and the real Docker engine."""
from __future__ import annotations

import io
import os
import uuid

import pytest
import requests

from tests.integration.conftest import free_ports, post_task, wait_for, wait_state
from worker.cleanup import cleanup, cleanup_main
from worker.runtime import DEFAULT_DOCKER_HOST

pytestmark = pytest.mark.docker


def test_health_reports_the_engine_on_workers_and_manager(orca, docker_client):
    engine = docker_client.version()
    worker = requests.get(f"{orca.worker_url(0)}/health", timeout=5)
    assert worker.status_code == 200
    docker = worker.json()["docker"]
    assert (docker["reachable"], docker["version"], docker["api_version"]) == \
        (True, engine["Version"], engine["ApiVersion"])

    def manager_ok():
        body = requests.get(f"{orca.manager_url}/health", timeout=5).json()
        return body if body["status"] == "ok" else None
    body = wait_for(manager_ok, what="the manager to see both engines")
    assert [w["docker"]["version"] for w in body["workers"]] == [engine["Version"]] * 2
    assert all(w["state"] == "up" and w["accepts_tasks"] for w in body["workers"])


def test_a_worker_whose_engine_is_down_takes_no_task_and_says_why(cluster, test_image):
    base = free_ports(3)
    common = dict(ORCA_MANAGER_PORT=str(base))
    healthy = cluster.start("worker", workers=1, ORCA_WORKER_PORT=str(base + 1),
                            ORCA_WORKER_NAME=f"{cluster.prefix}-ok", **common)
    broken = cluster.start("worker", workers=1, ORCA_WORKER_PORT=str(base + 2),
                           ORCA_WORKER_NAME=f"{cluster.prefix}-nodocker",
                           DOCKER_HOST=f"unix:///tmp/orca-nonexistent-{uuid.uuid4().hex[:8]}.sock", **common)
    # the broken worker started (cluster.start waited for its /stats) and explains itself
    health = requests.get(f"{broken.worker_url(0)}/health", timeout=5)
    assert health.status_code == 503
    docker = health.json()["docker"]
    assert docker["reachable"] is False and "docker engine unreachable" in docker["error"]
    refused = post_task(broken.worker_url(0), {"image": test_image, "command": ["true"]})
    assert refused.status_code == 503 and "docker engine unreachable" in refused.json()["error"]
    assert requests.get(f"{healthy.worker_url(0)}/health", timeout=5).json()["docker"]["reachable"] is True

    manager = cluster.start("manager", workers=0, ORCA_WORKER_PORT=str(base + 1),
                            ORCA_WORKERS=f"127.0.0.1:{base + 1},127.0.0.1:{base + 2}", **common)

    def engines_known():
        nodes = requests.get(f"{manager.manager_url}/nodes", timeout=5).json()
        return nodes if [n["engine"]["reachable"] for n in nodes] == [True, False] else None
    nodes = wait_for(engines_known, what="the manager to learn both engines' state")
    assert [n["state"] for n in nodes] == ["up", "up"]
    assert "docker engine unreachable" in nodes[1]["engine"]["error"]
    health = requests.get(f"{manager.manager_url}/health", timeout=5).json()
    assert health["status"] == "degraded"
    assert [w["accepts_tasks"] for w in health["workers"]] == [True, False]

    ids = [post_task(manager.manager_url, {"image": test_image, "command": ["sleep", "30"]}).json()["id"]
           for _ in range(3)]
    placed = [wait_state(manager.manager_url, i, ("running",)) for i in ids]
    assert {t["node"] for t in placed} == {f"127.0.0.1:{base + 1}"}


@pytest.fixture
def bystanders(docker_client, test_image, cluster):
    """Containers cleanup must leave alone: no labels, only one of Orca's labels, and
    labelled for another worker. Removed after the test."""
    made = []

    def make(kind: str, labels: dict[str, str]):
        container = docker_client.containers.create(test_image, ["sleep", "300"], labels=labels,
                                                    name=f"{cluster.prefix}-{kind}-{uuid.uuid4().hex[:6]}")
        made.append(container)
        return container
    yield make
    for container in made:
        try:
            container.remove(force=True, v=True)
        except Exception:  # noqa: BLE001 - already gone (that would have failed the test)
            pass


def test_cleanup_removes_one_workers_containers_and_nothing_else(cluster, docker_client, test_image, bystanders):
    name = f"{cluster.prefix}-clean"
    worker = cluster.start("worker", workers=1, ORCA_WORKER_NAME=name)
    ids = [post_task(worker.worker_url(0), {"image": test_image, "command": ["sleep", "300"]}).json()["id"]
           for _ in range(2)]
    containers = {wait_state(worker.worker_url(0), i, ("running",))["container_id"] for i in ids}
    worker.kill()  # cleanup is for a stopped Orca
    plain = bystanders("plain", {"purpose": "not orca"})
    half = bystanders("half", {"orca.task_id": str(uuid.uuid4())})  # lacks orca.worker
    other = bystanders("other", {"orca.task_id": str(uuid.uuid4()), "orca.worker": f"{cluster.prefix}-other"})

    out = io.StringIO()
    assert cleanup_main(["--worker", name, "--dry-run"], out=out) == 0
    assert "would remove 2 container(s)" in out.getvalue()
    assert {c.id for c in cluster.containers()} >= containers, "a dry run removes nothing"

    out = io.StringIO()
    assert cleanup_main(["--worker", name], out=out) == 0
    printed = out.getvalue()
    assert "removed 2 container(s) of worker " + name in printed
    assert all(c[:12] in printed for c in containers)
    remaining = {c.id for c in docker_client.containers.list(all=True, sparse=True)}
    assert not containers & remaining, "the worker's containers are gone"
    assert {plain.id, half.id, other.id} <= remaining, "containers without both of the worker's labels survive"

    assert cleanup(os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST), name) == []  # nothing left


def test_cleanup_without_a_worker_covers_every_orca_container(cluster, test_image, bystanders):
    # dry run only: a real run would remove other Orca containers on this engine too
    orca_one = bystanders("a", {"orca.task_id": str(uuid.uuid4()), "orca.worker": f"{cluster.prefix}-a"})
    orca_two = bystanders("b", {"orca.task_id": str(uuid.uuid4()), "orca.worker": f"{cluster.prefix}-b"})
    plain = bystanders("plain", {})
    out = io.StringIO()
    assert cleanup_main(["--dry-run"], out=out) == 0
    printed = out.getvalue()
    assert orca_one.id[:12] in printed and orca_two.id[:12] in printed
    assert plain.id[:12] not in printed


def test_cleanup_reports_an_unreachable_engine():
    assert cleanup_main([], docker_host="unix:///tmp/orca-nonexistent.sock") == 1
