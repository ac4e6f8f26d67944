"""Services against real processes and the real engine: one manager and three workers
(`python main.py`), busybox httpd replicas with a health check."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter

import pytest
import requests

from tests.integration.conftest import ROOT, free_ports, wait_for

HTTPD = ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
TIMEOUT = 90  # seconds for a convergence on a loaded 2-core machine


@pytest.fixture
def orca3(cluster):
    return cluster.start("all", workers=3, ORCA_HEALTH_INTERVAL="0.3", ORCA_HEALTH_FAILURES="2",
                         ORCA_STOP_TIMEOUT="1")


def spec(image, health="/index.html"):
    return {"image": image, "command": HTTPD, "ports": {"8080/tcp": None}, "health_check": health}


def service(url, name="web"):
    return requests.get(f"{url}/services/{name}", timeout=5).json()


def live(url, name="web"):
    tasks = requests.get(f"{url}/services/{name}/tasks", timeout=5).json()
    return [t for t in tasks if t["state"] == "running" and t["desired_state"] == "running"]


def converged(url, count, version=None, name="web"):
    """The service runs exactly `count` healthy replicas (of `version`) and nothing else."""
    def check():
        s, replicas = service(url, name), live(url, name)
        versions = {t["service_version"] for t in replicas}
        ok = s["running"] == s["healthy"] == count == len(replicas) and (version is None or versions <= {version})
        return replicas if ok else None
    return wait_for(check, TIMEOUT, 0.2, what=f"{count} healthy replicas of {name}")


def running_containers(cluster):
    return [c for c in cluster.containers(all=False)]


def test_spread_scale_failing_update_pauses_then_rollback(cluster, orca3, test_image):
    url = orca3.manager_url
    created = requests.post(f"{url}/services", json={
        "name": "web", "replicas": 6, "task": spec(test_image),
        "update": {"min_healthy_time": 1, "healthy_deadline": 8, "on_failure": "pause"}}, timeout=5)
    assert created.status_code == 201, created.text
    replicas = converged(url, 6)
    assert sorted(Counter(t["node"] for t in replicas).values()) == [2, 2, 2]
    assert len(running_containers(cluster)) == 6

    assert requests.post(f"{url}/services/web/scale", json={"replicas": 9}, timeout=5).ok
    replicas = converged(url, 9)
    assert sorted(Counter(t["node"] for t in replicas).values()) == [3, 3, 3]

    assert requests.post(f"{url}/services/web/scale", json={"replicas": 2}, timeout=5).ok
    replicas = converged(url, 2)
    assert len({t["node"] for t in replicas}) == 2  # scale-down keeps them spread
    wait_for(lambda: len(running_containers(cluster)) == 2, TIMEOUT, 0.2, what="7 containers stopped")

    # A version whose health check fails: the rollout pauses, an old replica still serves.
    put = requests.put(f"{url}/services/web", json={"task": spec(test_image, health="/missing")}, timeout=5)
    assert put.ok and put.json()["rollout"]["state"] == "running" and put.json()["replicas"] == 2
    paused = wait_for(lambda: (s := service(url))["rollout"]["state"] == "paused" and s, TIMEOUT, 0.2,
                      what="the rollout to pause")
    assert "not healthy within 8s" in paused["rollout"]["reason"]
    old = [t for t in live(url) if t["service_version"] == 1]
    assert len(old) == 1 and old[0]["healthy"] is True
    answer = requests.get(f"http://127.0.0.1:{old[0]['host_ports']['8080/tcp']}/index.html", timeout=5)
    assert answer.status_code == 200 and answer.text == "ok\n"
    assert requests.post(f"{url}/services/web/scale", json={"replicas": 3}, timeout=5).ok  # paused: allowed

    back = requests.post(f"{url}/services/web/rollback", timeout=5).json()
    assert back["version"] == 1 and back["rollout"]["state"] == "rolled_back"
    converged(url, 3, version=1)

    assert requests.delete(f"{url}/services/web", timeout=5).status_code == 202
    wait_for(lambda: requests.get(f"{url}/services/web", timeout=5).status_code == 404, TIMEOUT, 0.2,
             what="the service to be gone")
    wait_for(lambda: not running_containers(cluster), TIMEOUT, 0.2, what="every replica stopped")


def test_start_first_update_that_fails_rolls_back_with_the_old_replicas_serving(cluster, orca3, test_image):
    url = orca3.manager_url
    requests.post(f"{url}/services", json={
        "name": "api", "replicas": 3, "task": spec(test_image),
        "update": {"min_healthy_time": 1, "healthy_deadline": 6, "on_failure": "rollback", "order": "start-first",
                   "max_parallel": 2}}, timeout=5).raise_for_status()
    before = {t["id"] for t in converged(url, 3, name="api")}
    requests.put(f"{url}/services/api", json={"task": spec(test_image, health="/missing")},
                 timeout=5).raise_for_status()
    wait_for(lambda: service(url, "api")["rollout"]["state"] == "rolled_back", TIMEOUT, 0.2, what="a rollback")
    assert service(url, "api")["version"] == 1
    after = converged(url, 3, version=1, name="api")
    assert {t["id"] for t in after} == before  # start-first: no old replica was ever stopped
    versions = requests.get(f"{url}/services/api/versions", timeout=5).json()
    assert [(v["version"], v["current"]) for v in versions] == [(1, True), (2, False)]


# The seed's first request asks for 99 replicas. Run as sent (ORCA_SEED_FULL=1) it brings 119
# containers up and then down at once, and Docker 20.10's libnetwork can deadlock when that
# many containers exit together (moby/moby#46661), which hangs every later test on the engine.
# The suite sends the same body with 9 replicas; ORCA_SEED_FULL=1 sends it exactly as written.
SEED_REPLICAS = 99 if os.environ.get("ORCA_SEED_FULL") == "1" else 9


def test_the_seed_clusters_requests_as_sent(cluster, test_image):
    orca = cluster.start("all", workers=3, ORCA_PLACEHOLDER_IMAGE=test_image, ORCA_STOP_TIMEOUT="1")
    url = orca.manager_url
    first = requests.post(f"{url}/clusters/0/service", json={
        "container": {"uniq_id": 0, "label": "description"}, "replicas": SEED_REPLICAS}, timeout=10)
    assert first.status_code == 201, first.text
    second = requests.post(f"{url}/clusters/0/service", json={
        "containers": [{"description": "container 0", "replicas": 10}, {"description": "container 1", "replicas": 10}]},
        timeout=10)
    assert second.status_code == 201, second.text
    names = [s["name"] for s in first.json()["services"] + second.json()["services"]]
    assert names == ["description-0", "container-0", "container-1"]
    for name, count in zip(names, (SEED_REPLICAS, 10, 10)):
        converged(url, count, name=name)
    assert requests.get(f"{url}/clusters", timeout=5).json()[0]["id"] == 0
    for path in ("/clusters/0", "/clusters/0/stats", "/clusters/0/state"):
        nodes = requests.get(f"{url}{path}", timeout=10).json()["nodes"]
        assert len(nodes) == 3 and sum(len(n["replicas"]) for n in nodes) == SEED_REPLICAS + 20
        assert all("capacity" in n and "load" in n for n in nodes)
        assert sorted(len(n["replicas"]) for n in nodes)[-1] - sorted(len(n["replicas"]) for n in nodes)[0] <= 3
    assert len(running_containers(cluster)) == SEED_REPLICAS + 20
    assert requests.get(f"{url}/clusters/1", timeout=5).status_code == 404
    again = requests.post(f"{url}/clusters/0/service", json={"container": {"uniq_id": 0, "label": "description"},
                                                             "replicas": 3}, timeout=10)
    assert again.status_code == 200 and again.json()["services"][0]["replicas"] == 3  # an upsert: scaled
    converged(url, 3, name="description-0")


def test_a_rollout_resumes_after_the_manager_is_killed(cluster, test_image):
    orca = cluster.start("all", workers=2, ORCA_STOP_TIMEOUT="1")
    url = orca.manager_url
    requests.post(f"{url}/services", json={
        "name": "calm", "replicas": 3, "task": {"image": test_image, "command": ["sleep", "infinity"]},
        "update": {"min_healthy_time": 3, "order": "start-first"}}, timeout=5).raise_for_status()
    converged(url, 3, name="calm")
    requests.put(f"{url}/services/calm", json={"task": {"image": test_image, "command": ["sleep", "99999"]}},
                 timeout=5).raise_for_status()
    wait_for(lambda: any(t["service_version"] == 2 for t in live(url, "calm")), TIMEOUT, 0.1,
             what="a replica of version 2")
    orca.restart()  # kill -9 of the manager (and its workers) mid-rollout; the containers stay
    url = orca.manager_url
    assert service(url, "calm")["rollout"]["state"] == "running"
    wait_for(lambda: service(url, "calm")["rollout"]["state"] == "completed", TIMEOUT, 0.2,
             what="the rollout to complete after the restart")
    converged(url, 3, version=2, name="calm")
    wait_for(lambda: len(running_containers(cluster)) == 3, TIMEOUT, 0.2, what="exactly 3 containers")


def test_the_service_commands_as_a_user_runs_them(cluster, test_image, tmp_path):
    orca = cluster.start("all", workers=2, ORCA_STOP_TIMEOUT="1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCA_")}
    env["ORCA_MANAGER_URL"] = orca.manager_url

    def orca_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "main.py"), "service", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    spec_file = tmp_path / "svc.json"
    spec_file.write_text(json.dumps({"name": "cli", "replicas": 2, "task": {"image": test_image, "command": [
        "sleep", "infinity"]}, "update": {"min_healthy_time": 1}}))
    assert orca_cli("create", "-f", str(spec_file)).stdout == "cli\n"
    converged(orca.manager_url, 2, name="cli")
    listed = orca_cli("ls")
    assert listed.returncode == 0 and "cli" in listed.stdout and "2/2" in listed.stdout
    assert orca_cli("scale", "cli", "1").stdout == "cli: 1 replicas\n"
    converged(orca.manager_url, 1, name="cli")
    spec_file.write_text(json.dumps({"task": {"image": test_image, "command": ["sleep", "99999"]}}))
    update = orca_cli("update", "cli", "-f", str(spec_file))  # follows the rollout to its end
    assert update.returncode == 0, update.stderr
    lines = update.stdout.splitlines()
    assert "version 1 -> 2 running" in lines[0] and "version 1 -> 2 completed" in lines[-1]
    assert "1/1 updated" in lines[-1]
    ps = orca_cli("ps", "cli")
    assert ps.returncode == 0 and ps.stdout.count(" running ") == 1
    assert orca_cli("rollback", "cli").stdout == "cli: back to version 1\n"
    assert "already rolled back" in orca_cli("rollback", "cli").stderr
    missing = orca_cli("ps", "nope")
    assert missing.returncode == 1 and missing.stderr == "orca: rejected by the manager: service nope not found\n"
    assert orca_cli("rm", "cli").stdout == "cli\n"
    wait_for(lambda: requests.get(f"{orca.manager_url}/services/cli", timeout=5).status_code == 404, TIMEOUT,
             0.2, what="the service removed")


def test_the_seed_joins_a_spawned_worker_then_drains_removes_and_stops_it(cluster, test_image):
    orca = cluster.start("all", workers=1, ORCA_STOP_TIMEOUT="1")
    url, port, name = orca.manager_url, free_ports(1), f"{cluster.prefix}-spawned"
    cluster.worker_names.add(name)
    joined = requests.post(f"{url}/clusters/0/nodes", json={
        "id": name, "host": "127.0.0.1", "port": port, "capacity": {"cpu": 4, "memory": "4g"}, "spawn": True},
        timeout=30)
    assert joined.status_code == 201, joined.text
    assert joined.json()["spawned"] is True and joined.json()["pid"]
    wait_for(lambda: any(n["name"] == name and n["status"] == "up" for n in
                         requests.get(f"{url}/clusters/0/stats", timeout=5).json()["nodes"]), TIMEOUT, 0.2,
             what="the spawned worker up")
    requests.post(f"{url}/services", json={"name": "spread", "replicas": 4, "task": {
        "image": test_image, "command": ["sleep", "infinity"]}}, timeout=5).raise_for_status()
    replicas = converged(url, 4, name="spread")
    assert sorted(Counter(t["node"] for t in replicas).values()) == [2, 2]

    left = requests.delete(f"{url}/clusters/0/nodes", json={"host": "127.0.0.1", "port": port}, timeout=10)
    assert left.status_code == 202, left.text
    wait_for(lambda: all(n["name"] != name for n in requests.get(f"{url}/nodes", timeout=5).json()), TIMEOUT, 0.2,
             what="the node removed once drained")
    replicas = converged(url, 4, name="spread")
    assert {t["node"] for t in replicas} == {orca.worker_address(0)}

    def stopped():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return False
        except OSError:
            return True
    wait_for(stopped, TIMEOUT, 0.2, what="the spawned worker stopped")
    assert requests.delete(f"{url}/clusters/0/nodes", json={"host": "127.0.0.1", "port": port},
                           timeout=5).status_code == 404
