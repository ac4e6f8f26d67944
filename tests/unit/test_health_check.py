"""task.health: the health check a task asks for, validated by field, and the port probed."""
from __future__ import annotations

import pytest

from task import Task, ValidationError, parse_event
from task.health import PROBE_TIMEOUT, HealthCheck, health_check_of, probe_port


def check(**fields) -> HealthCheck:
    values = dict(path="/h", port=None, interval=5.0, timeout=2.0, retries=3, start_period=0.0)
    values.update(fields)
    return HealthCheck(**values)


@pytest.mark.parametrize("host_ports, expected", [
    ({"10080/tcp": 32001, "8080/tcp": 32002}, 32002),  # numeric order, not Docker's string order
    ({"9/tcp": 1, "10/tcp": 2}, 1),
    ({"53/udp": 5, "8080/tcp": 6}, 6),
    ({"53/udp": 5}, None),
    ({}, None),
])
def test_the_lowest_numbered_published_tcp_port_is_probed(host_ports, expected):
    assert probe_port(check(), host_ports) == expected


def test_the_port_the_task_names_is_probed():
    assert probe_port(check(port="10080/tcp"), {"8080/tcp": 1, "10080/tcp": 2}) == 2
    assert probe_port(check(port="10080/tcp"), {"8080/tcp": 1}) is None  # not published (yet)


def test_the_short_form_takes_the_workers_defaults():
    task = parse_event({"task": {"image": "b", "health_check": "/ok", "ports": {"8080": None}}}).task
    assert task.health_check == "/ok"
    assert health_check_of(task, interval=7.0, retries=4) == check(path="/ok", interval=7.0, retries=4,
                                                                   timeout=PROBE_TIMEOUT)


def test_the_object_form_is_stored_normalised_and_overrides_the_defaults():
    task = parse_event({"task": {"image": "b", "ports": {"8080": None, "10080": None}, "health_check": {
        "path": "/ok", "port": 10080, "interval": 1, "timeout": 0.5, "retries": 2, "start_period": 30}}}).task
    assert task.health_check == {"path": "/ok", "port": "10080/tcp", "interval": 1.0, "timeout": 0.5, "retries": 2,
                                 "start_period": 30.0}
    assert health_check_of(task, 5.0, 3) == check(path="/ok", port="10080/tcp", interval=1.0, timeout=0.5,
                                                  retries=2, start_period=30.0)
    assert health_check_of(Task(), 5.0, 3) is None


@pytest.mark.parametrize("health, field", [
    ({"path": "/x", "interval": 0}, "task.health_check.interval"),
    ({"path": "/x", "timeout": "2"}, "task.health_check.timeout"),
    ({"path": "/x", "retries": 0}, "task.health_check.retries"),
    ({"path": "/x", "start_period": -5}, "task.health_check.start_period"),
    ({"path": "/x", "port": 9999}, "task.health_check.port"),
    ({"path": "x"}, "task.health_check.path"),
    ({"interval": 1}, "task.health_check.path"),
    ({"path": "/x", "every": 1}, "task.health_check"),
    ("x", "task.health_check"),
])
def test_bad_values_are_refused_naming_the_field(health, field):
    with pytest.raises(ValidationError, match=f"^{field.replace('.', '[.]')}"):
        parse_event({"task": {"image": "b", "ports": {"8080": None}, "health_check": health}})
