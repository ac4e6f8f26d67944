"""The seed cluster's service requests (POST /clusters/0/service), parsed into service
requests. Its containers name no image unless `image` is given: they then run the placeholder
image (ORCA_PLACEHOLDER_IMAGE) with `sleep infinity`, so the requests work as sent."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from service.validation import ServiceRequest, parse_name, parse_replicas, parse_task_spec
from task import ValidationError

BODY_FIELDS = frozenset({"container", "containers", "replicas"})
CONTAINER_FIELDS = frozenset({"uniq_id", "label", "description", "image", "command", "replicas"})
PLACEHOLDER_COMMAND = ["sleep", "infinity"]
MAX_CONTAINERS = 100


def parse_seed_service(body: Any, placeholder: str) -> list[ServiceRequest]:
    """One service request per container of the body.

    `{"container": {...}, "replicas": N}` or `{"containers": [{..., "replicas": N}, ...]}`;
    a container's name comes from its label (or description) and uniq_id.

    Raises:
        ValidationError: naming the field.
    """
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    unknown = sorted(str(k) for k in body if k not in BODY_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0][:64]}")
    if ("container" in body) == ("containers" in body):
        raise ValidationError("give either container or containers")
    if "container" in body:
        containers = [(body["container"], "container")]
        default = body.get("replicas", 1)
    else:
        if "replicas" in body:
            raise ValidationError("replicas belongs in each of containers")
        items = body["containers"]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_CONTAINERS:
            raise ValidationError(f"containers must be a list of 1-{MAX_CONTAINERS} objects")
        containers = [(item, f"containers[{i}]") for i, item in enumerate(items)]
        default = 1
    requests = [_container(item, where, default, placeholder) for item, where in containers]
    names = [r.name for r in requests]
    if len(set(names)) != len(names):
        raise ValidationError("two containers have the same name (label or description, and uniq_id)")
    return requests


def _container(value: Any, where: str, default_replicas: Any, placeholder: str) -> ServiceRequest:
    if not isinstance(value, dict):
        raise ValidationError(f"{where} must be a JSON object")
    unknown = sorted(str(k) for k in value if k not in CONTAINER_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field {where}.{unknown[0][:64]}")
    name = _name(value, where)
    replicas = parse_replicas(value.get("replicas", default_replicas), f"{where}.replicas"
                              if "replicas" in value else "replicas")
    task: dict[str, Any] = {"image": value.get("image", placeholder)}
    if "command" in value:
        task["command"] = value["command"]
    elif "image" not in value:
        task["command"] = list(PLACEHOLDER_COMMAND)
    try:
        spec = parse_task_spec(task, name)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None
    return ServiceRequest(name, replicas, spec, None)


def _name(value: dict, where: str) -> str:
    """label (or description) and uniq_id, lowercased, other characters as '-'."""
    text = value.get("label", value.get("description", "container"))
    if not isinstance(text, str):
        raise ValidationError(f"{where}.label must be a string")
    uniq = value.get("uniq_id")
    if uniq is not None and (isinstance(uniq, bool) or not isinstance(uniq, (int, str))):
        raise ValidationError(f"{where}.uniq_id must be an integer or a string")
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "container"
    suffix = re.sub(r"[^a-z0-9]+", "-", str(uniq).lower()).strip("-")[:20] if uniq is not None else ""
    try:
        return parse_name(f"{base}-{suffix}" if suffix else base)
    except ValidationError:
        raise ValidationError(f"{where}: label and uniq_id do not make a service name") from None


JOIN_FIELDS = frozenset({"id", "host", "port", "capacity", "spawn", "labels"})
LEAVE_FIELDS = frozenset({"host", "port", "id"})


@dataclass(frozen=True)
class SeedJoin:
    """POST /clusters/0/nodes: a node to register (and a worker to start, with spawn)."""

    name: str  # the seed's id, else host:port
    host: str
    port: int
    capacity: Any  # as given (the node registry parses it), None: what the worker reports
    labels: Any
    spawn: bool


def parse_seed_join(body: Any) -> SeedJoin:
    """Parse `{"id", "host", "port", "capacity", "spawn"}` (host and port required)."""
    obj = _body(body, JOIN_FIELDS)
    host, port = _host(obj), _port(obj)
    node_id = _node_id(obj)
    spawn = obj.get("spawn", False)
    if not isinstance(spawn, bool):
        raise ValidationError("spawn must be true or false")
    capacity = obj.get("capacity")
    if "capacity" in obj and (isinstance(capacity, bool) or not isinstance(capacity, (int, float, dict))):
        raise ValidationError("capacity must be an object ({\"cpu\", \"memory\", \"disk\"}) or a number of cores")
    if isinstance(capacity, (int, float)):
        capacity = {"cpu": capacity}  # a bare number is cores
    labels = obj.get("labels")
    if "labels" in obj and not isinstance(labels, dict):
        raise ValidationError("labels must be an object of label names to values")
    return SeedJoin(node_id if node_id is not None else f"{host}:{port}", host, port, capacity, labels, spawn)


def parse_seed_leave(body: Any) -> tuple[str, int]:
    """Parse `{"host", "port"}` of DELETE /clusters/0/nodes (an `id`, if sent, is checked and unused)."""
    obj = _body(body, LEAVE_FIELDS)
    _node_id(obj)
    return _host(obj), _port(obj)


def _node_id(obj: dict) -> str | None:
    """The seed's node `id` (a string or an integer), None when absent."""
    node_id = obj.get("id")
    if "id" in obj and (isinstance(node_id, bool) or not isinstance(node_id, (int, str))
                        or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", str(node_id))):
        raise ValidationError("id must be 1-128 letters, digits, '_', '.', ':' or '-'")
    return None if node_id is None else str(node_id)


def _body(body: Any, fields: frozenset) -> dict:
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    unknown = sorted(str(k) for k in body if k not in fields)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0][:64]}")
    return body


def _host(obj: dict) -> str:
    host = obj.get("host")
    if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9.:-]{1,253}", host):
        raise ValidationError("host is required: a host name or an IP address")
    return host


def _port(obj: dict) -> int:
    port = obj.get("port")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValidationError("port is required: an integer 1-65535")
    return port
