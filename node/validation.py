"""Strict parsing of untrusted node input: registrations, eligibility and drain requests,
and the worker's ORCA_NODE_CAPACITY / ORCA_NODE_LABELS. Every error names the field. Pure."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from node.model import RESOURCES
from task.errors import ValidationError
from task.validation import MAX_CPU, MAX_SECONDS, parse_label, parse_size, parse_uuid

REGISTRATION_FIELDS = frozenset({"id", "name", "address", "capacity", "labels"})
DRAIN_FIELDS = frozenset({"deadline", "force", "cancel", "parallel"})
MAX_LABELS = 64
MAX_NODE_NAME = 255
DEFAULT_DRAIN_DEADLINE = 3600.0  # seconds
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\[\]-]*$")
_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Registration:
    """A worker's POST /nodes: who it is, where it listens, what it offers."""

    name: str
    address: str
    capacity: dict[str, float] | None
    labels: dict[str, str]
    id: str | None = None


@dataclass(frozen=True)
class DrainRequest:
    """POST /nodes/<name>/drain: start (deadline in seconds, force, tasks moved at once) or cancel."""

    deadline: float = DEFAULT_DRAIN_DEADLINE
    force: bool = False
    cancel: bool = False
    parallel: int = 1


def _object(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(f"{name} must be a JSON object")
    return value


def _no_unknown(obj: dict, allowed: frozenset, prefix: str = "") -> None:
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        raise ValidationError(f"unknown field {prefix}{unknown[0][:64]}")


def parse_registration(body: Any) -> Registration:
    """Parse a POST /nodes body. `name` defaults to `address`."""
    obj = _object(body, "body")
    _no_unknown(obj, REGISTRATION_FIELDS)
    if "address" not in obj:
        raise ValidationError("address is required")
    address = parse_address(obj["address"], "address")
    name = parse_node_name(obj["name"], "name") if obj.get("name") is not None else address
    capacity = parse_capacity(obj["capacity"], "capacity") if obj.get("capacity") is not None else None
    labels = parse_labels(obj.get("labels") or {}, "labels")
    node_id = parse_uuid(obj["id"], "id") if obj.get("id") is not None else None
    return Registration(name=name, address=address, capacity=capacity, labels=labels, id=node_id)


def parse_address(value: Any, name: str) -> str:
    """host:port, the port 1-65535."""
    if not isinstance(value, str) or len(value) > MAX_NODE_NAME or not (match := _ADDRESS.fullmatch(value)) \
            or not 1 <= int(match.group("port")) <= 65535:
        raise ValidationError(f"{name} must be host:port")
    return value


def parse_node_name(value: Any, name: str) -> str:
    """A node name: 1-255 letters, digits and _ . : - [ ] (a host:port is a name)."""
    if not isinstance(value, str) or len(value) > MAX_NODE_NAME or not _NODE_NAME.fullmatch(value):
        raise ValidationError(f"{name} must be 1-{MAX_NODE_NAME} letters, digits, '_', '.', ':', '-'")
    return value


def parse_capacity(value: Any, name: str) -> dict[str, float]:
    """{"cpu": cores, "memory": bytes or "8g", "disk": bytes or "100g"}; each optional (0)."""
    obj = _object(value, name)
    _no_unknown(obj, frozenset(RESOURCES), f"{name}.")
    cpu = obj.get("cpu", 0)
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or not 0 <= cpu <= MAX_CPU:
        raise ValidationError(f"{name}.cpu must be a number of cores between 0 and {MAX_CPU}")
    return {"cpu": float(cpu), "memory": parse_size(obj.get("memory", 0), f"{name}.memory"),
            "disk": parse_size(obj.get("disk", 0), f"{name}.disk")}


def parse_labels(value: Any, name: str) -> dict[str, str]:
    """{"zone": "a", ...}: at most 64 labels of names and values up to 128 characters."""
    obj = _object(value, name)
    if len(obj) > MAX_LABELS:
        raise ValidationError(f"{name} has more than {MAX_LABELS} entries")
    return {parse_label(k, f"{name} key", key=True): parse_label(v, f"{name}.{str(k)[:64]}") for k, v in obj.items()}


def parse_eligibility(body: Any) -> bool:
    """POST /nodes/<name>/eligibility: {"eligible": true|false}."""
    obj = _object(body, "body")
    _no_unknown(obj, frozenset({"eligible"}))
    if not isinstance(obj.get("eligible"), bool):
        raise ValidationError("eligible is required and must be true or false")
    return obj["eligible"]


def parse_drain(body: Any) -> DrainRequest:
    """POST /nodes/<name>/drain: {"deadline": seconds, "force": bool, "parallel": n} or {"cancel": true}.
    The route passes {} for an empty body; a JSON `null` is not an object (400)."""
    obj = _object(body, "body")
    _no_unknown(obj, DRAIN_FIELDS)
    for flag in ("force", "cancel"):
        if flag in obj and not isinstance(obj[flag], bool):
            raise ValidationError(f"{flag} must be true or false")
    deadline = obj.get("deadline", DEFAULT_DRAIN_DEADLINE)
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not 0 <= deadline <= MAX_SECONDS:
        raise ValidationError(f"deadline must be a number of seconds between 0 and {MAX_SECONDS}")
    parallel = obj.get("parallel", 1)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= 1000:
        raise ValidationError("parallel must be an integer between 1 and 1000")
    return DrainRequest(deadline=float(deadline), force=obj.get("force", False), cancel=obj.get("cancel", False),
                        parallel=parallel)


def parse_capacity_text(text: str, name: str = "ORCA_NODE_CAPACITY") -> dict[str, float] | None:
    """"cpu=4,memory=8g,disk=100g" (any subset); None for empty text."""
    pairs = _pairs(text, name)
    if not pairs:
        return None
    values: dict[str, Any] = {}
    for key, value in pairs.items():
        if key == "cpu":
            try:
                values[key] = float(value)
            except ValueError:
                raise ValidationError(f"{name}: cpu must be a number of cores, got {value!r}") from None
        else:
            values[key] = value
    return parse_capacity(values, name)


def parse_labels_text(text: str, name: str = "ORCA_NODE_LABELS") -> dict[str, str]:
    """"zone=a,disk=ssd"; {} for empty text."""
    return parse_labels(_pairs(text, name), name)


def _pairs(text: str, name: str) -> dict[str, str]:
    pairs = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"{name} entry {item[:64]!r} must be key=value")
        pairs[key.strip()] = value.strip()
    return pairs
