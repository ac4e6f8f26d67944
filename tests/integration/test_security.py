"""Security against real `python main.py` processes and the real Docker engine.

Token authentication on every route but /health, the loopback-only default, refused Docker
fields, ORCA_ALLOWED_IMAGES, no-new-privileges on a real container, secrets kept out of the
log, and hostile requests over HTTP that change nothing while the periodic jobs keep going.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import urllib.parse
import uuid

import pytest
import requests
from hypothesis import HealthCheck, given, settings

from tests.api.test_hostile_input import hostile_requests, is_dashboard, routes_of
from tests.integration.conftest import ROOT, Cluster, OrcaProcess, free_ports, wait_for

pytestmark = pytest.mark.docker

TOKEN = secrets.token_urlsafe(32)
UNAUTHORIZED = {"error": "missing or invalid bearer token"}
WRONG_TOKENS = [None, "", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN,
                f"Bearer {secrets.token_urlsafe(32)}"]


class TokenProcess(OrcaProcess):
    """An OrcaProcess whose readiness check sends the bearer token."""

    def start(self) -> "TokenProcess":
        args = [sys.executable, "main.py"] + ([] if self.role == "all" else [self.role])
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        url = self.manager_url + "/nodes" if self.role != "worker" else self.worker_url(0) + "/stats"
        token = self.env["ORCA_TOKEN"]
        wait_for(lambda: self._alive() and requests.get(url, headers=auth(token), timeout=1).ok,
                 what=f"{self.role} to listen")
        return self

    def full_log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_secure(cluster: Cluster, role: str = "all", workers: int = 2, **overrides: str) -> TokenProcess:
    """Like cluster.start, with ORCA_TOKEN set (its containers are cleaned up the same way)."""
    base = free_ports(workers + 1)
    settings_ = dict(ORCA_MANAGER_PORT=str(base), ORCA_WORKER_PORT=str(base + 1), ORCA_WORKER_COUNT=str(workers),
                     ORCA_WORKER_NAME=f"{cluster.prefix}-{base}", ORCA_TOKEN=TOKEN)
    settings_.update(overrides)
    name = settings_["ORCA_WORKER_NAME"]
    cluster.worker_names.update({name} | {f"{name}-{i}" for i in range(workers)})
    process = TokenProcess(role, cluster.env(**settings_), cluster.tmp_path / f"orca-{role}-{base}.log")
    cluster.processes.append(process)
    return process.start()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(url: str, body, headers=None) -> requests.Response:
    return requests.post(f"{url}/tasks", json=body, headers=auth() if headers is None else headers, timeout=5)


def wait_state(url: str, task_id: str, states: tuple[str, ...], timeout: float = 15.0) -> dict:
    def check():
        task = requests.get(f"{url}/tasks/{task_id}", headers=auth(), timeout=5).json()
        return task if task["state"] in states else None
    return wait_for(check, timeout, what=f"task {task_id} to be {'/'.join(states)}")


def app_routes() -> tuple[list, list]:
    """The routes of the manager and worker apps, built the way the processes build them."""
    from manager.api import create_app as manager_app
    from manager.manager import Manager
    from scheduler import RoundRobin
    from worker.api import create_app as worker_app
    from worker.worker import Worker

    manager, worker = Manager([], None, RoundRobin()), Worker("routes", None)
    try:
        return routes_of(manager_app(manager)), routes_of(worker_app(worker, stats=dict))
    finally:
        worker.close()
        manager.close()


MANAGER_ROUTES, WORKER_ROUTES = app_routes()


def concrete(routes: list) -> list[tuple[str, str]]:
    """(method, path) for every route and method, ids filled with a fresh UUID."""
    task_id = str(uuid.uuid4())
    return [(method, re.sub(r"<[^<>]+>", task_id, rule)) for rule, methods in routes
            for method in sorted(methods - {"OPTIONS"})]


@pytest.fixture(scope="module")
def secure(tmp_path_factory, docker_client, test_image):
    """One all-in-one Orca with ORCA_TOKEN, debug logging and only the test image allowed."""
    cluster = Cluster(tmp_path_factory.mktemp("secure"), docker_client)
    try:
        yield start_secure(cluster, ORCA_ALLOWED_IMAGES=test_image, ORCA_LOG_LEVEL="debug")
    finally:
        cluster.close()


# ----- 1. authentication


@pytest.mark.parametrize("target", ["manager", "worker"])
def test_every_route_but_health_needs_the_token(secure, target):
    url, routes = (secure.manager_url, MANAGER_ROUTES) if target == "manager" else (secure.worker_url(0), WORKER_ROUTES)
    checked = 0
    for method, path in concrete(routes) + [("GET", "/nowhere"), ("POST", "/health")]:
        if is_dashboard(path):
            continue  # its own login page (tests/integration/test_dashboard.py, tests/api/test_ui_pages.py)
        open_route = path == "/health" and method in ("GET", "HEAD")
        for header in WRONG_TOKENS:
            response = requests.request(method, url + path, headers={} if header is None else {"Authorization": header},
                                        json={"task": {"image": "x"}}, timeout=5)
            if open_route:
                assert response.status_code in (200, 503), (method, path)
                continue
            assert response.status_code == 401, (method, path, header, response.status_code)
            if method != "HEAD":
                assert response.json() == UNAUTHORIZED
            assert response.headers["WWW-Authenticate"] == "Bearer"
            checked += 1
        with_token = requests.request(method, url + path, headers=auth(), timeout=5, params={"wait": 0},
                                      stream=True)  # GET /events never ends by itself
        with with_token:
            assert with_token.status_code not in (401, 500), (method, path, with_token.status_code)
    assert checked >= len(WRONG_TOKENS) * 4


def test_the_manager_calls_token_protected_workers(secure, test_image):
    task = post(secure.manager_url, {"task": {"image": test_image, "command": ["sleep", "30"]}}).json()
    wait_state(secure.manager_url, task["id"], ("running",))
    nodes = requests.get(f"{secure.manager_url}/nodes", headers=auth(), timeout=5).json()
    assert {n["address"] for n in nodes if n["state"] == "up"} == {secure.worker_address(0), secure.worker_address(1)}
    on_workers = [requests.get(f"{secure.worker_url(i)}/tasks/{task['id']}", headers=auth(), timeout=5).status_code
                  for i in (0, 1)]
    assert sorted(on_workers) == [200, 404]
    stopped = requests.delete(f"{secure.manager_url}/tasks/{task['id']}", headers=auth(), timeout=5)
    assert stopped.status_code == 202
    wait_state(secure.manager_url, task["id"], ("completed",))


def test_a_manager_with_another_token_gets_no_worker(cluster, test_image):
    worker = start_secure(cluster, "worker", workers=1)
    manager = start_secure(cluster, "manager", workers=0, ORCA_WORKERS=worker.worker_address(0),
                           ORCA_TOKEN=secrets.token_urlsafe(32))
    other = {"Authorization": f"Bearer {manager.env['ORCA_TOKEN']}"}
    nodes = wait_for(lambda: [n for n in requests.get(f"{manager.manager_url}/nodes", headers=other, timeout=5).json()
                              if n["state"] == "down"], what="the worker to be down")
    assert nodes[0]["address"] == worker.worker_address(0)
    assert TOKEN not in manager.full_log() and manager.env["ORCA_TOKEN"] not in manager.full_log()


# ----- 2. safe binding


@pytest.mark.parametrize(("role", "variable"), [("all", "ORCA_MANAGER_HOST"), ("manager", "ORCA_MANAGER_HOST"),
                                                ("worker", "ORCA_WORKER_HOST"), ("all", "ORCA_WORKER_HOST")])
def test_listening_beyond_loopback_without_a_token_refuses_to_start(tmp_path, role, variable):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCA_")}
    env.update({variable: "0.0.0.0", "ORCA_DATA_DIR": str(tmp_path), "ORCA_MANAGER_PORT": "0", "ORCA_WORKER_PORT": "0"})
    args = [sys.executable, "main.py"] + ([] if role == "all" else [role])
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert variable in done.stderr and "export ORCA_TOKEN=" in done.stderr
    assert "Traceback" not in done.stderr


def test_listening_beyond_loopback_with_a_token_starts(cluster):
    process = start_secure(cluster, "worker", workers=1, ORCA_WORKER_HOST="0.0.0.0")
    assert requests.get(f"{process.worker_url(0)}/stats", timeout=5).status_code == 401
    assert requests.get(f"{process.worker_url(0)}/stats", headers=auth(), timeout=5).status_code == 200
    assert process.signal(signal.SIGTERM) == 0


# ----- 3. safe containers

DANGEROUS = [("privileged", True), ("volumes", {"/": {"bind": "/host", "mode": "rw"}}), ("Binds", ["/:/host"]),
             ("network_mode", "host"), ("pid_mode", "host"), ("ipc_mode", "host"), ("cap_add", ["SYS_ADMIN"]),
             ("CapAdd", ["ALL"]), ("devices", ["/dev/kmsg:/dev/kmsg"]), ("security_opt", ["seccomp=unconfined"])]


@pytest.mark.parametrize("target", ["manager", "worker"])
def test_dangerous_fields_are_refused_naming_them(secure, test_image, docker_client, target):
    url = secure.manager_url if target == "manager" else secure.worker_url(0)
    before = requests.get(f"{url}/tasks", headers=auth(), timeout=5).json()
    for field, value in DANGEROUS:
        response = post(url, {"task": {"image": test_image, "command": ["true"], field: value}})
        assert response.status_code == 400, (field, response.text)
        assert response.json()["error"].startswith(f"task.{field} is not allowed: ")
    assert requests.get(f"{url}/tasks", headers=auth(), timeout=5).json() == before


@pytest.mark.parametrize("target", ["manager", "worker"])
def test_images_outside_orca_allowed_images_are_forbidden(secure, target):
    url = secure.manager_url if target == "manager" else secure.worker_url(0)
    before = requests.get(f"{url}/tasks", headers=auth(), timeout=5).json()
    for image in ("busybox", "orca-test-busybox:other", "orca-test-busybox.attacker.example/miner:latest",
                  "orca-test-busyboxes/evil:latest", "orca-test-busybox@sha256:" + "0" * 64):
        response = post(url, {"task": {"image": image}})
        assert response.status_code == 403, response.text
        assert f"image {image!r} is not allowed" in response.json()["error"]
    assert requests.get(f"{url}/tasks", headers=auth(), timeout=5).json() == before


def test_jsonrpc_create_of_a_forbidden_image_is_invalid_params(secure):
    call = {"jsonrpc": "2.0", "method": "ContainerService.Create", "params": [{"image": "busybox"}], "id": 1}
    answer = requests.post(f"{secure.manager_url}/jrpc", json=call, headers=auth(), timeout=5).json()
    assert answer["error"]["code"] == -32602 and "not allowed" in answer["error"]["message"]


def test_containers_run_with_no_new_privileges_and_nothing_of_the_host(secure, test_image, docker_client):
    body = {"task": {"image": test_image, "command": ["sh", "-c", "grep NoNewPrivs /proc/self/status; sleep 30"]}}
    task = post(secure.manager_url, body).json()
    running = wait_state(secure.manager_url, task["id"], ("running",))
    container = docker_client.containers.get(running["container_id"])
    host = container.attrs["HostConfig"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert not host.get("Binds") and not host.get("Mounts") and not host.get("Devices")
    assert not host.get("CapAdd")
    assert host["NetworkMode"] in ("default", "bridge") and host["PidMode"] == "" and host["IpcMode"] != "host"
    logs = wait_for(lambda: b"NoNewPrivs" in container.logs() and container.logs(), what="the container's output")
    assert re.search(rb"NoNewPrivs:\s*1", logs), logs
    requests.delete(f"{secure.manager_url}/tasks/{task['id']}", headers=auth(), timeout=5)


# ----- 4. bounded input, secrets out of the log

PATH_TRICKS = ["..", "%2e%2e", "%2e%2e%2fnodes", "..%2f..%2fetc%2fpasswd", "%00", "a%00b", "%0aX", "%ff",
               "x" * 5000, "%C3%A9" * 50, "6F1C1F55-3A7E-4A55-9D64-0A4F2F8B8B01",
               "urn:uuid:6f1c1f55-3a7e-4a55-9d64-0a4f2f8b8b01",
               "{6f1c1f55-3a7e-4a55-9d64-0a4f2f8b8b01}", "00000000-0000-0000-0000-000000000000", "-1", "null"]


@pytest.mark.parametrize("target", ["manager", "worker"])
def test_task_ids_that_are_not_uuids_are_404_json(secure, target):
    url = secure.manager_url if target == "manager" else secure.worker_url(0)
    port = int(url.rsplit(":", 1)[1])
    for trick in PATH_TRICKS:
        for method in ("GET", "DELETE"):
            status, body = raw_request(port, method, f"/tasks/{trick}")
            assert status == 404, (method, trick, status, body[:200])
            assert isinstance(json.loads(body)["error"], str)


def test_bodies_over_the_limit_are_413(secure):
    for url in (secure.manager_url, secure.worker_url(0)):
        response = requests.post(f"{url}/tasks", data=b"{" + b" " * (1024 * 1024) + b"}",
                                 headers={**auth(), "Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 413 and "larger than" in response.json()["error"]


def test_env_values_and_the_token_never_reach_the_log_or_a_response(secure, test_image):
    secret = f"hunter2-{uuid.uuid4()}"
    seen: list[str] = []

    def call(method, url, **kwargs):
        response = requests.request(method, url, timeout=5, **kwargs)
        seen.append(response.text + json.dumps(dict(response.headers)))
        return response

    ok = call("POST", f"{secure.manager_url}/tasks", headers=auth(),
              json={"task": {"image": test_image, "command": ["sh", "-c", "exit 3"], "env": {"SECRET": secret},
                             "restart_policy": "no"}}).json()
    wait_state(secure.manager_url, ok["id"], ("failed",))
    bad = [{"env": {"SECRET": secret}, "cpu": -1}, {"env": {"SECRET": secret, "B=AD": secret}},
           {"env": {"SECRET": secret, "N": 5}}, {"env": {"SECRET": secret + "\x00"}}, {"env": {"SECRET": secret},
                                                                                          "privileged": True}]
    for task in bad:
        for url in (secure.manager_url, secure.worker_url(0)):
            response = call("POST", f"{url}/tasks", headers=auth(), json={"task": {"image": test_image, **task}})
            assert response.status_code == 400 and secret not in response.text
    for url in (secure.manager_url, secure.worker_url(0)):
        for header in WRONG_TOKENS[1:]:
            call("GET", f"{url}/tasks", headers={"Authorization": header})
        call("GET", f"{url}/nowhere", headers=auth())
    call("POST", f"{secure.manager_url}/jrpc", headers=auth(),
         json={"jsonrpc": "2.0", "method": "ContainerService.Create", "id": 1,
               "params": [{"image": test_image, "env": {"SECRET": secret, "X": []}}]})
    log = secure.full_log()
    assert f"task {ok['id']}" in log  # the log is the right one, and at debug level
    assert secret not in log
    assert TOKEN not in log
    assert not any(TOKEN in text for text in seen)


def raw_request(port: int, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request with the target sent exactly as given (requests would normalise it). An
    event stream (GET /events) never ends by itself: its body is not read, the connection is
    closed."""
    target = "".join(c if ord(c) < 128 else urllib.parse.quote(c) for c in target)  # the request line is ASCII
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, target, body=body, headers={**auth(), **(headers or {})})
        response = connection.getresponse()
        if response.getheader("Content-Type", "").startswith("text/event-stream"):
            response.close()  # with the connection's close below, the socket really closes
            return response.status, b""
        return response.status, response.read()
    finally:
        connection.close()


# ----- 5. hostile input over HTTP


def test_hostile_requests_change_nothing_and_the_jobs_keep_running(cluster, test_image):
    orca = start_secure(cluster, ORCA_ALLOWED_IMAGES=test_image)
    targets = [(int(orca.manager_url.rsplit(":", 1)[1]), MANAGER_ROUTES),
               (int(orca.worker_url(0).rsplit(":", 1)[1]), WORKER_ROUTES)]
    listings = lambda: [requests.get(f"{url}/tasks", headers=auth(), timeout=5).json()  # noqa: E731
                        for url in (orca.manager_url, orca.worker_url(0))]
    before = listings()

    for port, routes in targets:
        @settings(max_examples=200, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(request=hostile_requests(routes))
        def attack(request):
            method, path, query, body, headers = request
            target = path + ("?" + urllib.parse.urlencode(query) if query else "")
            status, data = raw_request(port, method, target, body, headers)
            assert status < 500, (method, target[:200], status, data[:300])
            if status >= 400 and method != "HEAD" and not is_dashboard(path):
                error = json.loads(data)["error"]
                assert (isinstance(error, str) and error) or isinstance(error.get("message"), str)

        attack()

    assert listings() == before  # no hostile image is allowed: every task creation was refused
    task = post(orca.manager_url, {"task": {"image": test_image, "command": ["true"]}}).json()
    assert wait_state(orca.manager_url, task["id"], ("completed",))["exit_code"] == 0
    log = orca.full_log()
    assert "Traceback" not in log and "Logging error" not in log, log[-3000:]
    assert TOKEN not in log
