"""Strict parsing of service requests: every error names the offending field."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from service.model import ON_FAILURE, ORDERS, UpdatePolicy
from task import ValidationError, parse_task

SERVICE_FIELDS = frozenset({"name", "replicas", "task", "update"})
UPDATE_FIELDS = frozenset(UpdatePolicy.__dataclass_fields__)
MAX_REPLICAS = 1000  # more than this on one Orca cluster is a typo
MAX_PARALLEL = MAX_REPLICAS
MAX_SECONDS = 7 * 24 * 3600
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class ServiceRequest:
    """A parsed POST /services or PUT /services/<name> body. None: not given."""

    name: str | None
    replicas: int | None
    task: dict[str, Any]
    update: dict[str, Any] | None  # the keys given (merged over the current policy by the caller)


def parse_service(body: Any, name_required: bool = True, path_name: str | None = None) -> ServiceRequest:
    """Parse a service body (`path_name`: the service a PUT is for; the replicas' default name).

    Raises:
        ValidationError: naming the first field that is missing, unknown or out of range.
    """
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    unknown = sorted(str(k) for k in body if k not in SERVICE_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0][:64]}")
    name = parse_name(body["name"]) if "name" in body else None
    if name_required and name is None:
        raise ValidationError("name is required")
    replicas = parse_replicas(body["replicas"]) if "replicas" in body else None
    if "task" not in body:
        raise ValidationError("task is required")
    task = parse_task_spec(body["task"], name or path_name)
    update = parse_update(body["update"]) if "update" in body else None
    return ServiceRequest(name, replicas, task, update)


def parse_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ValidationError("name must be 1-63 lowercase letters, digits or '-', starting and ending "
                              "with a letter or digit")
    return value


def parse_replicas(value: Any, field: str = "replicas") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_REPLICAS:
        raise ValidationError(f"{field} must be an integer between 0 and {MAX_REPLICAS}")
    return value


def parse_task_spec(value: Any, service_name: str | None) -> dict[str, Any]:
    """A task spec as in POST /tasks, without `id` (each replica gets its own); the replicas'
    name defaults to the service's. Returns the normalized spec (Task.spec_dict without id)."""
    if not isinstance(value, dict):
        raise ValidationError("task must be a JSON object")
    if "id" in value:
        raise ValidationError("task.id is not allowed in a service: each replica gets its own id")
    task = parse_task(value)
    if "name" not in value and service_name:
        task.name = service_name
    spec = task.spec_dict()
    del spec["id"]
    return spec


def parse_update(value: Any) -> dict[str, Any]:
    """The update policy keys given; unknown keys and out-of-range values are refused."""
    if not isinstance(value, dict):
        raise ValidationError("update must be a JSON object")
    unknown = sorted(str(k) for k in value if k not in UPDATE_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field update.{unknown[0][:64]}")
    parsed: dict[str, Any] = {}
    if "max_parallel" in value:
        v = value["max_parallel"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_PARALLEL:
            raise ValidationError(f"update.max_parallel must be an integer between 1 and {MAX_PARALLEL}")
        parsed["max_parallel"] = v
    for key in ("min_healthy_time", "healthy_deadline"):
        if key in value:
            parsed[key] = _seconds(value[key], f"update.{key}")
    if "on_failure" in value:
        if value["on_failure"] not in ON_FAILURE:
            raise ValidationError(f"update.on_failure must be one of {', '.join(ON_FAILURE)}")
        parsed["on_failure"] = value["on_failure"]
    if "order" in value:
        if value["order"] not in ORDERS:
            raise ValidationError(f"update.order must be one of {', '.join(ORDERS)}")
        parsed["order"] = value["order"]
    return parsed


def merge_update(current: UpdatePolicy, given: dict[str, Any] | None) -> UpdatePolicy:
    """The policy with the given keys replaced."""
    return replace(current, **given) if given else current


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_SECONDS:
        raise ValidationError(f"{name} must be a number of seconds between 0 and {MAX_SECONDS}")
    return float(value)
