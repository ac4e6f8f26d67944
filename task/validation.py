"""Strict parsing of untrusted task events: every error names the offending field."""
from __future__ import annotations

import re
import uuid
from typing import Any, Iterable

from task.errors import Forbidden, ValidationError
from task.health import MAX_PATH, parse_health_check
from task.model import CONSTRAINT_OPS, RESTART_POLICIES, SPEC_FIELDS, Task, TaskEvent
from task.reference import InvalidReference, normalize, parse_pattern
from task.state import State

EVENT_FIELDS = frozenset({"id", "state", "task"})
TASK_FIELDS = frozenset(SPEC_FIELDS)
DESIRED_STATES = (State.RUNNING, State.COMPLETED)

MAX_NAME = 128
MAX_IMAGE = 512
MAX_ARGS = 1024
MAX_ARG = 65536
MAX_ENV = 1024
MAX_ENV_VALUE = 65536
MAX_PORTS = 128
MAX_CPU = 1024
MAX_RESTARTS = 1000
MAX_SECONDS = 7 * 24 * 3600  # a week
MAX_BYTES = 1 << 50  # 1 PiB: anything above is a typo, not a machine
MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses smaller memory limits
MAX_CONSTRAINTS = 64
MAX_LABEL = 128  # a node label's name or value
CONSTRAINT_FIELDS = frozenset({"label", "op", "value"})
MIN_PIDS = 8  # the init process, a shell and a few children
MAX_PIDS = 32768

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_PORT_KEY = re.compile(r"^(\d{1,5})(?:/(tcp|udp|sctp))?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_KEY = re.compile(r"^[^=\x00]+$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")

# Docker settings that would hand a task the host. They are refused by name, with the reason,
# instead of the generic "unknown field": a caller asking for one should learn it never will
# be honoured (and not that a spelling might be). Keys are compared after _dangerous_key.
_HOST_MOUNTS = "host mounts expose the host's files"
_HOST_NETWORK = "the host network lets a task reach and bind the host's interfaces"
_HOST_NAMESPACE = "host namespaces let a task see into the host"
_CAPABILITIES = "added capabilities widen what root in the container can do to the host"
_DEVICES = "devices give direct access to the host's hardware"
REFUSED_FIELDS: dict[str, str] = {
    "privileged": "privileged containers control the host",
    **dict.fromkeys(("volumes", "volume", "mounts", "mount", "binds", "bind", "volumesfrom"), _HOST_MOUNTS),
    **dict.fromkeys(("networkmode", "network", "networks", "net", "hostnetwork"), _HOST_NETWORK),
    **dict.fromkeys(("pidmode", "pid", "hostpid"),
                    "the host PID namespace lets a task see and signal the host's processes"),
    **dict.fromkeys(("ipcmode", "ipc", "hostipc", "utsmode", "uts", "usernsmode", "userns", "cgroupnsmode",
                     "cgroupns", "cgroupparent"), _HOST_NAMESPACE),
    **dict.fromkeys(("capadd", "capabilities", "caps", "cap"), _CAPABILITIES),
    **dict.fromkeys(("devices", "device", "devicerequests", "devicecgrouprules", "gpus"), _DEVICES),
    **dict.fromkeys(("securityopt", "securityopts", "securityoptions"),
                    "security options could switch off the container's confinement"),
    "sysctls": "kernel parameters belong to the host",
}


def parse_event(body: Any) -> TaskEvent:
    """Parse a POST /tasks body into a TaskEvent.

    Raises:
        ValidationError: naming the first field that is missing, unknown, of the wrong type
            or out of range.
    """
    obj = _object(body, "body")
    _no_dangerous(obj, EVENT_FIELDS, "")
    _no_unknown(obj, EVENT_FIELDS, "")
    event_id = parse_uuid(obj["id"], "id") if "id" in obj else None
    state = _desired_state(obj.get("state", State.RUNNING.value))
    if "task" not in obj:
        raise ValidationError("task is required")
    task = parse_task(obj["task"], require_image=state is State.RUNNING)
    if state is State.COMPLETED and "id" not in obj["task"]:
        raise ValidationError("task.id is required to stop a task")
    event = TaskEvent(task=task, state=state)
    if event_id:
        event.id = event_id
    return event


def parse_task(value: Any, require_image: bool = True) -> Task:
    """Parse the `task` object of an event into a Task in state pending."""
    obj = _object(value, "task")
    _no_dangerous(obj, TASK_FIELDS, "task.")
    _no_unknown(obj, TASK_FIELDS, "task.")
    if "image" not in obj and require_image:
        raise ValidationError("task.image is required")
    image = _image(obj.get("image", ""), require_image)
    task = Task(image=image, name=_name(obj.get("name"), image))
    if "id" in obj:
        task.id = parse_uuid(obj["id"], "task.id")
    task.command = _command(obj.get("command", []))
    task.env = _env(obj.get("env", {}))
    task.cpu = _cpu(obj.get("cpu", 0))
    task.memory = _memory(obj.get("memory", 0))
    task.pids = _pids(obj.get("pids", 0))
    task.disk = parse_size(obj.get("disk", 0), "task.disk")
    task.ports = _ports(obj.get("ports", {}))
    task.restart_policy = _restart_policy(obj.get("restart_policy", "on-failure"))
    task.max_restarts = _count(obj.get("max_restarts", task.max_restarts), "task.max_restarts")
    task.stop_after_disconnect = _seconds_or_none(obj.get("stop_after_disconnect"), "task.stop_after_disconnect")
    task.health_check = parse_health_check(obj.get("health_check"), task.ports)
    task.constraints = parse_constraints(obj.get("constraints", []), "task.constraints")
    return task


def parse_constraints(value: Any, name: str) -> list[dict[str, Any]]:
    """Parse a list of placement constraints `{"label", "op", "value"}`.

    `op` is one of ==, !=, in, not_in; `value` is a string for == and !=, a list of strings
    for in and not_in. Raises ValidationError naming the element and field."""
    if not isinstance(value, list):
        raise ValidationError(f"{name} must be a list of {{label, op, value}} objects")
    if len(value) > MAX_CONSTRAINTS:
        raise ValidationError(f"{name} has more than {MAX_CONSTRAINTS} entries")
    return [_constraint(item, f"{name}[{i}]") for i, item in enumerate(value)]


def _constraint(value: Any, name: str) -> dict[str, Any]:
    obj = _object(value, name)
    _no_unknown(obj, CONSTRAINT_FIELDS, f"{name}.")
    for key in ("label", "op", "value"):
        if key not in obj:
            raise ValidationError(f"{name}.{key} is required")
    label = parse_label(obj["label"], f"{name}.label", key=True)
    op = obj["op"]
    if op not in CONSTRAINT_OPS:
        raise ValidationError(f"{name}.op must be one of {', '.join(CONSTRAINT_OPS)}")
    if op in ("==", "!="):
        wanted: Any = parse_label(obj["value"], f"{name}.value")
    elif not isinstance(obj["value"], list) or not obj["value"] or len(obj["value"]) > MAX_CONSTRAINTS:
        raise ValidationError(f"{name}.value must be a list of 1-{MAX_CONSTRAINTS} strings for op {op}")
    else:
        wanted = [parse_label(v, f"{name}.value[{i}]") for i, v in enumerate(obj["value"])]
    return {"label": label, "op": op, "value": wanted}


def parse_label(value: Any, name: str, key: bool = False) -> str:
    """A node label's name (`key`) or value: 1-128 letters, digits, '_', '.', '/', '-'
    (a value may also be empty)."""
    if not isinstance(value, str) or len(value) > MAX_LABEL or (
            (value or key) and not _LABEL.fullmatch(value)):
        raise ValidationError(f"{name} must be a string of up to {MAX_LABEL} letters, digits, '_', '.', '/' or '-'")
    return value


def parse_uuid(value: Any, name: str) -> str:
    """Return `value` as a canonical UUID string, or raise naming `name`."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValidationError(f"{name} must be a UUID string")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValidationError(f"{name} must be a UUID string") from None


def parse_size(value: Any, name: str) -> int:
    """Parse bytes given as a non-negative integer or a Docker-style string ("64m", "1g")."""
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be an integer number of bytes or a size like '64m'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and len(value) <= 32 and (match := _SIZE.fullmatch(value)):
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    else:
        raise ValidationError(f"{name} must be an integer number of bytes or a size like '64m'")
    if size < 0 or size > MAX_BYTES:
        raise ValidationError(f"{name} must be between 0 and {MAX_BYTES} bytes")
    return size


def check_image_allowed(image: str, patterns: Iterable[str]) -> None:
    """Refuse an image that no allow-list entry admits (the rule: task/reference.py, README).

    Entries are matched on the normalized reference, never on the raw text: `busybox` admits
    `docker.io/library/busybox` with any tag or digest, not `busybox.attacker.example/miner`
    nor `busyboxes/evil`. No patterns means every image is allowed; with patterns, an image that
    is not a valid reference is refused.

    Raises:
        Forbidden: naming the image (not the patterns).
    """
    patterns = tuple(patterns)
    if not patterns:
        return
    refusal = f"image {image[:128]!r} is not allowed on this cluster (see ORCA_ALLOWED_IMAGES)"
    try:
        ref = normalize(image)
    except InvalidReference:
        raise Forbidden(f"{refusal}: not a valid image reference") from None
    if not any(parse_pattern(p).admits(ref) for p in patterns):
        raise Forbidden(refusal)


def _dangerous_key(key: str) -> str:
    """Normalise a field name: "Cap_Add", "cap-add" and "capAdd" all become "capadd"."""
    return key.lower().replace("_", "").replace("-", "")


def _no_dangerous(obj: dict, allowed: frozenset, prefix: str) -> None:
    for key in sorted(str(k) for k in obj if k not in allowed):
        reason = REFUSED_FIELDS.get(_dangerous_key(key))
        if reason:
            raise ValidationError(f"{prefix}{key[:64]} is not allowed: {reason}")


def _object(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(f"{name} must be a JSON object")
    return value


def _no_unknown(obj: dict, allowed: frozenset, prefix: str) -> None:
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        raise ValidationError(f"unknown field {prefix}{unknown[0][:64]}")


def _desired_state(value: Any) -> State:
    if value not in [s.value for s in DESIRED_STATES]:
        raise ValidationError("state must be 'running' or 'completed'")
    return State(value)


def _image(value: Any, required: bool) -> str:
    if not isinstance(value, str):
        raise ValidationError("task.image must be a string")
    if required and not value.strip():
        raise ValidationError("task.image must not be empty")
    if len(value) > MAX_IMAGE or any(c.isspace() or ord(c) < 32 for c in value):
        raise ValidationError("task.image is not a valid image reference")
    return value


def _name(value: Any, image: str) -> str:
    if value is None:
        base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
        return base if _NAME.fullmatch(base or "") else "task"
    if not isinstance(value, str) or not _NAME.fullmatch(value) or len(value) > MAX_NAME:
        raise ValidationError(
            f"task.name must be 1-{MAX_NAME} characters of letters, digits, '_', '.' or '-'"
        )
    return value


def _command(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValidationError("task.command must be a list of strings")
    if len(value) > MAX_ARGS or any(len(a) > MAX_ARG or "\x00" in a for a in value):
        raise ValidationError(f"task.command is too long (at most {MAX_ARGS} arguments of {MAX_ARG} characters, no NUL)")
    return list(value)


def _env(value: Any) -> dict[str, str]:
    obj = _object(value, "task.env")
    if len(obj) > MAX_ENV:
        raise ValidationError(f"task.env has more than {MAX_ENV} entries")
    for key, val in obj.items():
        if not _ENV_KEY.fullmatch(key) or len(key) > MAX_NAME * 2:
            raise ValidationError(f"task.env has an invalid name {key[:64]!r}")
        if not isinstance(val, str):
            raise ValidationError(f"task.env.{key[:64]} must be a string")
        if len(val) > MAX_ENV_VALUE or "\x00" in val:
            raise ValidationError(f"task.env.{key[:64]} is too long or contains NUL")
    return dict(obj)


def _cpu(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("task.cpu must be a number of cores")
    if not 0 <= value <= MAX_CPU:  # also rejects NaN
        raise ValidationError(f"task.cpu must be between 0 and {MAX_CPU}")
    return float(value)


def _memory(value: Any) -> int:
    memory = parse_size(value, "task.memory")
    if 0 < memory < MIN_MEMORY:
        raise ValidationError("task.memory must be 0 (no limit) or at least 6m (Docker's minimum)")
    return memory


def _pids(value: Any) -> int:
    """task.pids: 0 (the worker's ORCA_PIDS_LIMIT) or a process limit in [MIN_PIDS, MAX_PIDS]."""
    if isinstance(value, bool) or not isinstance(value, int) or not (value == 0 or MIN_PIDS <= value <= MAX_PIDS):
        raise ValidationError(f"task.pids must be 0 (the worker's limit) or an integer between {MIN_PIDS} and {MAX_PIDS}")
    return value


def _ports(value: Any) -> dict[str, int | None]:
    obj = _object(value, "task.ports")
    if len(obj) > MAX_PORTS:
        raise ValidationError(f"task.ports has more than {MAX_PORTS} entries")
    ports: dict[str, int | None] = {}
    for key, host in obj.items():
        match = _PORT_KEY.fullmatch(key)
        if not match or not 1 <= int(match.group(1)) <= 65535:
            raise ValidationError(f"task.ports key {key[:32]!r} must look like '8080/tcp'")
        if host is not None and (isinstance(host, bool) or not isinstance(host, int) or not 1 <= host <= 65535):
            raise ValidationError(f"task.ports.{key} must be null or a port number 1-65535")
        ports[f"{match.group(1)}/{match.group(2) or 'tcp'}"] = host
    return ports


def _restart_policy(value: Any) -> str:
    if value not in RESTART_POLICIES:
        raise ValidationError(f"task.restart_policy must be one of {', '.join(RESTART_POLICIES)}")
    return value


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RESTARTS:
        raise ValidationError(f"{name} must be an integer between 0 and {MAX_RESTARTS}")
    return value


def _seconds_or_none(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_SECONDS:
        raise ValidationError(f"{name} must be null or a number of seconds between 0 and {MAX_SECONDS}")
    return float(value)
