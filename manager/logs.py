"""Task output through the manager: relayed from the worker that runs the task.

A follow outlives the task's placement: a task not placed yet is waited for (never an
error), and when the connection to its worker breaks while the task is not finished, the
follow reconnects to wherever the task runs then (its worker again, or the worker it moved
to), going on from the newest line. It ends when the worker ends the stream, which the
worker does when the task ends.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Generator, Iterator

from common.query import LogOptions
from manager.manager import Manager
from task import NotFound, Task, WorkerRejected, WorkerUnavailable

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024  # bytes of output a run-to-completion answer carries (the end of it)
RETRY = 0.5  # seconds before reconnecting to a worker
PLACEMENT_POLL = 1.0  # seconds per wait for placement (then shutdown and close are checked)

ENDED, MISSING, BROKEN = "ended", "missing", "broken"


def _nothing() -> None:
    return None


class TaskLogs:
    """Reads and follows tasks' output through the manager's worker client."""

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    def read(self, task: Task, options: LogOptions) -> tuple[Iterator[bytes], Callable[[], None]]:
        """The output so far from the task's worker: (chunks, close). Empty for a task not
        placed yet, or one its worker does not have (yet, or any more).

        Raises:
            WorkerUnavailable: the worker does not answer.
        """
        address = address_of(self._manager, task.node)
        if address is None:
            return iter(()), _nothing
        try:
            return self._manager.client.open_logs(address, task.id, options.params(follow=False), follow=False)
        except NotFound:
            return iter(()), _nothing

    def follower(self, task_id: str, options: LogOptions) -> "TaskLogFollower":
        """An iterable over the task's output lines until it ends (see TaskLogFollower)."""
        return TaskLogFollower(self._manager, task_id, options)

    def capture(self, task: Task, limit: int = OUTPUT_LIMIT) -> dict[str, Any]:
        """The task's output (stdout and stderr interleaved), keeping the last `limit` bytes.

        Returns:
            {"text", "bytes" (the whole output's size), "truncated" (bool), "cut" ("head"
            when the beginning was dropped, else None)}, plus "error" when the worker could
            not be read.
        """
        kept, total = bytearray(), 0
        try:
            chunks, close = self.read(task, LogOptions())
            try:
                for chunk in chunks:
                    total += len(chunk)
                    kept += chunk
                    if len(kept) > limit:
                        del kept[:len(kept) - limit]
            finally:
                close()
        except (WorkerUnavailable, WorkerRejected) as exc:
            log.warning("task %s: output unavailable: %s", task.id, exc)
            return {"text": "", "bytes": 0, "truncated": False, "cut": None, "error": f"output unavailable: {exc}"}
        truncated = total > len(kept)
        data = _from_char_start(bytes(kept)) if truncated else bytes(kept)
        return {"text": data.decode("utf-8", "replace"), "bytes": total, "truncated": truncated,
                "cut": "head" if truncated else None}


class TaskLogFollower:
    """Iterates over one task's output lines, relayed from its worker, until the task ends.

    close() (from any thread) ends the iteration and closes the worker stream being read.
    """

    def __init__(self, manager: Manager, task_id: str, options: LogOptions) -> None:
        self._manager = manager
        self._task_id = task_id
        self._options = options
        self._closed = threading.Event()
        self._guard = threading.Lock()
        self._close_stream: Callable[[], None] = _nothing
        self._failing = False  # the last try to reach the worker failed (log each outage once)

    def __iter__(self) -> Iterator[bytes]:
        tail = self._options.tail
        while not self._closed.is_set():
            task = self._placed()
            if task is None or task.node is None:  # closed, or finished without being placed
                return
            outcome = yield from self._follow_on(task, tail)
            if outcome == ENDED or self._manager.get(self._task_id).state.is_terminal:
                return
            if outcome == BROKEN:
                tail = 0  # reconnecting: go on from the newest line, without repeating
            self._closed.wait(RETRY)

    def _placed(self) -> Task | None:
        """Wait until the task is on a worker or finished; None when closed or shutting down."""
        def placed(task: Task) -> bool:
            return task.node is not None or task.state.is_terminal

        while not self._closed.is_set() and self._manager.accepting:
            task, ready = self._manager.wait_task(self._task_id, placed, PLACEMENT_POLL)
            if ready:
                return task
        return None

    def _follow_on(self, task: Task, tail: int | None) -> Generator[bytes, None, str]:
        """Relay the task's stream from its worker; return ENDED, MISSING or BROKEN."""
        address = address_of(self._manager, task.node)
        if address is None:
            return MISSING
        params = LogOptions(tail=tail, follow=True, stream=self._options.stream).params()
        try:
            chunks, close = self._manager.client.open_logs(address, task.id, params, follow=True)
        except NotFound:  # placement in flight: the worker does not have the task yet
            return MISSING
        except WorkerRejected as exc:
            log.warning("task %s: worker %s refused its output: %s", task.id, task.node, exc)
            return ENDED
        except WorkerUnavailable as exc:
            if not self._closed.is_set() and not self._failing:
                log.info("task %s: cannot follow its output on %s yet (retrying): %s", task.id, task.node, exc)
            self._failing = True
            return BROKEN
        self._failing = False
        with self._guard:
            self._close_stream = close
        try:
            if self._closed.is_set():
                return ENDED
            yield from chunks
            return ENDED
        except WorkerUnavailable as exc:
            if not self._closed.is_set():
                log.info("task %s: output stream from %s broke: %s", task.id, task.node, exc)
            return BROKEN
        finally:
            close()

    def close(self) -> None:
        """End the iteration and close the worker stream being read. Idempotent."""
        self._closed.set()
        with self._guard:
            close = self._close_stream
        close()


def address_of(manager: Manager, node_name: str | None) -> str | None:
    """The address of the worker named `node_name`, or None."""
    if node_name is None:
        return None
    return next((node.address for node in manager.nodes() if node.name == node_name), None)


def _from_char_start(data: bytes) -> bytes:
    """Drop the UTF-8 continuation bytes a cut left at the start (at most three)."""
    skip = 0
    while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
        skip += 1
    return data[skip:]
