"""A bounded pool of daemon threads whose shutdown never waits longer than it is told.

concurrent.futures' ThreadPoolExecutor joins its threads at interpreter exit, so one call
stuck in an engine that does not answer holds the process up forever. Here the threads are
daemons and shutdown() waits at most `timeout` seconds for calls under way.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

_STOP = object()


class DaemonPool:
    """Runs submitted calls on `threads` daemon threads, in the order submitted."""

    def __init__(self, threads: int, name: str) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue fn(*args). Raises RuntimeError once the pool is shut down."""
        if self._closed:
            raise RuntimeError("cannot submit to a pool that is shut down")
        self._calls.put((fn, args))

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            if call is _STOP:
                return
            fn, args = call
            try:
                fn(*args)
            except Exception:  # the callers log their own failures; this is the last resort
                log.exception("%s failed", getattr(fn, "__qualname__", fn))

    def shutdown(self, wait: bool = True, cancel_futures: bool = False, timeout: float = 5.0) -> None:
        """Take no more calls; drop the queued ones when `cancel_futures`; wait at most
        `timeout` seconds for the calls under way (when `wait`). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if cancel_futures:
            try:
                while True:
                    self._calls.get_nowait()
            except queue.Empty:
                pass
        for _ in self._threads:
            self._calls.put(_STOP)
        if wait:
            deadline = time.monotonic() + timeout
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            stuck = sum(thread.is_alive() for thread in self._threads)
            if stuck:
                log.warning("%d call(s) still under way after %.0f s; not waiting for them", stuck, timeout)
