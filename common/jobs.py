"""Periodic one-pass jobs on APScheduler 3, with a wake-up for new work."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)
# APScheduler logs every run at INFO; ours say what matters themselves.
logging.getLogger("apscheduler").setLevel(logging.WARNING)


class Jobs:
    """A set of named periodic passes. Each pass runs in its own try; wake() runs one now.

    A wake that arrives while the pass is running makes it run once more right after, so new
    work never waits for the next tick.
    """

    def __init__(self, name: str, threads: int = 8) -> None:
        self._name = name
        self._timer = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(threads)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=timezone.utc,
        )
        self._dirty: dict[str, threading.Event] = {}
        self._running: dict[str, bool] = {}
        self._started = False
        self._stopped = False

    def add(self, job_id: str, func: Callable[[], object], interval: float) -> None:
        """Run `func` every `interval` seconds, starting now."""
        self._dirty[job_id] = threading.Event()
        self._running[job_id] = False
        self._timer.add_job(self._runner(job_id, func), "interval", seconds=interval, id=job_id,
                            name=f"{self._name}.{job_id}", next_run_time=datetime.now(timezone.utc))

    def _runner(self, job_id: str, func: Callable[[], object]) -> Callable[[], None]:
        dirty = self._dirty[job_id]

        def run() -> None:
            self._running[job_id] = True
            try:
                while not self._stopped:
                    dirty.clear()
                    try:
                        func()
                    except Exception:
                        log.exception("job %s.%s failed; it will run again", self._name, job_id)
                    if not dirty.is_set():
                        break
            finally:
                self._running[job_id] = False
        return run

    def wake(self, job_id: str) -> None:
        """Run the job as soon as possible (or once more, if it is running).

        Wakes are coalesced: while a run is already due, further wakes only mark the job
        dirty, so a burst of requests costs one reschedule, not one each."""
        dirty = self._dirty[job_id]
        if dirty.is_set() or self._running[job_id] or self._stopped or not self._started:
            dirty.set()
            return
        dirty.set()
        try:
            self._timer.modify_job(job_id, next_run_time=datetime.now(timezone.utc))
        except (JobLookupError, RuntimeError):
            pass

    def start(self) -> None:
        """Start the timer thread."""
        self._timer.start()
        self._started = True

    def shutdown(self, wait: bool = True) -> None:
        """Stop scheduling and wait for running passes to finish. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self._timer.shutdown(wait=wait)
