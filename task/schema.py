"""JSON Schema (2020-12) of a task event, as POST /tasks takes it, and of a task, as every API
answers it. Pure: the schemas are built from task.validation's own field lists, limits and
patterns, and from Task.to_dict(), so the document cannot drift from what the code checks
(tests/unit/test_schema.py holds parse_event and the schema to the same verdicts).

JSON Schema says nearly everything parse_event checks. Where it cannot, the schema is looser
and the server answers 400:
- a size string ("64m") whose value is out of range (over 1 PiB; a memory limit under 6m);
- an integral float (8080.0) where an integer is due: JSON Schema's integer includes it.
The server is more lenient than the schema where it normalises what it reads: other
spellings of a UUID (braces, no hyphens) become the canonical form, and a port key or size
written with non-ASCII digits is read as its number.

Patterns are taken verbatim from task.validation where it has one. Read by a regex engine
whose `$` also matches before a final newline (Python's, which the server uses), they give
the server's verdict exactly; under ECMA-262, as OpenAPI prescribes, "web\\n" is no name.
"""
from __future__ import annotations

import re
import sys
from functools import cache
from typing import Any

from task.health import MAX_INTERVAL, MAX_RETRIES, MAX_START_PERIOD, MAX_TIMEOUT, MIN_INTERVAL, MIN_TIMEOUT, PROBE_TIMEOUT
from task.model import CONSTRAINT_OPS, RESTART_POLICIES, SPEC_FIELDS, Task
from task.state import State
from task.validation import (
    _ENV_KEY, _LABEL, _NAME, _PORT_KEY, _SIZE, DESIRED_STATES, EVENT_FIELDS, MAX_ARG, MAX_ARGS, MAX_BYTES,
    MAX_CONSTRAINTS, MAX_CPU, MAX_ENV, MAX_ENV_VALUE, MAX_IMAGE, MAX_LABEL, MAX_NAME, MAX_PATH, MAX_PORTS,
    MAX_PIDS, MAX_RESTARTS, MAX_SECONDS, MIN_MEMORY, MIN_PIDS, TASK_FIELDS,
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
REF = "#/components/schemas/"

# 1-65535, with leading zeros, in at most five digits: what `1 <= int(\d{1,5}) <= 65535` allows.
PORT_NUMBER = ("[1-9][0-9]{0,3}|0[1-9][0-9]{0,2}|00[1-9][0-9]?|000[1-9]"
               "|0(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
               "|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]")
MAX_SIZE_TEXT = 32  # parse_size reads a size string of at most this many characters
NO_NUL = "^[^\\u0000]*$"
UUID = {"type": "string", "format": "uuid"}


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema `name`."""
    return {"$ref": REF + name}


def _char_class(chars: str) -> str:
    """A regex character class of `chars`, as ranges of \\uXXXX escapes (ECMA-262 and Python)."""
    codes = sorted(set(map(ord, chars)))
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    parts = [f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


@cache
def _space_or_control() -> str:
    """The characters _image and _health_check refuse: str.isspace() or below U+0020."""
    return "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace() or ord(c) < 32)


def _no_space_string(prefix: str = "") -> dict[str, Any]:
    """A string of no whitespace or control character, starting with `prefix`.

    `pattern` states it for generators and ECMA-262 readers; `not` states it again for regex
    engines whose `$` matches before a final newline.
    """
    forbidden = _char_class(_space_or_control())
    allowed = "[^" + forbidden[1:]
    return {"type": "string", "pattern": f"^{re.escape(prefix)}{allowed}*$",
            "not": {"type": "string", "pattern": forbidden}}


def ignore_case(pattern: str) -> str:
    """`pattern` with each ASCII letter matching either case (JSON Schema has no flags)."""
    out, in_class, escaped = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isascii() and char.isalpha():
            pair = char.lower() + char.upper()
            char = pair if in_class else f"[{pair}]"
        elif char in "[]":
            in_class = char == "["
        out.append(char)
    return "".join(out)


def _replaced(pattern: str, old: str, new: str) -> str:
    """`pattern` with `old` replaced; raises if `old` is gone (validation changed: update here)."""
    if old not in pattern:
        raise RuntimeError(f"task.validation changed: {old!r} no longer in {pattern!r}")
    return pattern.replace(old, new)


PORT_KEY = _replaced(_PORT_KEY.pattern, r"(\d{1,5})", f"({PORT_NUMBER})")
TCP_PORT_KEY = _replaced(PORT_KEY, "(tcp|udp|sctp)", "(tcp)")  # after normalisation, a tcp port
SIZE_PATTERN = ignore_case(_SIZE.pattern) if _SIZE.flags & re.IGNORECASE else _SIZE.pattern


def _size(low: int = 0, description: str = "") -> dict[str, Any]:
    """Bytes: an integer, or a Docker-style size string (range not expressible: the server checks)."""
    integers = [{"type": "integer", "minimum": low, "maximum": MAX_BYTES}]
    if low:
        integers.insert(0, {"type": "integer", "const": 0})
    text = {"type": "string", "maxLength": MAX_SIZE_TEXT, "pattern": SIZE_PATTERN}
    return {"description": description, "anyOf": [*integers, text]}


def _count(description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "maximum": MAX_RESTARTS, "description": description}


def _constraints() -> dict[str, Any]:
    """A list of placement constraints (task.validation.parse_constraints)."""
    label = {"type": "string", "maxLength": MAX_LABEL, "pattern": _LABEL.pattern}
    value = {"anyOf": [{"const": ""}, label]}
    one = {"type": "object", "additionalProperties": False, "required": ["label", "op", "value"],
           "properties": {"label": label, "op": {"enum": list(CONSTRAINT_OPS)}, "value": {}},
           "oneOf": [{"properties": {"op": {"enum": ["==", "!="]}, "value": value}},
                     {"properties": {"op": {"enum": ["in", "not_in"]},
                                     "value": {"type": "array", "minItems": 1, "maxItems": MAX_CONSTRAINTS,
                                               "items": value}}}]}
    return {"type": "array", "maxItems": MAX_CONSTRAINTS, "items": one,
            "description": "node labels the task needs: every one must hold on its node"}


def _spec_properties() -> dict[str, dict[str, Any]]:
    """The schema of each field of a POST /tasks `task` object."""
    return {
        "id": {**UUID, "description": "the task's id; generated when absent"},
        "name": {"type": ["string", "null"], "maxLength": MAX_NAME, "pattern": _NAME.pattern,
                 "description": "letters, digits, '_', '.' and '-'; absent or null: the image's name"},
        "image": {**_no_space_string(), "maxLength": MAX_IMAGE,
                  "description": "the image to run; pulled when not present locally"},
        "command": {"type": "array", "maxItems": MAX_ARGS,
                    "items": {"type": "string", "maxLength": MAX_ARG, "pattern": NO_NUL},
                    "description": "the command and its arguments; the image's default when absent"},
        "env": {"type": "object", "maxProperties": MAX_ENV,
                "propertyNames": {"maxLength": MAX_NAME * 2, "pattern": _ENV_KEY.pattern},
                "additionalProperties": {"type": "string", "maxLength": MAX_ENV_VALUE, "pattern": NO_NUL}},
        "cpu": {"type": "number", "minimum": 0, "maximum": MAX_CPU, "description": "cores; 0: no limit"},
        "memory": _size(MIN_MEMORY, "bytes or a size like '64m'; 0: no limit, else at least 6m"),
        "disk": _size(0, "bytes or a size like '1g'; recorded for placement"),
        "ports": {"type": "object", "maxProperties": MAX_PORTS, "propertyNames": {"pattern": PORT_KEY},
                  "additionalProperties": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
                  "description": "container port ('8080/tcp', '53/udp'; tcp when absent) to host port; "
                                 "null: any free port"},
        "restart_policy": {"enum": list(RESTART_POLICIES), "default": "on-failure"},
        "max_restarts": _count("restarts allowed under the restart policy"),
        "stop_after_disconnect": {"type": ["number", "null"], "minimum": 0, "maximum": MAX_SECONDS,
                                  "description": "seconds a worker cut off from the manager keeps the task "
                                                 "running before it stops it; null: it keeps running"},
        "health_check": _health_check(),
        "constraints": _constraints(),
        "pids": {"anyOf": [{"type": "integer", "const": 0}, {"type": "integer", "minimum": MIN_PIDS, "maximum": MAX_PIDS}],
                 "description": "processes the container may hold; 0: the worker's ORCA_PIDS_LIMIT"},
    }


def _health_check() -> dict[str, Any]:
    """A URL path (the short form), or an object of which only `path` is required."""
    path = {**_no_space_string("/"), "maxLength": MAX_PATH}
    seconds = lambda low, high, what: {"type": ["number", "null"], "minimum": low, "maximum": high,  # noqa: E731
                                       "description": what}
    check = {"type": "object", "additionalProperties": False, "required": ["path"], "properties": {
        "path": {**path, "description": "the URL path probed"},
        "port": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1, "maximum": 65535},
                           {"type": "string", "pattern": TCP_PORT_KEY}],
                 "description": "the tcp container port probed (one of task.ports); default: the lowest-numbered"},
        "interval": seconds(MIN_INTERVAL, MAX_INTERVAL, "seconds between probes; default ORCA_HEALTH_INTERVAL"),
        "timeout": seconds(MIN_TIMEOUT, MAX_TIMEOUT, f"seconds a probe may take; default {PROBE_TIMEOUT:g}"),
        "retries": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_RETRIES,
                    "description": "failed probes in a row that restart the task; default ORCA_HEALTH_FAILURES"},
        "start_period": seconds(0, MAX_START_PERIOD, "seconds after a start during which failed probes do not count"),
    }, "description": "null for any field but path: the default"}
    return {"anyOf": [{"type": "null"}, {**path, "description": "the short form: a URL path"}, check],
            "description": "probed over HTTP on a published tcp port (the lowest-numbered unless `port` says)"}


def _task_spec() -> dict[str, Any]:
    properties = _spec_properties()
    if set(properties) != TASK_FIELDS:
        raise RuntimeError(f"task schema fields {sorted(properties)} differ from SPEC_FIELDS {sorted(TASK_FIELDS)}")
    health_needs_tcp = {
        "if": {"required": ["health_check"], "properties": {"health_check": {"type": ["string", "object"]}}},
        "then": {"required": ["ports"],
                 "properties": {"ports": {"not": {"propertyNames": {"not": {"pattern": TCP_PORT_KEY}}}}}},
    }
    return {"type": "object", "additionalProperties": False,
            "properties": {name: properties[name] for name in SPEC_FIELDS}, **health_needs_tcp,
            "description": "what to run; a health_check needs a published tcp port"}


def _event(state: State, task_rule: dict[str, Any], description: str) -> dict[str, Any]:
    properties = {"id": {**UUID, "description": "the event's id; generated when absent"},
                  "state": {"const": state.value},
                  "task": {"allOf": [ref("TaskSpec"), task_rule]}}
    if set(properties) != EVENT_FIELDS:
        raise RuntimeError(f"event schema fields {sorted(properties)} differ from EVENT_FIELDS")
    required = ["task"] if state is State.RUNNING else ["state", "task"]
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties,
            "description": description}


def _task_fields() -> dict[str, dict[str, Any]]:
    """The schema of each field of a task in a response (Task.to_dict())."""
    spec = _spec_properties()
    nullable_text = {"type": ["string", "null"]}
    fields = {
        "id": UUID, "name": {"type": "string"}, "state": {"enum": [s.value for s in State]},
        "image": {"type": "string"}, "command": spec["command"], "env": spec["env"], "cpu": spec["cpu"],
        "memory": {"type": "integer", "minimum": 0}, "disk": {"type": "integer", "minimum": 0},
        "ports": {"type": "object", "additionalProperties": spec["ports"]["additionalProperties"]},
        "restart_policy": spec["restart_policy"], "max_restarts": spec["max_restarts"],
        "restart_count": {"type": "integer", "minimum": 0}, "health_check": spec["health_check"],
        "host_ports": {"type": "object", "additionalProperties": {"type": "integer"}},
        "node": nullable_text, "container_id": nullable_text, "exit_code": {"type": ["integer", "null"]},
        "error": nullable_text, "created_at": nullable_text, "started_at": nullable_text,
        "finished_at": nullable_text,
        "stop_after_disconnect": spec["stop_after_disconnect"], "pids": {"type": "integer", "minimum": 0},
        "desired_state": {"enum": ["running", "stopped"]},
        "attempt": {"type": "integer", "minimum": 0}, "version": {"type": "integer", "minimum": 0},
        "constraints": spec["constraints"],
        "service": {"type": ["string", "null"], "description": "the service this task is a replica of"},
        "pending_reason": {"type": ["string", "null"],
                           "description": "why no node can take the task yet; null once placed"},
        # services: the version of the replica's spec, and the health probe's verdict
        "service_version": {"type": ["integer", "null"], "minimum": 1},
        "healthy": {"type": ["boolean", "null"]},
        "moving_from": {"type": ["object", "null"],
                        "description": "a drained task's old copy ({node, attempt}) to see stopped "
                                       "before the task is placed again"},
    }
    names = list(Task().to_dict())
    missing = set(names) ^ set(fields)
    if missing:
        raise RuntimeError(f"task response schema out of step with Task.to_dict(): {sorted(missing)}")
    return {name: fields[name] for name in names}


@cache
def task_schemas() -> dict[str, dict[str, Any]]:
    """Component schemas: TaskSpec, TaskEvent (RunTaskEvent or StopTaskEvent) and Task.

    References point into `#/components/schemas/`, as in an OpenAPI document. Treat the
    result as read-only: it is built once.
    """
    run, stop = DESIRED_STATES
    fields = _task_fields()
    return {
        "TaskSpec": _task_spec(),
        "RunTaskEvent": _event(run, {"required": ["image"], "properties": {"image": {"minLength": 1}}},
                               "start a task: `state` running (the default) and `task.image` required"),
        "StopTaskEvent": _event(stop, {"required": ["id"]},
                                "stop a task: `state` completed and `task.id` required"),
        "TaskEvent": {"anyOf": [ref("RunTaskEvent"), ref("StopTaskEvent")]},
        "Task": {"type": "object", "additionalProperties": False, "required": list(fields), "properties": fields,
                 "description": "a task; times are ISO 8601 UTC, null until known"},
    }


def standalone(name: str) -> dict[str, Any]:
    """A self-contained JSON Schema document for the component `name` (for a validator)."""
    return {"$schema": JSON_SCHEMA_DIALECT, "$ref": REF + name, "components": {"schemas": task_schemas()}}
