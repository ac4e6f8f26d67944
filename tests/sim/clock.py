"""The simulation's time and concurrency: one fake clock, and executors whose calls run as steps."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class FakeClock:
    """One shared `now` (seconds) for the manager and every worker; only advance() moves it."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward (never back)."""
        self.now += max(0.0, seconds)


@dataclass
class StepExecutor:
    """A worker's pool: submit() queues the call; the driver runs queued calls one per step,
    in any order (that is how the pool's threads interleave). shutdown() drops the queue."""

    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = field(default_factory=list)
    closed: bool = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue fn(*args) for a later step (dropped after shutdown, as a pool refuses it)."""
        if not self.closed:
            self.calls.append((fn, args))

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Drop every queued call: they die with the process."""
        self.closed = True
        self.calls.clear()

    def run_one(self, index: int = 0) -> bool:
        """Run the queued call at `index` (modulo the queue); False when nothing is queued."""
        if not self.calls:
            return False
        fn, args = self.calls.pop(index % len(self.calls))
        fn(*args)
        return True

    def run_all(self, limit: int = 1000) -> int:
        """Run queued calls (and those they queue) in order, up to `limit`; return how many."""
        count = 0
        while self.calls and count < limit:
            self.run_one(0)
            count += 1
        return count
