"""The internal contract between manager and worker: typed values parsed from the wire
before they are merged. A user never sends these fields; the manager and workers do."""
from __future__ import annotations

import threading
from typing import Any

from task.errors import Conflict, ValidationError
from task.lifecycle import Report
from task.model import TaskEvent
from task.state import State
from task.validation import MAX_RESTARTS, parse_event

MAX_ATTEMPT = 1 << 40
MAX_VERSION = 1 << 63
ORDER_FIELDS = ("attempt", "restart_count")
MAX_BATCH = 500  # orders in one POST /tasks/batch to a worker


def parse_order(body: Any) -> TaskEvent:
    """Parse the manager's POST /tasks to a worker: a task event plus its `attempt` (>= 1;
    default 1 for a run, none for a stop) and, for a run, the restarts so far (default 0).

    Raises:
        ValidationError: naming the field.
    """
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    extra = {name: body[name] for name in ORDER_FIELDS if name in body}
    event = parse_event({k: v for k, v in body.items() if k not in ORDER_FIELDS})
    run = event.state is State.RUNNING
    default = 1 if run else None  # a stop without an attempt is for whatever the worker holds
    attempt = extra.get("attempt", default)
    event.task.attempt = None if attempt is None else _int(attempt, "attempt", 1, MAX_ATTEMPT)  # type: ignore[assignment]
    event.task.restart_count = _int(extra.get("restart_count", 0), "restart_count", 0, MAX_RESTARTS + 1)
    return event


def parse_report(data: Any) -> Report:
    """Parse a worker's copy of a task (an element of its GET /tasks, or a POST answer).

    Raises:
        ValidationError: the copy is malformed (the manager then ignores it).
    """
    if not isinstance(data, dict):
        raise ValidationError("a task report must be a JSON object")
    try:
        state = State(data.get("state"))
    except ValueError:
        raise ValidationError(f"task report has an unknown state {str(data.get('state'))[:32]!r}") from None
    ports = data.get("host_ports") or {}
    if not isinstance(ports, dict):
        raise ValidationError("task report host_ports must be an object")
    return Report(
        task_id=_text(data.get("id"), "id") or "", attempt=_int(data.get("attempt", 1), "attempt", 0),
        version=_int(data.get("version", 0), "version", 0, MAX_VERSION), state=state,
        restart_count=_int(data.get("restart_count", 0), "restart_count", 0),
        container_id=_text(data.get("container_id"), "container_id"),
        exit_code=_optional_int(data.get("exit_code"), "exit_code"), error=_text(data.get("error"), "error"),
        host_ports={str(k): int(v) for k, v in ports.items() if isinstance(v, int) and not isinstance(v, bool)},
        started_at=_text(data.get("started_at"), "started_at"),
        finished_at=_text(data.get("finished_at"), "finished_at"),
        healthy=_optional_bool(data.get("healthy"), "healthy"),
    )


def _int(value: Any, name: str, minimum: int, maximum: int = MAX_VERSION) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be an integer between {minimum} and {maximum}")
    return value


def _optional_int(value: Any, name: str) -> int | None:
    return None if value is None else _int(value, name, -(1 << 31))


def _optional_bool(value: Any, name: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValidationError(f"task report {name} must be true, false or null")
    return value


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"task report {name} must be a string")
    return value[:4096]


# ----- fencing: the leader's term on every call to a worker (several managers)

TERM_HEADER = "X-Orca-Term"  # the sending manager's leadership term; absent from a lone manager
SEEN_TERM_HEADER = "X-Orca-Seen-Term"  # on a 409 refusal: the newest term the worker has seen
MAX_TERM = 1 << 62


class StaleTerm(Conflict):
    """A command carries an older term than one the worker has already seen (409): it comes
    from a deposed leader."""

    def __init__(self, offered: int | None, seen: int) -> None:
        shown = "no term" if offered is None else f"term {offered}"
        super().__init__(f"refused: the command carries {shown}, older than term {seen} already seen "
                         f"(a newer leader commands this worker)")
        self.offered, self.seen = offered, seen


def parse_term(raw: str | None) -> int | None:
    """The X-Orca-Term header: None when absent, else an integer 0..MAX_TERM.

    Raises:
        ValidationError: naming the header.
    """
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_TERM:
        raise ValidationError(f"header {TERM_HEADER} must be an integer 0..{MAX_TERM}")
    return int(raw)


class TermFence:
    """The newest term a worker has seen, and the rule: a command with an older term (or none,
    once a term was seen) is refused; any call with a newer term raises the bar.
    Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen = 0

    def admit(self, term: int | None, command: bool) -> None:
        """Record `term`; raise StaleTerm if `command` and `term` is older than the newest seen."""
        with self._lock:
            if term is not None and term > self.seen:
                self.seen = term
            stale = (term is None and self.seen > 0) or (term is not None and term < self.seen)
            seen = self.seen
        if command and stale:
            raise StaleTerm(term, seen)
