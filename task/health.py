"""A task's health check: what to probe, where, how often, and when to give up. Pure.

`health_check` is either the short form, a URL path (`"/healthz"`), or an object:
`{"path": "/healthz", "port": 8080, "interval": 5, "timeout": 2, "retries": 3, "start_period": 30}`
where only `path` is required. A task stores what it was given (the object normalised, its
port as a `ports` key); the worker fills in its own defaults (ORCA_HEALTH_INTERVAL,
ORCA_HEALTH_FAILURES, PROBE_TIMEOUT) for what the task leaves out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from task.errors import ValidationError

MAX_PATH = 2048
MIN_INTERVAL = 0.1
MAX_INTERVAL = 3600.0
MIN_TIMEOUT = 0.1
MAX_TIMEOUT = 600.0
MAX_RETRIES = 1000
MAX_START_PERIOD = 7 * 24 * 3600.0
PROBE_TIMEOUT = 2.0  # seconds a probe may take unless the task says `timeout`
HEALTH_FIELDS = ("path", "port", "interval", "timeout", "retries", "start_period")
_PORT = re.compile(r"^(\d{1,5})(?:/(tcp))?$")


@dataclass(frozen=True)
class HealthCheck:
    """A health check with every value decided (see health_check_of)."""

    path: str
    port: str | None  # a key of task.ports ("8080/tcp"); None: the lowest-numbered published tcp port
    interval: float
    timeout: float
    retries: int
    start_period: float


def parse_health_check(value: Any, ports: dict[str, Any]) -> str | dict[str, Any] | None:
    """Validate task.health_check against the task's (normalised) ports; return what to store.

    Raises:
        ValidationError: naming the field (task.health_check or task.health_check.<field>).
    """
    if value is None:
        return None
    if isinstance(value, dict):
        return _parse_object(value, ports)
    path = _path(value, "task.health_check")
    _needs_tcp(ports)
    return path


def _parse_object(obj: dict[str, Any], ports: dict[str, Any]) -> dict[str, Any]:
    unknown = [key for key in obj if key not in HEALTH_FIELDS]
    if unknown:
        raise ValidationError(f"task.health_check has an unknown field {str(unknown[0])[:64]!r} "
                              f"(known: {', '.join(HEALTH_FIELDS)})")
    if "path" not in obj:
        raise ValidationError("task.health_check.path is required")
    parsed: dict[str, Any] = {"path": _path(obj["path"], "task.health_check.path")}
    _needs_tcp(ports)
    if obj.get("port") is not None:
        parsed["port"] = _port(obj["port"], ports)
    for name, low, high in (("interval", MIN_INTERVAL, MAX_INTERVAL), ("timeout", MIN_TIMEOUT, MAX_TIMEOUT),
                            ("start_period", 0.0, MAX_START_PERIOD)):
        if obj.get(name) is not None:
            parsed[name] = _seconds(obj[name], f"task.health_check.{name}", low, high)
    if obj.get("retries") is not None:
        retries = obj["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or not 1 <= retries <= MAX_RETRIES:
            raise ValidationError(f"task.health_check.retries must be an integer between 1 and {MAX_RETRIES}")
        parsed["retries"] = retries
    return parsed


def _path(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_PATH \
            or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValidationError(f"{name} must be a URL path starting with '/'")
    return value


def _needs_tcp(ports: dict[str, Any]) -> None:
    if not any(key.endswith("/tcp") for key in ports):
        raise ValidationError("task.health_check needs a published tcp port in task.ports")


def _port(value: Any, ports: dict[str, Any]) -> str:
    """The `ports` key of a container port given as 8080, "8080" or "8080/tcp"."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    match = _PORT.fullmatch(text) if isinstance(text, str) else None
    key = f"{int(match.group(1))}/tcp" if match else None
    if key is None or key not in ports:
        raise ValidationError("task.health_check.port must be a tcp container port published in task.ports")
    return key


def _seconds(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValidationError(f"{name} must be a number of seconds between {low:g} and {high:g}")
    return float(value)


def health_check_of(task: Any, interval: float, retries: int) -> HealthCheck | None:
    """The task's health check with the worker's defaults filled in; None when it has none.

    Args:
        interval / retries: the worker's ORCA_HEALTH_INTERVAL and ORCA_HEALTH_FAILURES.
    """
    value = task.health_check
    if not value:
        return None
    given = value if isinstance(value, dict) else {"path": value}
    return HealthCheck(path=given["path"], port=given.get("port"), interval=given.get("interval", interval),
                       timeout=given.get("timeout", PROBE_TIMEOUT), retries=given.get("retries", retries),
                       start_period=given.get("start_period", 0.0))


def probe_port(check: HealthCheck, host_ports: dict[str, int]) -> int | None:
    """The host port to probe: the one published for `check.port`, else that of the
    lowest-numbered published tcp container port (by number: Docker lists its ports sorted
    as strings, so `10080/tcp` comes before `8080/tcp`). None when none is published."""
    if check.port is not None:
        return host_ports.get(check.port)
    tcp = [(int(key.partition("/")[0]), port) for key, port in host_ports.items()
           if key.endswith("/tcp") and key.partition("/")[0].isdigit()]
    return min(tcp)[1] if tcp else None
