"""The JSON Schema of a task event (task/schema.py) and parse_event give the same verdicts.

Three tables: bodies both accept, bodies both refuse, and the documented gaps where one of
them cannot tell (see task/schema.py's docstring). A row moving between tables is a change of
contract: update the schema, the gap list and README together.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import given, strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from task import ValidationError, parse_event
from task.schema import PORT_KEY, SIZE_PATTERN, ignore_case, standalone
from task.validation import (
    _SIZE, _ports, MAX_ARG, MAX_ARGS, MAX_BYTES, MAX_ENV, MAX_NAME, MAX_PATH, MAX_PORTS, MIN_MEMORY,
)

ID = "12345678-1234-4234-8234-123456789abc"


def run(**task):
    return {"task": {"image": "busybox", **task}}


VALID = [
    {"task": {"image": "busybox"}},
    {"id": ID, "state": "running", "task": {
        "id": ID, "name": "web", "image": "registry.local:5000/web@sha256:abc", "command": ["sh", "-c", "echo hi"],
        "env": {"GREETING": "hi"}, "cpu": 0.5, "memory": 67108864, "disk": 0, "ports": {"8080/tcp": None},
        "restart_policy": "always", "max_restarts": 5, "health_check": "/health", "stop_after_disconnect": 30}},
    {"state": "completed", "task": {"id": ID}},
    {"state": "completed", "task": {"id": ID, "image": ""}},
    run(name=None), run(name="a" * MAX_NAME), run(name="a.b_c-D9"), run(name="9"),
    run(command=[]), run(command=["a" * MAX_ARG]), run(command=[""] * MAX_ARGS), run(command=["a\nb", "\u00e9"]),
    run(env={}), run(env={"A": ""}), run(env={"a b": "x=y"}), run(env={"k" * MAX_NAME * 2: "v"}),
    run(env={f"K{i}": "" for i in range(MAX_ENV)}),
    run(cpu=0), run(cpu=1024), run(cpu=0.25),
    run(memory=0), run(memory=MIN_MEMORY), run(memory=MAX_BYTES), run(memory="6m"), run(memory="6M"),
    run(memory="6MiB"), run(memory=" 64 mb "), run(memory="1.5g"), run(memory="0"), run(memory="6291456"),
    run(disk=0), run(disk=1), run(disk="1g"), run(disk="1K"), run(disk=MAX_BYTES), run(disk="1p"),
    run(ports={}), run(ports={"80": None}), run(ports={"00080/udp": 8080}), run(ports={"65535/sctp": 1}),
    run(ports={"1": 65535, "2/tcp": None}), run(ports={str(p): None for p in range(1, MAX_PORTS + 1)}),
    run(restart_policy="no"), run(restart_policy="on-failure"), run(restart_policy="always"),
    run(max_restarts=0), run(max_restarts=1000), run(stop_after_disconnect=None),
    run(stop_after_disconnect=0), run(stop_after_disconnect=2.5), run(stop_after_disconnect=7 * 24 * 3600),
    run(health_check=None), run(health_check="/", ports={"80/tcp": 1, "53/udp": None}),
    run(health_check="/ready?x=1", ports={"8080": None}), run(health_check="/" + "a" * (MAX_PATH - 1), ports={"1": None}),
    run(health_check={"path": "/x"}, ports={"80": None}),
    run(health_check={"path": "/x", "port": 8080, "interval": 0.5, "timeout": 1, "retries": 2, "start_period": 30},
        ports={"80": None, "8080/tcp": 1}),
    run(health_check={"path": "/x", "port": "8080/tcp", "interval": None, "start_period": 0}, ports={"8080": None}),
    run(pids=0), run(pids=8), run(pids=32768),
]

INVALID = [
    [], "x", None, 1, {},
    {"task": {}}, {"task": []}, {"task": None},
    run(image=""), run(image=" "), run(image="bu sy"), run(image="a\tb"), run(image="a\u2003b"),
    run(image="a\u0085b"), run(image="a\x7fb\x01"), run(image="busybox\n"), run(image="x" * 513), run(image=5),
    run(image=None),
    {"tasks": {}, "task": {"image": "b"}}, run(privileged=True), run(volumes=[]), run(Cap_Add=["ALL"]), run(x=1),
    {"state": "stopped", "task": {"image": "b"}}, {"state": None, "task": {"image": "b"}},
    {"state": "pending", "task": {"image": "b"}},
    {"state": "completed", "task": {}}, {"state": "completed", "task": {"image": "b"}},
    {"state": "completed", "task": {"id": ID, "image": " "}},
    {"id": "not-a-uuid", "task": {"image": "b"}}, {"id": 5, "task": {"image": "b"}}, run(id="x"), run(id=None),
    run(name=""), run(name="-x"), run(name=".x"), run(name="a b"), run(name="a/b"), run(name="a" * (MAX_NAME + 1)),
    run(name=5),
    run(command="sh"), run(command=[1]), run(command=["a\x00"]), run(command=[""] * (MAX_ARGS + 1)),
    run(command=["a" * (MAX_ARG + 1)]), run(command=None),
    run(env=[]), run(env={"A": 1}), run(env={"A": None}), run(env={"A=B": "x"}), run(env={"": "x"}),
    run(env={"A\x00": "x"}), run(env={"k" * (MAX_NAME * 2 + 1): "v"}), run(env={"A": "a\x00"}),
    run(env={f"K{i}": "" for i in range(MAX_ENV + 1)}),
    run(cpu=-1), run(cpu=1024.5), run(cpu=True), run(cpu="1"), run(cpu=None),
    run(memory=-1), run(memory=1), run(memory=MIN_MEMORY - 1), run(memory=MAX_BYTES + 1), run(memory=True),
    run(memory="lots"), run(memory="64x"), run(memory="6m" + " " * 31), run(memory=1.5), run(memory=None),
    run(memory="-6m"), run(memory="6 m b"),
    run(disk=-1), run(disk="abc"), run(disk=[]),
    run(ports=[]), run(ports={"0": None}), run(ports={"00000": None}), run(ports={"65536": None}),
    run(ports={"123456": None}), run(ports={"80/icmp": None}), run(ports={"80/TCP": None}), run(ports={"tcp": None}),
    run(ports={"80": 0}), run(ports={"80": 65536}), run(ports={"80": True}), run(ports={"80": "81"}),
    run(ports={str(p): None for p in range(1, MAX_PORTS + 2)}), run(ports={" 80": None}),
    run(restart_policy="sometimes"), run(restart_policy=None), run(restart_policy="No"),
    run(max_restarts=-1), run(max_restarts=1001), run(max_restarts=True), run(max_restarts="3"),
    run(restart_count=0), run(attempt=1), run(desired_state="running"), run(version=1),
    run(stop_after_disconnect=-1), run(stop_after_disconnect=True), run(stop_after_disconnect="30"),
    run(stop_after_disconnect=7 * 24 * 3600 + 1),
    run(health_check="health", ports={"80": None}), run(health_check="/a b", ports={"80": None}),
    run(health_check="/x"), run(health_check="/x", ports={}), run(health_check="/x", ports={"53/udp": None}),
    run(health_check="/" + "a" * MAX_PATH, ports={"1": None}), run(health_check=5, ports={"1": None}),
    run(health_check={}, ports={"80": None}), run(health_check={"path": "x"}, ports={"80": None}),
    run(health_check={"path": "/x"}), run(health_check={"path": "/x", "every": 1}, ports={"80": None}),
    run(health_check={"path": "/x", "interval": 0}, ports={"80": None}),
    run(health_check={"path": "/x", "interval": "5"}, ports={"80": None}),
    run(health_check={"path": "/x", "timeout": -1}, ports={"80": None}),
    run(health_check={"path": "/x", "retries": 0}, ports={"80": None}),
    run(health_check={"path": "/x", "retries": True}, ports={"80": None}),
    run(health_check={"path": "/x", "start_period": -1}, ports={"80": None}),
    run(health_check={"path": "/x", "port": "80/udp"}, ports={"80": None}),
    run(health_check={"path": "/x", "port": 0}, ports={"80": None}),
    run(health_check=[], ports={"80": None}),
    run(pids=7), run(pids=-1), run(pids=True), run(pids="8"), run(pids=32769), run(pids=None),
]

# The schema accepts these and the server refuses them (400): JSON Schema cannot tell.
SCHEMA_CANNOT_TELL = [
    run(memory="1k"), run(memory="0.001m"), run(memory="2p"), run(disk="2p"), run(disk="1025t"),
    run(memory=67108864.0), run(ports={"80": 8080.0}), run(max_restarts=3.0), run(pids=64.0),
    run(health_check={"path": "/x", "port": 81}, ports={"80": None}),  # a port the task does not publish
    run(health_check={"path": "/x", "retries": 2.0}, ports={"80": None}),
]

# The server reads these (normalising them) and the schema, which documents the canonical forms, does not.
SERVER_NORMALISES = [
    {"id": "{" + ID + "}", "task": {"image": "b"}}, run(id=ID.replace("-", "")), run(ports={"\u0668\u0660": None}),
]


@pytest.fixture(scope="module")
def validator():
    schema = standalone("TaskEvent")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def parses(body) -> bool:
    try:
        parse_event(body)
    except ValidationError:
        return False
    return True


def _label(body) -> str:
    return repr(body)[:80]


@pytest.mark.parametrize("body", VALID, ids=_label)
def test_both_accept(validator, body):
    assert parses(body)
    assert validator.is_valid(body), [e.message[:200] for e in validator.iter_errors(body)]


@pytest.mark.parametrize("body", INVALID, ids=_label)
def test_both_refuse(validator, body):
    assert not parses(body)
    assert not validator.is_valid(body)


@pytest.mark.parametrize("body", SCHEMA_CANNOT_TELL, ids=_label)
def test_documented_gap_schema_is_looser(validator, body):
    assert validator.is_valid(body) and not parses(body)


@pytest.mark.parametrize("body", SERVER_NORMALISES, ids=_label)
def test_documented_gap_server_normalises(validator, body):
    assert parses(body) and not validator.is_valid(body)


def test_port_key_pattern_matches_validation_for_every_number():
    for width in range(1, 6):
        for number in range(10 ** width):
            for key in (str(number).zfill(width), f"{str(number).zfill(width)}/udp"):
                try:
                    _ports({key: None})
                    accepted = True
                except ValidationError:
                    accepted = False
                assert bool(re.search(PORT_KEY, key)) is accepted, key


@given(st.text(alphabet="0123456789.kmgtpibKMGTPIBx \t-", max_size=12))
def test_size_pattern_matches_validation_in_any_case(text):
    assert bool(re.search(SIZE_PATTERN, text)) is bool(_SIZE.match(text))


@pytest.mark.parametrize("pattern, text, expected", [
    (r"^[kmg]?b$", "Kb", True), (r"^[kmg]?b$", "kB", True), (r"^\s*x$", " X", True), (r"^\d$", "D", False),
])
def test_ignore_case(pattern, text, expected):
    assert bool(re.search(ignore_case(pattern), text)) is expected


def test_a_task_validates_against_the_task_schema():
    from task import Task

    task = Task(image="busybox", name="web", command=["true"], ports={"80/tcp": None}, host_ports={"80/tcp": 32768},
                node="w1", container_id="c1", exit_code=0, created_at="2024-01-01T00:00:00.000Z")
    validator = Draft202012Validator(standalone("Task"), format_checker=FormatChecker())
    assert validator.is_valid(task.to_dict()), list(validator.iter_errors(task.to_dict()))
    assert not validator.is_valid({**task.to_dict(), "extra": 1})
