"""Query-string parameters of the long-lived routes (logs, wait), validated by name.

Every bad value raises ValidationError naming the parameter, which the JSON error handler
turns into a 400.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request

from task import ValidationError

MAX_TAIL = 10_000_000
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
STREAMS = ("both", "stdout", "stderr")


@dataclass(frozen=True)
class LogOptions:
    """Which part of a task's output to send.

    tail: the last N lines of the current container first (None: all of them).
    follow: keep the response open and send lines as they are written, until the task ends.
    stream: "stdout", "stderr" or "both" (interleaved in the order they were written).
    """

    tail: int | None = None
    follow: bool = False
    stream: str = "both"

    @property
    def stdout(self) -> bool:
        return self.stream in ("both", "stdout")

    @property
    def stderr(self) -> bool:
        return self.stream in ("both", "stderr")

    def params(self, follow: bool | None = None) -> dict[str, str]:
        """The options as query parameters (to pass them on to a worker)."""
        params = {"follow": "true" if (self.follow if follow is None else follow) else "false",
                  "stream": self.stream}
        if self.tail is not None:
            params["tail"] = str(self.tail)
        return params


def query_int(name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer query parameter within [low, high]; raises ValidationError naming it."""
    return _query_number(name, default, low, high, int, "an integer")


def query_float(name: str, default: float | None, low: float, high: float) -> float | None:
    """A numeric query parameter within [low, high]; raises ValidationError naming it."""
    return _query_number(name, default, low, high, float, "a number")


def _query_number(name, default, low, high, kind, what):
    raw = request.args.get(name)
    if raw is None:
        return default
    try:  # an empty value ("?since=") is no number either: refused, never read as "absent"
        value = kind(raw)
    except ValueError:
        raise ValidationError(f"query parameter {name} must be {what}") from None
    if not low <= value <= high:  # also refuses nan
        raise ValidationError(f"query parameter {name} must be between {low:g} and {high:g}")
    return value


def query_bool(name: str, default: bool) -> bool:
    """A true/false query parameter (also 1/0, yes/no); raises ValidationError naming it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValidationError(f"query parameter {name} must be true or false")


def query_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`; raises ValidationError naming the parameter and the choices."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise ValidationError(f"query parameter {name} must be one of {', '.join(choices)}")
    return raw


def log_options() -> LogOptions:
    """Parse `tail`, `follow` and `stream` of a logs request (tail=all means every line)."""
    tail: Any = None if request.args.get("tail") == "all" else query_int("tail", None, 0, MAX_TAIL)
    return LogOptions(tail=tail, follow=query_bool("follow", False), stream=query_choice("stream", "both", STREAMS))
