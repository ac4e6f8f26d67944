"""Reading containers' output from Docker: part of the Docker adapter (see worker/runtime.py).

Docker sends a container's output as frames; a follow is re-cut into lines, a plain read into
batches of about BATCH bytes. Either stream can be closed from another thread, which is how
a follow whose client left, or a worker shutting down, stops a read blocked on the socket.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator

import docker
from docker.errors import APIError, DockerException, NotFound
from requests.exceptions import RequestException

from worker.containers import RuntimeFailure, explain

MAX_LINE = 64 * 1024  # a followed line longer than this is sent in pieces
BATCH = 64 * 1024  # bytes per chunk of a non-following read


class DockerLogs:
    """The output-reading half of DockerRuntime (a mixin: it needs `self._client`)."""

    _client: docker.DockerClient

    def logs(self, container_id: str, tail: int | None = None, stdout: bool = True,
             stderr: bool = True) -> bytes | None:
        """The container's output so far (its last `tail` lines; all when None), or None when
        the container no longer exists. Raises RuntimeFailure."""
        opened = self.stream_logs(container_id, tail, stdout, stderr, follow=False)
        if opened is None:
            return None
        chunks, close = opened
        try:
            return b"".join(chunks)
        finally:
            close()

    def stream_logs(self, container_id: str, tail: int | None, stdout: bool, stderr: bool,
                    follow: bool) -> tuple[Iterator[bytes], Callable[[], None]] | None:
        """Open the container's output (stdout and stderr interleaved as written).

        Args:
            tail: start with the last `tail` lines; None: with the first line.
            follow: keep reading as the container writes; the stream ends when it stops.
        Returns:
            (chunks, close), or None when the container no longer exists. Following, each
            chunk is one line (a line longer than MAX_LINE comes in pieces); otherwise chunks
            are batches of lines. close() ends the stream from another thread. Reading
            raises RuntimeFailure when the engine goes away.
        Raises:
            RuntimeFailure: the engine cannot be reached.
        """
        try:
            stream = self._client.api.logs(container_id, stdout=stdout, stderr=stderr, stream=True,
                                           follow=follow, tail="all" if tail is None else int(tail))
        except NotFound:
            return None
        except (APIError, DockerException, RequestException) as exc:
            raise RuntimeFailure(f"docker could not read the output of container {container_id[:12]}: "
                                 f"{explain(exc)}") from None
        chunks = _lines(stream) if follow else _batches(stream)
        return _reading(chunks, container_id), closer(stream)


def _lines(frames: Iterable[bytes]) -> Iterator[bytes]:
    """Re-cut Docker's frames into lines, each ending in a newline (but perhaps the last)."""
    pending = b""
    for frame in frames:
        pending += frame
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
        while len(pending) >= MAX_LINE:
            yield pending[:MAX_LINE]
            pending = pending[MAX_LINE:]
    if pending:
        yield pending


def _batches(frames: Iterable[bytes]) -> Iterator[bytes]:
    """Join Docker's frames (one per line) into chunks of about BATCH bytes."""
    batch: list[bytes] = []
    size = 0
    for frame in frames:
        batch.append(frame)
        size += len(frame)
        if size >= BATCH:
            yield b"".join(batch)
            batch, size = [], 0
    if batch:
        yield b"".join(batch)


def closer(stream: Any) -> Callable[[], None]:
    """stream.close() made safe to call more than once and from any thread."""
    done = threading.Event()

    def close() -> None:
        if not done.is_set():
            done.set()
            try:
                stream.close()
            except (OSError, AttributeError, ValueError):
                pass  # already closed under us
    return close


def _reading(chunks: Iterator[bytes], container_id: str) -> Iterator[bytes]:
    """Turn a broken read of a container's output into RuntimeFailure."""
    try:
        yield from chunks
    except (APIError, DockerException, RequestException, OSError, ValueError, AttributeError) as exc:
        # a socket closed by close() from another thread surfaces as any of these
        raise RuntimeFailure(f"reading the output of container {container_id[:12]} stopped: "
                             f"{explain(exc)}") from None
