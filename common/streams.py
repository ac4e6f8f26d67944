"""Long-lived HTTP responses (log follows, waits): a cap on how many run at once, and a relay
that lets a response give up while its source is blocked.

A follow holds one of the server's request threads for as long as the task runs, so each app
caps how many long requests it serves at once (503 beyond that) and keeps threads for the
short ones. And a thread blocked reading a container's output cannot notice a shutdown;
`relay()` reads in a helper thread so the request thread can stop, close the source (which
unblocks the reader) and let the server close within its deadline.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Iterable, Iterator

from flask import Response, request

from task import Unavailable

log = logging.getLogger(__name__)

_END = object()
HEARTBEAT = b""  # relay()'s "nothing new, still here"
MAX_FRAME_HEAD = 16  # hex digits of a frame's length, and its newline
# ?keepalive=S on a worker's log follow (the manager's follows): the stream is framed and
# carries a heartbeat after every S seconds without output.
MIN_KEEPALIVE, MAX_KEEPALIVE = 0.1, 60.0


class StreamLimit:
    """At most `limit` long requests at once; acquire() raises Unavailable beyond that."""

    def __init__(self, limit: int, what: str) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._limit = limit
        self._what = what

    def acquire(self) -> Callable[[], None]:
        """Take a slot; return the function that gives it back (safe to call more than once).

        Raises:
            Unavailable: `limit` long requests are already being served.
        """
        if not self._slots.acquire(blocking=False):
            raise Unavailable(f"too many {self._what} at once (limit {self._limit}); try again later")
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self._slots.release()
        return release


def relay(source: Iterable[bytes], close: Callable[[], None], stop: Callable[[], bool],
          poll: float = 0.25, depth: int = 256, heartbeat: float | None = None) -> Iterator[bytes]:
    """Yield what `source` yields, reading it in a helper thread.

    Between items the caller checks `stop()` every `poll` seconds; when it turns true (or
    the consumer closes this generator) `close()` is called, which must make the source end
    or raise (close its socket), and the relay ends. An exception raised by the source is
    raised here. With `heartbeat`, an empty chunk (HEARTBEAT) comes first and then after
    every `heartbeat` seconds without an item, for framed() to send as a keep-alive.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    gone = threading.Event()

    def pump() -> None:
        try:
            for item in source:
                if not _put(items, item, gone, poll):
                    return
            _put(items, _END, gone, poll)
        except Exception as exc:  # handed to the consumer, which decides
            _put(items, exc, gone, poll)

    threading.Thread(target=pump, name="relay", daemon=True).start()
    quiet_since = time.monotonic()
    try:
        if heartbeat:
            yield HEARTBEAT
        while True:
            try:
                item = items.get(timeout=poll)
            except queue.Empty:
                if stop():
                    return
                if heartbeat and time.monotonic() - quiet_since >= heartbeat:
                    quiet_since = time.monotonic()
                    yield HEARTBEAT
                continue
            quiet_since = time.monotonic()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        gone.set()
        close()


def framed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Frame each chunk as `<length in hex>\n<bytes>`; HEARTBEAT becomes `0\n`. The worker
    sends a follow so to the manager, whose read timeout then tells a silent worker from a
    quiet task (unframed() reads it back)."""
    for chunk in chunks:
        yield b"%x\n" % len(chunk) + chunk


def unframed(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The chunks of a framed() stream, however its bytes were cut, without the heartbeats.

    Raises:
        ValueError: the stream is not framed (a length that is not hex, or too long).
    """
    buffer = b""
    for piece in pieces:
        buffer += piece
        while True:
            head, newline, rest = buffer.partition(b"\n")
            if not newline:
                if len(buffer) > MAX_FRAME_HEAD:
                    raise ValueError("not a framed stream")
                break
            size = int(head, 16)  # ValueError when not framed
            if len(rest) < size:
                break
            if size:
                yield rest[:size]
            buffer = rest[size:]


def until_broken(chunks: Iterable[bytes], errors: tuple[type[Exception], ...], task_id: str) -> Iterator[bytes]:
    """Pass chunks on; a source that breaks with one of `errors` mid-response ends it with a
    warning (the status line is already sent, so there is no error to answer with)."""
    try:
        yield from chunks
    except errors as exc:
        log.warning("task %s: output cut short: %s", task_id, exc)


def client_gone() -> Callable[[], bool]:
    """For the current request: a function telling whether the client has disconnected.
    (waitress only notices while a request runs when its channel_request_lookahead > 0;
    otherwise a follow notices at its next write.)"""
    check = request.environ.get("waitress.client_disconnected")
    return check if callable(check) else (lambda: False)


def text_response(body: Iterable[bytes], *on_close: Callable[[], None]) -> Response:
    """A streamed text/plain response (chunked); `on_close` run when the server is done
    with it, whether or not the body was ever read."""
    response = Response(body, mimetype="text/plain")
    for func in on_close:
        response.call_on_close(func)
    return response


def _put(items: queue.Queue, item: object, gone: threading.Event, poll: float) -> bool:
    """Put `item` unless the consumer has gone; return False if it has."""
    while not gone.is_set():
        try:
            items.put(item, timeout=poll)
            return True
        except queue.Full:
            continue
    return False
