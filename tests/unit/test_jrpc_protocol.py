"""JSON-RPC 2.0 envelope and ContainerService params (manager.jrpc), with a tiny fake manager.

No HTTP, no Docker: tests/integration/test_jrpc.py drives the same code through the real
manager process and the real engine.
"""
from __future__ import annotations

import json
import uuid

import pytest

from manager.jrpc import MAX_BATCH, ContainerService, handle_body
from task import NotFound, State, Task, TaskEvent, Unavailable

CREATE = "ContainerService.Create"
STATUS = "ContainerService.Status"
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


class FakeManager:
    """The two Manager calls ContainerService makes: submit(event) and get(task_id)."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.submit_error: Exception | None = None

    def submit(self, event: TaskEvent) -> Task:
        if self.submit_error:
            raise self.submit_error
        self.tasks[event.task.id] = event.task
        return event.task

    def get(self, task_id: str) -> Task:
        if task_id not in self.tasks:
            raise NotFound(f"task {task_id} not found")
        return self.tasks[task_id]


@pytest.fixture
def manager() -> FakeManager:
    return FakeManager()


@pytest.fixture
def rpc(manager):
    """Send a body (a str, bytes, or anything JSON-encodable); return the decoded answer or None."""
    methods = ContainerService(manager).methods()

    def send(body):
        raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        answer = handle_body(raw, methods)
        return None if answer is None else json.loads(json.dumps(answer))  # must be plain JSON
    return send


def call(method: str, params=None, id=1, **extra) -> dict:
    """A request object; id=... (Ellipsis) makes it a notification; params=None leaves it out."""
    request = {"jsonrpc": "2.0", "method": method, **extra}
    if params is not None:
        request["params"] = params
    if id is not ...:
        request["id"] = id
    return request


def create(**args) -> dict:
    """Create's params: image busybox plus `args`."""
    return call(CREATE, [{"image": "busybox", **args}])


# ----- success


def test_the_issues_verbatim_create_then_status(rpc, manager):
    created = rpc('{"jsonrpc": "2.0", "method": "ContainerService.Create", "params": '
                  '[{"image": "nginx", "arguments": [], "resources": {}, "env": {}}], "id": 1}')
    assert created == {"jsonrpc": "2.0", "result": {"job_id": created["result"]["job_id"],
                       "message": "Job created successfully"}, "error": None, "id": 1}
    task = manager.tasks[created["result"]["job_id"]]
    assert (task.image, task.command, task.env, task.cpu, task.memory) == ("nginx", [], {}, 0.0, 0)

    body = {"jsonrpc": "2.0", "method": "ContainerService.Status",
            "params": [{"job_id": created["result"]["job_id"]}], "id": 1}
    assert rpc(body) == {"jsonrpc": "2.0", "result": {"job_id": task.id, "status": "pending", "exit_code": None,
                         "error": None}, "error": None, "id": 1}


def test_status_reports_state_exit_code_and_error(rpc, manager):
    job_id = rpc(create())["result"]["job_id"]
    task = manager.tasks[job_id]
    task.state, task.exit_code, task.error = State.FAILED, 3, "container exited with code 3"
    result = rpc(call(STATUS, [{"job_id": job_id.upper()}]))["result"]  # any spelling of the UUID
    assert result == {"job_id": job_id, "status": "failed", "exit_code": 3, "error": "container exited with code 3"}


@pytest.mark.parametrize("request_id", [1, 0, -7, 2.5, "abc", "", None])
def test_the_id_is_echoed_whatever_its_type(rpc, request_id):
    answer = rpc(call(CREATE, [{"image": "busybox"}], id=request_id))
    assert answer["id"] == request_id and answer["error"] is None and "job_id" in answer["result"]


def test_params_may_be_given_by_name(rpc, manager):
    answer = rpc(call(CREATE, {"image": "busybox", "arguments": ["true"]}))
    assert manager.tasks[answer["result"]["job_id"]].command == ["true"]


ARGUMENT_MAPPINGS = {
    "arguments": ({"arguments": ["sh", "-c", "exit 0"]}, "command", ["sh", "-c", "exit 0"]),
    "arguments-null": ({"arguments": None}, "command", []),
    "env": ({"env": {"A": "x"}}, "env", {"A": "x"}),
    "env-numbers": ({"env": {"PORT": 8080, "RATIO": 0.5}}, "env", {"PORT": "8080", "RATIO": "0.5"}),
    "env-null": ({"env": None}, "env", {}),
    "cpu": ({"resources": {"cpu": 0.5}}, "cpu", 0.5),
    "cpus": ({"resources": {"cpus": 2}}, "cpu", 2.0),
    "memory-bytes": ({"resources": {"memory": 67108864}}, "memory", 64 << 20),
    "memory-string": ({"resources": {"memory": "64m"}}, "memory", 64 << 20),
    "memory-mb": ({"resources": {"memory_mb": 32}}, "memory", 32 << 20),
    "memory-zero": ({"resources": {"memory_mb": 0}}, "memory", 0),
    "disk": ({"resources": {"disk": "1g"}}, "disk", 1 << 30),
    "resources-null": ({"resources": None}, "memory", 0),
}


@pytest.mark.parametrize("args, field, expected", ARGUMENT_MAPPINGS.values(), ids=ARGUMENT_MAPPINGS.keys())
def test_create_maps_params_onto_the_task(rpc, manager, args, field, expected):
    answer = rpc(create(**args))
    assert answer["error"] is None, answer
    assert getattr(manager.tasks[answer["result"]["job_id"]], field) == expected


# ----- errors: (body, code, what the message must contain, id of the answer)

ERRORS = {
    # -32700 parse error
    "not-json": ("{not json", -32700, "Parse error", None),
    "empty-body": ("", -32700, "Parse error", None),
    "truncated": ('{"jsonrpc": "2.0", "method": "ContainerService.Create", "id": 1', -32700, "Parse error", None),
    "not-utf8": (b'{"jsonrpc": "2.0", "method": "\xff"}', -32700, "Parse error", None),
    "nan": ('{"jsonrpc": "2.0", "method": "ContainerService.Create", "id": NaN}', -32700, "NaN", None),
    "huge-number": ('{"jsonrpc": "2.0", "method": "ContainerService.Create", "id": 1e999}', -32700, "1e999", None),
    "deep-nesting": ("[" * 100000, -32700, "Parse error", None),
    # -32600 invalid request
    "jsonrpc-1.0": (call(CREATE, [{"image": "busybox"}], jsonrpc="1.0"), -32600, "jsonrpc", 1),
    "jsonrpc-number": (call(CREATE, [{"image": "busybox"}], jsonrpc=2.0), -32600, "jsonrpc", 1),
    "jsonrpc-missing": ({"method": CREATE, "params": [{"image": "busybox"}], "id": 1}, -32600, "jsonrpc", 1),
    "number": (42, -32600, "JSON object", None),
    "string": ('"ContainerService.Create"', -32600, "JSON object", None),
    "null": ("null", -32600, "JSON object", None),
    "empty-batch": ([], -32600, "empty batch", None),
    "method-missing": ({"jsonrpc": "2.0", "id": 1}, -32600, "method", 1),
    "method-number": (call(1), -32600, "method", 1),
    "params-string": (call(CREATE, "busybox"), -32600, "params", 1),
    "id-object": (call(CREATE, [{"image": "busybox"}], id={"a": 1}), -32600, "id", None),
    "id-boolean": (call(CREATE, [{"image": "busybox"}], id=True), -32600, "id", None),
    "unknown-member": (call(CREATE, [{"image": "busybox"}], param=1), -32600, "'param'", 1),
    "batch-too-large": ([create()] * (MAX_BATCH + 1), -32600, f"at most {MAX_BATCH}", None),
    # -32601 unknown method
    "unknown-method": (call("ContainerService.Delete", [{}], id=7), -32601, "ContainerService.Delete", 7),
    "wrong-case": (call("containerservice.create", [{"image": "busybox"}]), -32601, "containerservice.create", 1),
    "rpc-reserved": (call("rpc.discover"), -32601, "rpc.discover", 1),
    # -32602 invalid params: the envelope of params
    "params-missing": (call(CREATE), -32602, "params is required", 1),
    "params-empty-array": (call(CREATE, []), -32602, "one object", 1),
    "params-two-objects": (call(CREATE, [{"image": "a"}, {"image": "b"}]), -32602, "one object", 1),
    "params-array-of-string": (call(CREATE, ["busybox"]), -32602, "one object", 1),
    "unknown-param": (create(ports={"80/tcp": None}), -32602, "'ports'", 1),
    # Create: image, arguments, env
    "image-missing": (call(CREATE, [{"arguments": []}]), -32602, "image is required", 1),
    "image-number": (create(image=5), -32602, "image must be a string", 1),
    "image-empty": (create(image=""), -32602, "image must not be empty", 1),
    "arguments-string": (create(arguments="echo hi"), -32602, "arguments must be a list of strings", 1),
    "arguments-numbers": (create(arguments=["sleep", 5]), -32602, "arguments must be a list of strings", 1),
    "env-list": (create(env=["A=1"]), -32602, "env must be a JSON object", 1),
    "env-boolean": (create(env={"DEBUG": True}), -32602, "env.DEBUG must be a string", 1),
    "env-null-value": (create(env={"A": None}), -32602, "env.A must be a string", 1),
    # Create: resources
    "resources-list": (create(resources=[1]), -32602, "resources must be an object", 1),
    "resource-unknown": (create(resources={"gpu": 1}), -32602, "unknown resource 'gpu'", 1),
    "cpu-string": (create(resources={"cpu": "2"}), -32602, "resources.cpu must be a number", 1),
    "cpus-negative": (create(resources={"cpus": -1}), -32602, "resources.cpus must be between", 1),
    "cpu-and-cpus": (create(resources={"cpu": 1, "cpus": 1}), -32602, "only one of resources.cpu and resources.cpus", 1),
    "memory-words": (create(resources={"memory": "lots"}), -32602, "resources.memory must be", 1),
    "memory-too-small": (create(resources={"memory": 1024}), -32602, "resources.memory must be 0", 1),
    "memory-mb-float": (create(resources={"memory_mb": 1.5}), -32602, "resources.memory_mb", 1),
    "memory-mb-negative": (create(resources={"memory_mb": -1}), -32602, "resources.memory_mb", 1),
    "memory-mb-too-small": (create(resources={"memory_mb": 1}), -32602, "resources.memory_mb must be 0", 1),
    "memory-and-mb": (create(resources={"memory": "64m", "memory_mb": 64}), -32602, "only one of", 1),
    # Status
    "status-params-missing": (call(STATUS), -32602, "params is required", 1),
    "job-id-missing": (call(STATUS, [{}]), -32602, "job_id is required", 1),
    "job-id-number": (call(STATUS, [{"job_id": 5}]), -32602, "job_id must be a string", 1),
    "job-id-unknown": (call(STATUS, [{"job_id": UNKNOWN_ID}]), -32602, f"unknown job id '{UNKNOWN_ID}'", 1),
    "job-id-malformed": (call(STATUS, [{"job_id": "../etc"}]), -32602, "unknown job id '../etc'", 1),
    "status-unknown-param": (call(STATUS, [{"job_id": UNKNOWN_ID, "verbose": True}]), -32602, "'verbose'", 1),
}


@pytest.mark.parametrize("body, code, says, answer_id", ERRORS.values(), ids=ERRORS.keys())
def test_errors_carry_the_standard_code_and_say_what_is_wrong(rpc, manager, body, code, says, answer_id):
    answer = rpc(body)
    assert set(answer) == {"jsonrpc", "error", "id"} and answer["jsonrpc"] == "2.0"
    assert answer["error"]["code"] == code
    assert says in answer["error"]["message"]
    assert answer["id"] == answer_id
    assert manager.tasks == {}


def test_a_refusing_manager_is_a_server_error(rpc, manager):
    manager.submit_error = Unavailable("manager is shutting down")
    error = rpc(create())["error"]
    assert error == {"code": -32000, "message": "Server error: manager is shutting down"}


def test_a_crashing_method_is_an_internal_error_and_the_batch_goes_on(manager):
    def crash(_params):
        raise KeyError("bug")
    methods = {**ContainerService(manager).methods(), "Crash": crash}
    answer = handle_body(json.dumps([call("Crash", id=1), create() | {"id": 2}]).encode(), methods)
    assert answer[0] == {"jsonrpc": "2.0", "error": {"code": -32603, "message": "Internal error"}, "id": 1}
    assert answer[1]["error"] is None and answer[1]["id"] == 2


# ----- batches and notifications


def test_a_batch_is_answered_in_order(rpc, manager):
    job_id = rpc(create())["result"]["job_id"]
    answers = rpc([create() | {"id": "a"}, call(STATUS, [{"job_id": job_id}], id="b"),
                   call("Nope", id="c"), call(STATUS, [{"job_id": UNKNOWN_ID}], id="d")])
    assert [a["id"] for a in answers] == ["a", "b", "c", "d"]
    assert answers[0]["result"]["job_id"] in manager.tasks
    assert answers[1]["result"] == {"job_id": job_id, "status": "pending", "exit_code": None, "error": None}
    assert [a["error"] and a["error"]["code"] for a in answers] == [None, None, -32601, -32602]


def test_a_batch_of_invalid_entries_answers_each(rpc):
    answers = rpc([1, 2, 3])
    assert [(a["error"]["code"], a["id"]) for a in answers] == [(-32600, None)] * 3


def test_a_notification_runs_but_gets_no_answer(rpc, manager):
    assert rpc(call(CREATE, [{"image": "busybox"}], id=...)) is None
    assert [t.image for t in manager.tasks.values()] == ["busybox"]


@pytest.mark.parametrize("notification", [
    call("Nope", id=...),
    call(CREATE, [{"image": 5}], id=...),
    call(STATUS, [{"job_id": UNKNOWN_ID}], id=...),
], ids=["unknown-method", "invalid-params", "unknown-job"])
def test_a_notifications_errors_are_not_answered(rpc, notification):
    assert rpc(notification) is None


def test_a_batch_of_notifications_only_gets_no_answer(rpc, manager):
    assert rpc([call(CREATE, [{"image": "busybox"}], id=...), call("Nope", id=...)]) is None
    assert len(manager.tasks) == 1


def test_notifications_in_a_batch_are_left_out_of_the_answer(rpc):
    answers = rpc([call(CREATE, [{"image": "busybox"}], id=...), call(STATUS, [{"job_id": UNKNOWN_ID}], id=9)])
    assert [(a["id"], a["error"]["code"]) for a in answers] == [(9, -32602)]


def test_an_invalid_request_without_id_is_still_answered(rpc):
    answer = rpc({"jsonrpc": "1.0", "method": CREATE})
    assert (answer["error"]["code"], answer["id"]) == (-32600, None)


def test_job_ids_are_fresh_uuids(rpc):
    ids = {rpc(create())["result"]["job_id"] for _ in range(5)}
    assert len(ids) == 5 and all(str(uuid.UUID(i)) == i for i in ids)
