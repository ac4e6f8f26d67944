"""A task's output as the worker serves it: read once, or followed until the task ends.

A followed task may not have a container yet (scheduled, or waiting out a restart backoff):
the follower waits for one instead of failing. When a container stops, Docker ends its
stream; the follower then goes on with the task's next container (a restart) or ends once
the task is terminal. So a follow ends by itself exactly when the task does.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator, Protocol

from common.query import LogOptions
from worker.containers import RuntimeFailure
from worker.taskdb import TaskDB

log = logging.getLogger(__name__)

POLL = 0.1  # seconds between looks at the task DB while waiting for a container or the end


class LogRuntime(Protocol):
    """The part of the runtime that reads output (DockerRuntime in production)."""

    def stream_logs(self, container_id: str, tail: int | None, stdout: bool, stderr: bool,
                    follow: bool) -> tuple[Iterator[bytes], Callable[[], None]] | None: ...


class TaskLogFollower:
    """Iterates over one task's output lines across its containers until the task ends.

    close() (from any thread) ends the iteration: it stops the waiting and closes the
    container stream being read.
    """

    def __init__(self, db: TaskDB, runtime: LogRuntime, task_id: str, options: LogOptions) -> None:
        self._db = db
        self._runtime = runtime
        self._task_id = task_id
        self._options = options
        self._closed = threading.Event()
        self._guard = threading.Lock()
        self._close_stream: Callable[[], None] = lambda: None

    def __iter__(self) -> Iterator[bytes]:
        tail, streamed = self._options.tail, None
        while not self._closed.is_set():
            task = self._db.get(self._task_id)
            if task is None:
                return
            if task.container_id and task.container_id != streamed:
                streamed = task.container_id
                yield from self._follow_container(task.container_id, tail)
                tail = None  # a later container (a restart) is new output: all of it
            elif task.state.is_terminal:
                return
            else:
                self._closed.wait(POLL)

    def _follow_container(self, container_id: str, tail: int | None) -> Iterator[bytes]:
        try:
            opened = self._runtime.stream_logs(container_id, tail, self._options.stdout, self._options.stderr,
                                               follow=True)
        except RuntimeFailure as exc:
            log.warning("task %s: cannot follow container %s: %s", self._task_id, container_id[:12], exc)
            self.close()
            return
        if opened is None:  # removed already (stopped by DELETE, or collected)
            return
        lines, close = opened
        with self._guard:
            self._close_stream = close
        if self._closed.is_set():
            close()
            return
        try:
            yield from lines
        except RuntimeFailure as exc:
            if not self._closed.is_set():
                log.warning("task %s: %s", self._task_id, exc)
                self.close()
        finally:
            close()

    def close(self) -> None:
        """End the iteration: stop waiting and close the stream being read. Idempotent."""
        self._closed.set()
        with self._guard:
            close = self._close_stream
        close()
