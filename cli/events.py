"""`orca events`: the manager's event stream (GET /events), one line per event, as it comes.

A broken or ended connection is resumed from the last index seen (the stream has no gaps while the
manager keeps the events); events no longer kept (410) end the command with the manager's
message.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable, Iterator

import click

from cli.client import ClientError, ManagerUnreachable

TOPICS = ("task", "node", "service", "leader")
RETRIES = 5  # reconnections in a row before giving up
RETRY_WAIT = 1.0


def parse_sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The events of an SSE body given line by line: {"event", "id", "data"} with `data` parsed
    as JSON; comments (heartbeats) are skipped."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                yield {"event": fields.get("event", "message"), "id": fields.get("id"), "data": json.loads(fields["data"])}
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value


def one_line(event: dict[str, Any]) -> str:
    """An event as one line: index, time, topic, kind, then what it is about."""
    data = event.get("data") or {}
    if event["topic"] == "task":
        about = f"{data.get('id', '')[:8]} {data.get('name', '')} {data.get('state')} attempt {data.get('attempt')}"
        about += f" on {data['node']}" if data.get("node") else ""
    elif event["topic"] == "node":
        about = f"{data.get('name')} {data.get('status')}"
    else:
        about = " ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, (dict, list)))
    return f"#{event['index']} {event['time']} {event['topic']} {event['kind']} {about}".rstrip()


def follow(connect, since: int | None, topics: tuple[str, ...], as_json: bool) -> None:
    """Print events until interrupted; reconnect from the last index seen when the stream breaks
    or ends (as a browser's EventSource does).

    Raises ManagerRejected (410: the events after `since` are gone; 400, 401, 503),
    ManagerUnreachable after RETRIES failed reconnections, ClientError when the stream says
    the reader fell behind what the manager keeps."""
    failures = 0
    while True:
        try:
            for message in parse_sse(connect().event_lines(since, topics)):
                if message["event"] == "gone":
                    raise ClientError(message["data"].get("error", "the events are no longer kept"))
                event = message["data"]
                since, failures = event["index"], 0
                click.echo(json.dumps(event) if as_json else one_line(event))
            ended: ManagerUnreachable | None = None  # the manager ended the stream (it is shutting down)
        except ManagerUnreachable as exc:
            ended = exc
        failures += 1
        if failures > RETRIES:
            raise ended or ManagerUnreachable("the manager keeps ending the event stream")
        time.sleep(RETRY_WAIT)  # a pause before reconnecting, not a synchronisation
