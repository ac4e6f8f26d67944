"""Turn `orca run`'s file and flags into a task event for POST /tasks (pure: no I/O).

The manager is the one validator: values are passed on as given (a number when they read as
one) so that a bad value is rejected by the manager with a message naming the field.
"""
from __future__ import annotations

import json
from typing import Any


class SpecError(ValueError):
    """The task file or a flag cannot be turned into a task event; the message says which."""


def load_event(text: str, source: str) -> dict[str, Any]:
    """Parse a task file: a whole task event `{"task": {...}}` or just the task object.

    Raises:
        SpecError: the text is not a JSON object.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source} must hold a JSON object (a task or a task event)")
    return data if "task" in data else {"task": data}


def number(value: str) -> Any:
    """`value` as an int or float when it reads as one, else unchanged (for the manager to judge)."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def size(value: str) -> Any:
    """`value` as an int of bytes when it reads as one, else unchanged ("64m" is the manager's to parse)."""
    try:
        return int(value)
    except ValueError:
        return value


def parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    """Parse `--env K=V` values; the value may be empty or contain '='.

    Raises:
        SpecError: an item has no '=' or an empty name.
    """
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"--env {pair!r} must look like NAME=VALUE")
        env[key] = value
    return env


def parse_ports(specs: tuple[str, ...]) -> dict[str, Any]:
    """Parse `--port` values: `8080/tcp` (any free host port) or `9000:8080/tcp` (host port 9000)."""
    ports: dict[str, Any] = {}
    for spec in specs:
        host, sep, container = spec.rpartition(":")
        ports[container] = number(host) if sep else None
    return ports


def split_arguments(image: str | None, from_file: bool, args: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """Read `orca run`'s arguments as `docker run` does: (image, command).

    The first argument is the image and the rest its command (a `--` right after the image is
    dropped), unless `--image` or a task file was given: then every argument is the command.
    """
    if image is not None or from_file or not args:
        return image, args
    command = args[1:]
    return args[0], command[1:] if command[:1] == ("--",) else command


def build_event(base: dict[str, Any] | None, image: str | None = None, name: str | None = None,
                env: tuple[str, ...] = (), cpu: str | None = None, memory: str | None = None,
                ports: tuple[str, ...] = (), command: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return the task event to post: the file's event (if any) with the flags laid over it.

    `env` and `ports` add to the file's; `command` replaces it when given.
    Raises:
        SpecError: neither a file nor an image was given, or an --env item is malformed.
    """
    event = dict(base or {"task": {}})
    if not isinstance(event.get("task"), dict):
        raise SpecError("the task file's \"task\" must be a JSON object")
    task = dict(event["task"])
    if image is None and "image" not in task:
        raise SpecError("give an image: orca run IMAGE [COMMAND...], --image IMAGE, or a task file with -f FILE")
    flags = {"image": image, "name": name,
             "cpu": None if cpu is None else number(cpu),
             "memory": None if memory is None else size(memory)}
    task.update({key: value for key, value in flags.items() if value is not None})
    if env:
        task["env"] = {**_object(task.get("env")), **parse_env(env)}
    if ports:
        task["ports"] = {**_object(task.get("ports")), **parse_ports(ports)}
    if command:
        task["command"] = list(command)
    event["task"] = task
    return event


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}
