"""Periodic one-pass jobs on APScheduler 3, with a wake-up for new work."""
from __future__ import annotations

import logging
import threading
import time
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

    A wake never gets lost: whether it lands before a pass, during one, or between a pass's
    last look at its work and its end, the job runs once more after it. Each job's state
    (running, woken, due) changes only under one lock, so "is a pass running?" and "was it
    woken since it began?" are answered together: a pass ends only when no wake came since
    it began, and a wake that finds no pass running schedules one.
    """

    def __init__(self, name: str, threads: int = 8) -> None:
        self._name = name
        # max_instances=2: a wake may schedule a run while the previous pass's function is
        # returning (APScheduler still counts it); our lock keeps passes one at a time.
        self._timer = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(threads)},
            job_defaults={"max_instances": 2, "coalesce": True, "misfire_grace_time": None},
            timezone=timezone.utc,
        )
        self._lock = threading.Lock()
        self._state: dict[str, _JobState] = {}
        self._started = False
        self._stopped = False
        self._pass_ended: Callable[[str], None] = lambda job_id: None  # a test's hook

    def add(self, job_id: str, func: Callable[[], object], interval: float) -> None:
        """Run `func` every `interval` seconds, starting now."""
        self._state[job_id] = _JobState()
        self._timer.add_job(self._runner(job_id, func), "interval", seconds=interval, id=job_id,
                            name=f"{self._name}.{job_id}", next_run_time=datetime.now(timezone.utc))

    def _runner(self, job_id: str, func: Callable[[], object]) -> Callable[[], None]:
        state = self._state[job_id]

        def run() -> None:
            with self._lock:
                state.due = False
                if state.running or self._stopped:
                    return  # the pass under way sees the wake (woken is set) and goes again
                state.running = True
            while True:
                with self._lock:
                    state.woken = False
                try:
                    func()
                except Exception:
                    log.exception("job %s.%s failed; it will run again", self._name, job_id)
                with self._lock:
                    if not state.woken or self._stopped:
                        state.running = False
                        break
            self._pass_ended(job_id)
        return run

    def wake(self, job_id: str) -> None:
        """Run the job as soon as possible (or once more, if it is running).

        Wakes are coalesced: while a run is already due or under way, further wakes only
        mark the job woken, so a burst of requests costs one reschedule, not one each."""
        state = self._state[job_id]
        with self._lock:
            state.woken = True
            if state.running or state.due or self._stopped or not self._started:
                return
            state.due = True
        try:
            self._timer.modify_job(job_id, next_run_time=datetime.now(timezone.utc))
        except (JobLookupError, RuntimeError):
            with self._lock:
                state.due = False

    def start(self) -> None:
        """Start the timer thread."""
        with self._lock:
            self._started = True
        self._timer.start()

    def shutdown(self, wait: bool = True, timeout: float = 5.0) -> None:
        """Stop scheduling and wait up to `timeout` seconds for running passes to finish (a
        pass stuck in a call to an engine that does not answer is not waited for). Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if not self._started:
            return
        self._timer.shutdown(wait=False)
        deadline = time.monotonic() + timeout
        while wait and time.monotonic() < deadline:
            with self._lock:
                running = [job_id for job_id, state in self._state.items() if state.running]
            if not running:
                return
            time.sleep(0.05)
        if wait:
            log.warning("jobs %s still under way after %.0f s: not waiting for them", ", ".join(running), timeout)


class _JobState:
    """One job's run state, guarded by Jobs._lock."""

    __slots__ = ("running", "woken", "due")

    def __init__(self) -> None:
        self.running = False  # a pass is under way
        self.woken = False  # a wake came since the current pass began
        self.due = False  # a wake has scheduled a run that has not begun yet
