"""POST /jrpc on a real `python main.py` (manager + 2 workers) against the real Docker engine."""
from __future__ import annotations

import json

import pytest
import requests

from tests.integration.conftest import TERMINAL, Cluster, wait_for, wait_state

pytestmark = pytest.mark.docker

JSON = {"Content-Type": "application/json"}
CREATE = "ContainerService.Create"
STATUS = "ContainerService.Status"
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"

# The issue's two requests, byte for byte (the job id is filled in).
VERBATIM_CREATE = ('{"jsonrpc": "2.0", "method": "ContainerService.Create", "params": [{"image": "nginx", '
                   '"arguments": [], "resources": {}, "env": {}}], "id": 1}')
VERBATIM_STATUS = ('{"jsonrpc": "2.0", "method": "ContainerService.Status", "params": [{"job_id": "%s"}], '
                   '"id": 1}')


def rpc(base_url: str, body, headers=JSON) -> requests.Response:
    """POST a body (a str sent as is, or anything JSON-encodable) to /jrpc."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(f"{base_url}/jrpc", data=data, headers=headers, timeout=5)


def call(method: str, params=None, id=1) -> dict:
    """A request object; id=... (Ellipsis) makes it a notification; params=None leaves it out."""
    request = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        request["params"] = params
    if id is not ...:
        request["id"] = id
    return request


def create(base_url: str, **args) -> str:
    """ContainerService.Create with `args`; return the job id (fails the test on an error)."""
    answer = rpc(base_url, call(CREATE, [args])).json()
    assert answer["error"] is None, answer
    return answer["result"]["job_id"]


def status(base_url: str, job_id: str) -> dict:
    """ContainerService.Status of `job_id`; return its result."""
    answer = rpc(base_url, call(STATUS, [{"job_id": job_id}])).json()
    assert answer["error"] is None, answer
    return answer["result"]


def wait_status(base_url: str, job_id: str, states=TERMINAL, timeout: float = 60.0) -> dict:
    """Poll ContainerService.Status until the job's status is one of `states`."""
    def check():
        result = status(base_url, job_id)
        return result if result["status"] in states else None
    return wait_for(check, timeout, what=f"job {job_id} to be {'/'.join(states)} over JSON-RPC")


@pytest.fixture(scope="module")
def shared(tmp_path_factory, docker_client, test_image):
    """One `python main.py` for the requests that must change nothing (refused ones)."""
    cluster = Cluster(tmp_path_factory.mktemp("jrpc"), docker_client)
    yield cluster.start("all", workers=2)
    cluster.close()


# ----- the issue's requests and real containers


def test_the_issues_verbatim_requests_end_failed_for_nginx(orca, cluster):
    answer = rpc(orca.manager_url, VERBATIM_CREATE)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    job_id = body["result"]["job_id"]
    assert body == {"jsonrpc": "2.0", "result": {"job_id": job_id, "message": "Job created successfully"},
                    "error": None, "id": 1}

    first = rpc(orca.manager_url, VERBATIM_STATUS % job_id).json()
    assert (first["jsonrpc"], first["error"], first["id"]) == ("2.0", None, 1)
    assert first["result"]["job_id"] == job_id and first["result"]["status"] in ("pending", "scheduled", "failed")

    final = wait_status(orca.manager_url, job_id, ("failed",))
    assert "nginx" in final["error"] and "not available" in final["error"]
    assert set(final) >= {"job_id", "status", "exit_code", "error"}
    task = requests.get(f"{orca.manager_url}/tasks/{job_id}", timeout=5).json()
    assert (task["state"], task["image"], task["error"]) == ("failed", "nginx", final["error"])
    assert cluster.containers() == []


def test_a_job_that_exits_0_completes(orca, test_image):
    job_id = create(orca.manager_url, image=test_image, arguments=["sh", "-c", "exit 0"], resources={}, env={})
    final = wait_status(orca.manager_url, job_id)
    assert final == {"job_id": job_id, "status": "completed", "exit_code": 0, "error": None}
    assert requests.get(f"{orca.manager_url}/tasks/{job_id}", timeout=5).json()["command"] == ["sh", "-c", "exit 0"]


def test_a_job_that_exits_non_zero_fails_with_its_exit_code(orca, test_image):
    job_id = create(orca.manager_url, image=test_image, arguments=["sh", "-c", "exit 3"])
    final = wait_status(orca.manager_url, job_id)
    assert (final["status"], final["exit_code"]) == ("failed", 3)
    assert "3" in final["error"]


def test_env_reaches_the_container_and_numbers_become_strings(orca, test_image):
    check = 'test "$GREETING" = hi && test "$PORT" = 8080'
    job_id = create(orca.manager_url, image=test_image, arguments=["sh", "-c", check],
                    env={"GREETING": "hi", "PORT": 8080})
    assert wait_status(orca.manager_url, job_id)["status"] == "completed"
    assert requests.get(f"{orca.manager_url}/tasks/{job_id}", timeout=5).json()["env"] == \
        {"GREETING": "hi", "PORT": "8080"}


@pytest.mark.parametrize("resources, cpu, memory", [
    ({"cpu": 0.5, "memory": "64m"}, 0.5, 64 << 20),
    ({"cpus": 0.25, "memory_mb": 32}, 0.25, 32 << 20),
    ({"memory": 100663296}, 0.0, 96 << 20),
    ({}, 0.0, 0),
], ids=["cpu+memory-size", "cpus+memory_mb", "memory-bytes", "none"])
def test_resources_map_onto_cpu_and_memory_on_the_task_and_in_docker(orca, cluster, test_image, resources, cpu, memory):
    job_id = create(orca.manager_url, image=test_image, arguments=["sleep", "30"], resources=resources)
    task = wait_state(orca.manager_url, job_id, ("running",))
    assert (task["cpu"], task["memory"]) == (cpu, memory)
    host = cluster.docker.containers.get(task["container_id"]).attrs["HostConfig"]
    assert (host["NanoCpus"], host["Memory"]) == (int(cpu * 1e9), memory)


def test_a_batch_of_create_status_and_a_bad_method_answers_in_order(orca, test_image):
    earlier = create(orca.manager_url, image=test_image, arguments=["true"])
    answer = rpc(orca.manager_url, [
        call(CREATE, [{"image": test_image, "arguments": ["sh", "-c", "exit 0"]}], id="create"),
        call(STATUS, [{"job_id": earlier}], id="status"),
        call("ContainerService.Delete", [{"job_id": earlier}], id="bad"),
        call(STATUS, [{"job_id": UNKNOWN_ID}], id="unknown"),
    ])
    assert answer.status_code == 200
    answers = answer.json()
    assert [a["id"] for a in answers] == ["create", "status", "bad", "unknown"]
    assert [a["error"] and a["error"]["code"] for a in answers] == [None, None, -32601, -32602]
    assert answers[1]["result"]["job_id"] == earlier
    created = answers[0]["result"]["job_id"]
    assert wait_status(orca.manager_url, created)["status"] == "completed"
    assert wait_status(orca.manager_url, earlier)["status"] == "completed"


def test_a_notification_runs_the_job_and_gets_204(orca, test_image):
    answer = rpc(orca.manager_url, call(CREATE, [{"image": test_image, "arguments": ["true"]}], id=...))
    assert (answer.status_code, answer.content) == (204, b"")
    tasks = requests.get(f"{orca.manager_url}/tasks", timeout=5).json()
    assert [t["image"] for t in tasks] == [test_image]
    assert wait_status(orca.manager_url, tasks[0]["id"])["status"] == "completed"

    only_notifications = [call(STATUS, [{"job_id": tasks[0]["id"]}], id=...), call("Nope", id=...)]
    answer = rpc(orca.manager_url, only_notifications)
    assert (answer.status_code, answer.content) == (204, b"")


# ----- every error code, over HTTP: always 200 with a JSON-RPC error, nothing created

ERRORS = {
    "parse-error": ("{not json", -32700, "Parse error", None),
    "parse-error-truncated": ('{"jsonrpc": "2.0", "method": "ContainerService.Create", "id": 1', -32700,
                              "Parse error", None),
    "parse-error-empty-body": ("", -32700, "Parse error", None),
    "parse-error-not-utf8": (b"\xff\xfe{", -32700, "Parse error", None),
    "jsonrpc-1.0": ({**call(CREATE, [{"image": "busybox"}]), "jsonrpc": "1.0"}, -32600, "jsonrpc", 1),
    "jsonrpc-missing": ({"method": STATUS, "params": [{"job_id": UNKNOWN_ID}], "id": 2}, -32600, "jsonrpc", 2),
    "not-an-object": ("42", -32600, "JSON object", None),
    "empty-batch": ("[]", -32600, "empty batch", None),
    "method-not-string": (call(5), -32600, "method", 1),
    "params-not-structured": (call(CREATE, "nginx"), -32600, "params", 1),
    "id-boolean": ({**call(CREATE, [{"image": "busybox"}]), "id": True}, -32600, "id", None),
    "unknown-method": (call("ContainerService.Delete", [{"job_id": UNKNOWN_ID}], id=3), -32601,
                       "ContainerService.Delete", 3),
    "params-missing": (call(CREATE), -32602, "params is required", 1),
    "params-empty": (call(CREATE, []), -32602, "one object", 1),
    "image-missing": (call(CREATE, [{"arguments": [], "resources": {}, "env": {}}]), -32602, "image is required", 1),
    "image-wrong-type": (call(CREATE, [{"image": 5}]), -32602, "image must be a string", 1),
    "arguments-wrong-type": (call(CREATE, [{"image": "busybox", "arguments": "exit 0"}]), -32602,
                             "arguments must be a list of strings", 1),
    "env-wrong-type": (call(CREATE, [{"image": "busybox", "env": {"A": [1]}}]), -32602, "env.A", 1),
    "resources-wrong-type": (call(CREATE, [{"image": "busybox", "resources": "big"}]), -32602,
                             "resources must be an object", 1),
    "resource-unknown-key": (call(CREATE, [{"image": "busybox", "resources": {"gpu": 1}}]), -32602,
                             "unknown resource 'gpu'", 1),
    "resource-bad-memory": (call(CREATE, [{"image": "busybox", "resources": {"memory": "lots"}}]), -32602,
                            "resources.memory", 1),
    "unknown-param": (call(CREATE, [{"image": "busybox", "ports": {}}]), -32602, "unknown parameter 'ports'", 1),
    "job-id-missing": (call(STATUS, [{}]), -32602, "job_id is required", 1),
    "job-id-wrong-type": (call(STATUS, [{"job_id": 42}]), -32602, "job_id must be a string", 1),
    "job-id-unknown": (call(STATUS, [{"job_id": UNKNOWN_ID}], id="s"), -32602, f"unknown job id '{UNKNOWN_ID}'", "s"),
    "job-id-malformed": (call(STATUS, [{"job_id": "<the returned job id>"}]), -32602, "unknown job id", 1),
}


@pytest.mark.parametrize("body, code, says, answer_id", ERRORS.values(), ids=ERRORS.keys())
def test_every_error_code_is_a_json_rpc_error_with_http_200(shared, body, code, says, answer_id):
    answer = rpc(shared.manager_url, body)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"jsonrpc": "2.0", "error": {"code": code, "message": answer.json()["error"]["message"]},
                             "id": answer_id}
    assert says in answer.json()["error"]["message"]
    assert requests.get(f"{shared.manager_url}/tasks", timeout=5).json() == []


def test_a_batch_of_invalid_entries_answers_each_with_invalid_request(shared):
    answers = rpc(shared.manager_url, "[1, 2, 3]").json()
    assert [(a["error"]["code"], a["id"]) for a in answers] == [(-32600, None)] * 3


# ----- HTTP around JSON-RPC


@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"}, {}], ids=["text-plain", "no-content-type"])
def test_any_content_type_is_read_as_json(shared, headers):
    answer = rpc(shared.manager_url, call(STATUS, [{"job_id": UNKNOWN_ID}]), headers=headers)
    assert answer.status_code == 200 and answer.json()["error"]["code"] == -32602
    assert rpc(shared.manager_url, "{not json", headers=headers).json()["error"]["code"] == -32700


def test_other_methods_and_oversized_bodies_are_http_errors(shared):
    answer = requests.get(f"{shared.manager_url}/jrpc", timeout=5)
    assert answer.status_code == 405 and "not allowed" in answer.json()["error"]
    answer = rpc(shared.manager_url, b"[" + b" " * (2 * 1024 * 1024) + b"]")
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == -32600 and answer.json()["id"] is None
