"""Strict parsing of task events (task.validation): every bad input is refused naming its field."""
import copy
import json

import pytest

from task.wire import parse_order
from task import SPEC_FIELDS, State, Task, TaskEvent, ValidationError, parse_event, parse_size

TASK_ID = "0b9c8f4e-6a55-4d0e-9d3c-2f7b1d2a9e11"
EVENT_ID = "5d1f7e0a-3c2b-4b8e-9f6a-1e2d3c4b5a69"


def event(**task_fields):
    """A valid event whose task has `image: busybox` plus `task_fields` (None removes a field)."""
    task = {"image": "busybox", **task_fields}
    return {"task": {k: v for k, v in task.items() if v is not None}}


# (body, field the message must name)
BAD_INPUTS = {
    # the body itself
    "body-list": ([], "body"),
    "body-string": ("task", "body"),
    "body-number": (42, "body"),
    "body-null": (None, "body"),
    "task-missing": ({"state": "running"}, "task"),
    "task-not-object": ({"task": ["busybox"]}, "task"),
    "unknown-top-level": ({"task": {"image": "busybox"}, "priority": 1}, "priority"),
    "unknown-task-field": (event(restart="always"), "task.restart"),
    # image
    "image-missing": ({"task": {"name": "web"}}, "task.image"),
    "image-empty": (event(image=""), "task.image"),
    "image-blank": (event(image="   "), "task.image"),
    "image-not-string": (event(image=5), "task.image"),
    "image-with-space": (event(image="busy box"), "task.image"),
    # command
    "command-string": (event(command="echo hi"), "task.command"),
    "command-object": (event(command={"0": "echo"}), "task.command"),
    "command-non-strings": (event(command=["sleep", 5]), "task.command"),
    "command-null-item": (event(command=["sh", None]), "task.command"),
    # env
    "env-list": (event(env=["A=1"]), "task.env"),
    "env-string": (event(env="A=1"), "task.env"),
    "env-int-value": (event(env={"A": 1}), "task.env.A"),
    "env-null-value": (event(env={"A": None}), "task.env.A"),
    "env-bad-name": (event(env={"A=B": "1"}), "task.env"),
    # cpu
    "cpu-string": (event(cpu="1"), "task.cpu"),
    "cpu-bool": (event(cpu=True), "task.cpu"),
    "cpu-negative": (event(cpu=-0.5), "task.cpu"),
    "cpu-nan": (event(cpu=float("nan")), "task.cpu"),
    "cpu-inf": (event(cpu=float("inf")), "task.cpu"),
    "cpu-huge": (event(cpu=1e300), "task.cpu"),
    "cpu-list": (event(cpu=[1]), "task.cpu"),
    # memory
    "memory-negative": (event(memory=-1), "task.memory"),
    "memory-bool": (event(memory=True), "task.memory"),
    "memory-bad-string": (event(memory="lots"), "task.memory"),
    "memory-negative-string": (event(memory="-64m"), "task.memory"),
    "memory-float": (event(memory=1.5), "task.memory"),
    "memory-below-6m": (event(memory="5m"), "task.memory"),
    "memory-below-6m-bytes": (event(memory=1024), "task.memory"),
    "memory-too-big": (event(memory="2000p"), "task.memory"),
    # disk
    "disk-negative": (event(disk=-1), "task.disk"),
    "disk-bad-string": (event(disk="big"), "task.disk"),
    "disk-bool": (event(disk=False), "task.disk"),
    # ports
    "ports-list": (event(ports=[8080]), "task.ports"),
    "ports-bad-key": (event(ports={"http": None}), "task.ports"),
    "ports-key-zero": (event(ports={"0": None}), "task.ports"),
    "ports-key-too-big": (event(ports={"70000/tcp": None}), "task.ports"),
    "ports-bad-protocol": (event(ports={"8080/icmp": None}), "task.ports"),
    "ports-string-value": (event(ports={"8080/tcp": "8080"}), "task.ports.8080/tcp"),
    "ports-value-too-big": (event(ports={"8080/tcp": 65536}), "task.ports.8080/tcp"),
    "ports-value-zero": (event(ports={"8080/tcp": 0}), "task.ports.8080/tcp"),
    "ports-bool-value": (event(ports={"8080/tcp": True}), "task.ports.8080/tcp"),
    # name and ids
    "name-with-spaces": (event(name="my web"), "task.name"),
    "name-empty": (event(name=""), "task.name"),
    "name-not-string": (event(name=7), "task.name"),
    "name-too-long": (event(name="a" * 129), "task.name"),
    "task-id-not-uuid": (event(id="web-1"), "task.id"),
    "task-id-number": (event(id=12), "task.id"),
    "event-id-not-uuid": ({"id": "nope", "task": {"image": "busybox"}}, "id"),
    # desired state
    "state-pending": ({"state": "pending", "task": {"image": "busybox"}}, "state"),
    "state-failed": ({"state": "failed", "task": {"image": "busybox"}}, "state"),
    "state-number": ({"state": 1, "task": {"image": "busybox"}}, "state"),
    "state-list": ({"state": ["running"], "task": {"image": "busybox"}}, "state"),
    "completed-without-task-id": ({"state": "completed", "task": {"image": "busybox"}}, "task.id"),
}


@pytest.mark.parametrize(("body", "field"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_rejected_naming_the_field(body, field):
    with pytest.raises(ValidationError) as raised:
        parse_event(copy.deepcopy(body))
    assert field in str(raised.value)


def test_huge_number_from_json_is_rejected():
    """JSON's 1e999 decodes to infinity; it must be refused like any out-of-range cpu."""
    with pytest.raises(ValidationError, match=r"task\.cpu"):
        parse_event(json.loads('{"task": {"image": "busybox", "cpu": 1e999}}'))


# ----- good inputs

def test_minimal_event_defaults():
    parsed = parse_event({"task": {"image": "busybox"}})
    assert parsed.state is State.RUNNING
    task = parsed.task
    assert task.state is State.PENDING
    assert (task.image, task.name) == ("busybox", "busybox")
    assert (task.command, task.env, task.ports) == ([], {}, {})
    assert (task.cpu, task.memory, task.disk) == (0.0, 0, 0)


def test_full_event_from_the_contract():
    body = {"id": EVENT_ID, "state": "running", "task": {
        "id": TASK_ID, "name": "web", "image": "busybox",
        "command": ["sh", "-c", "echo hi; sleep 30"], "env": {"GREETING": "hi"},
        "cpu": 0.5, "memory": 67108864, "disk": 0, "ports": {"8080/tcp": None}}}
    parsed = parse_event(body)
    assert parsed.id == EVENT_ID
    task = parsed.task
    assert (task.id, task.name, task.image) == (TASK_ID, "web", "busybox")
    assert task.command == ["sh", "-c", "echo hi; sleep 30"]
    assert task.env == {"GREETING": "hi"}
    assert (task.cpu, task.memory, task.disk) == (0.5, 67108864, 0)
    assert task.ports == {"8080/tcp": None}


def test_ids_are_canonicalised():
    parsed = parse_event({"id": EVENT_ID.upper(), "task": {"id": TASK_ID.upper(), "image": "busybox"}})
    assert (parsed.id, parsed.task.id) == (EVENT_ID, TASK_ID)


def test_stop_event_needs_only_the_task_id():
    parsed = parse_event({"state": "completed", "task": {"id": TASK_ID}})
    assert parsed.state is State.COMPLETED
    assert parsed.task.id == TASK_ID


@pytest.mark.parametrize(
    ("size", "expected"),
    [("64m", 67108864), ("64M", 67108864), ("1g", 1 << 30), ("6144k", 6 << 20), ("6m", 6 << 20),
     ("2gb", 2 << 30), ("100mib", 100 << 20), (" 10 m ", 10 << 20), ("1.5g", 3 << 29),
     (67108864, 67108864), (0, 0), ("0", 0)],
)
def test_memory_sizes(size, expected):
    assert parse_event(event(memory=size)).task.memory == expected


@pytest.mark.parametrize(("size", "expected"), [("512k", 524288), (1, 1), ("1t", 1 << 40)])
def test_disk_sizes_have_no_minimum(size, expected):
    assert parse_event(event(disk=size)).task.disk == expected


@pytest.mark.parametrize(("size", "expected"), [("512k", 524288), ("64m", 67108864), ("1g", 1 << 30), (4096, 4096)])
def test_parse_size(size, expected):
    assert parse_size(size, "task.disk") == expected


def test_parse_size_names_the_field_it_is_given():
    with pytest.raises(ValidationError, match="limits.swap"):
        parse_size("x", "limits.swap")


@pytest.mark.parametrize(
    ("ports", "expected"),
    [({"8080": None}, {"8080/tcp": None}),
     ({"8080": 18080}, {"8080/tcp": 18080}),
     ({"53/udp": None}, {"53/udp": None}),
     ({"80/tcp": 8000, "443": None}, {"80/tcp": 8000, "443/tcp": None})],
)
def test_ports_are_normalised(ports, expected):
    assert parse_event(event(ports=ports)).task.ports == expected


@pytest.mark.parametrize(
    ("image", "name"),
    [("registry:5000/team/web:1.2", "web"), ("busybox", "busybox"), ("busybox:1.36", "busybox"),
     ("library/redis@sha256:" + "a" * 64, "redis"), ("localhost:5000/app", "app")],
)
def test_default_name_is_derived_from_the_image(image, name):
    assert parse_event(event(image=image)).task.name == name


def test_explicit_name_is_kept():
    assert parse_event(event(name="api-1.v2_x")).task.name == "api-1.v2_x"


def test_cpu_integer_becomes_float():
    cpu = parse_event(event(cpu=2)).task.cpu
    assert cpu == 2.0 and isinstance(cpu, float)


def test_task_round_trip():
    task = Task(id=TASK_ID, name="web", state=State.RUNNING, image="busybox", command=["sleep", "30"],
                env={"A": "1"}, cpu=0.5, memory=64 << 20, disk=1 << 20, ports={"8080/tcp": None},
                host_ports={"8080/tcp": 32768}, node="w1", container_id="abc123", exit_code=None,
                error=None, restart_count=2, created_at="2024-01-01T00:00:00.000Z",
                started_at="2024-01-01T00:00:01.000Z", finished_at=None)
    data = task.to_dict()
    assert data["state"] == "running"
    assert json.loads(json.dumps(data)) == data  # plain JSON types only
    assert Task.from_dict(data) == task
    assert Task.from_dict(json.loads(json.dumps(data))) == task


def test_task_dict_has_every_contract_field():
    contract = ("id name state image command env cpu memory disk ports host_ports node container_id "
                "exit_code error restart_count created_at started_at finished_at").split()
    data = Task().to_dict()
    assert set(contract) <= set(data)
    assert json.loads(json.dumps(data)) == data


def test_from_dict_ignores_unknown_keys():
    task = Task.from_dict({"id": TASK_ID, "image": "busybox", "state": "failed", "colour": "blue"})
    assert (task.id, task.image, task.state) == (TASK_ID, "busybox", State.FAILED)


def test_event_to_dict_sends_only_spec_fields():
    task = Task(id=TASK_ID, image="busybox", state=State.RUNNING, node="w1", container_id="abc",
                error="boom", exit_code=1)
    task.attempt, task.restart_count = 2, 1
    sent = TaskEvent(task=task, state=State.RUNNING, id=EVENT_ID).to_dict()
    assert set(sent) == {"id", "state", "task", "attempt", "restart_count"}
    assert (sent["attempt"], sent["restart_count"]) == (2, 1)  # the internal contract, outside the spec
    assert (sent["id"], sent["state"]) == (EVENT_ID, "running")
    assert tuple(sent["task"]) == SPEC_FIELDS
    assert sent["task"]["id"] == TASK_ID
    for observed in ("state", "node", "container_id", "error", "exit_code", "host_ports"):
        assert observed not in sent["task"]


def test_event_round_trip_through_parse_event():
    """What the manager sends a worker is accepted by the worker's parser unchanged."""
    original = parse_event(event(id=TASK_ID, name="web", memory="64m", ports={"8080": None},
                                 command=["sleep", "1"], env={"A": "b"}, cpu=0.25))
    original.task.attempt, original.task.restart_count = 3, 2
    again = parse_order(json.loads(json.dumps(original.to_dict())))
    assert again.id == original.id
    assert again.task.spec_dict() == original.task.spec_dict()
    assert (again.task.attempt, again.task.restart_count) == (original.task.attempt, original.task.restart_count)
