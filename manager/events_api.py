"""GET /events: the manager's event log (manager/events.py) as server-sent events.

Each event is one SSE message: `id:` its index, `event:` its topic, `data:` the event as one
line of JSON. A stream starts after the `Last-Event-ID` header a browser's EventSource sends
when it reconnects, else after `?since=INDEX` (neither: only new events), optionally filtered by
`?topic=task,node,...`. Idle streams get a comment every HEARTBEAT seconds. When the events a
stream still has to send are dropped from the ring (a reader far behind), it sends one `gone`
message ({"error", "oldest", "last"}) and ends; a start that cannot be served answers 410 with
the same fields.

Each stream holds one of the server's request threads (the service gives the server extra
threads for them), so at most `max_streams` run at once (503 beyond). A stream ends within
POLL seconds of its client going away (waitress reports that when the server is created with
channel_request_lookahead) or of the manager shutting down, and gives its slot back at once.
"""
from __future__ import annotations

import json
import time
from typing import Callable, Iterator

from flask import Blueprint, Response, jsonify, request

from common.query import query_int
from common.streams import StreamLimit, client_gone
from manager.events import EventLog, EventsGone, check_topics
from task import ValidationError

HEARTBEAT = 15.0  # seconds between comments on an idle stream
MAX_EVENT_STREAMS = 16
POLL = 0.25  # seconds between checks for a client gone or a shutdown
MAX_INDEX = 2**63 - 1
RETRY_MS = 2000  # what an EventSource waits before reconnecting


def create_events_blueprint(events: EventLog, accepting: Callable[[], bool], max_streams: int = MAX_EVENT_STREAMS,
                            heartbeat: float = HEARTBEAT) -> Blueprint:
    """The GET /events route over `events`; `accepting()` turns false at shutdown (streams end)."""
    api = Blueprint("events", __name__)
    streams = StreamLimit(max_streams, "event streams")

    @api.get("/events")
    def stream_events() -> Response:
        topics = requested_topics()
        start = start_index(events)
        try:
            events.since(start, topics, limit=0)  # 410 before taking a slot
        except EventsGone as exc:
            return gone_response(exc)
        release = streams.acquire()
        gone = client_gone()
        body = sse_stream(events, start, topics, stop=lambda: not accepting() or gone(), heartbeat=heartbeat)
        response = Response(body, mimetype="text/event-stream",
                            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        response.call_on_close(release)
        return response

    return api


def requested_topics() -> tuple[str, ...]:
    """?topic=a,b (empty or absent: every topic); raises ValidationError naming a bad one."""
    raw = request.args.get("topic", "")
    try:
        return check_topics(t.strip() for t in raw.split(",") if t.strip())
    except ValueError as exc:
        raise ValidationError(f"query parameter topic: {exc}") from None


def start_index(events: EventLog) -> int:
    """The Last-Event-ID header, else ?since=N, else the newest index (only new events). A
    reconnecting EventSource sends the header with its original URL: the header is newer."""
    since = query_int("since", None, 0, MAX_INDEX)
    header = request.headers.get("Last-Event-ID", "").strip()
    if header:
        if not header.isdigit() or int(header) > MAX_INDEX:
            raise ValidationError("header Last-Event-ID must be an event index (an integer >= 0)")
        return int(header)
    return events.last if since is None else since


def gone_response(exc: EventsGone):
    return jsonify(error=str(exc), oldest=exc.oldest, last=exc.last), 410


def sse_stream(events: EventLog, position: int, topics: tuple[str, ...], stop: Callable[[], bool],
               heartbeat: float = HEARTBEAT, clock: Callable[[], float] = time.monotonic) -> Iterator[bytes]:
    """The SSE body: events after `position` as they come, until `stop()` or the log closes."""
    yield f"retry: {RETRY_MS}\n: orca events after {position}\n\n".encode()  # sends the headers at once
    next_beat = clock() + heartbeat
    while not stop():
        try:
            batch, position = events.since(position, topics)
        except EventsGone as exc:
            yield message("gone", {"error": str(exc), "oldest": exc.oldest, "last": exc.last})
            return
        if batch:
            yield b"".join(message(event["topic"], event, event["index"]) for event in batch)
            next_beat = clock() + heartbeat
            continue
        if events.closed:
            return
        if clock() >= next_beat:
            yield b": heartbeat\n\n"
            next_beat = clock() + heartbeat
        events.wait(position, min(POLL, heartbeat))


def message(name: str, data: dict, index: int | None = None) -> bytes:
    """One SSE message; the JSON is one line (json.dumps escapes newlines in strings)."""
    head = f"id: {index}\n" if index is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

