"""A worker host: its container engine (which outlives the worker process) and the current
incarnation of the worker process, with the process faults crash, freeze and 503."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from tests.sim.clock import FakeClock, StepExecutor
from tests.sim.runtime import FakeRuntime
from worker.retention import Purger
from worker.upkeep import Upkeep
from worker.worker import Policy, Worker

POLICY = Policy(stop_timeout=1, restart_backoff=1.0, restart_backoff_cap=30.0, gc_after=600.0)


@dataclass
class WorkerHost:
    """One machine running a worker. `worker` is None while the process is down."""

    name: str
    clock: FakeClock
    gc_wall_clock: float = 0.0  # Upkeep's wall clock: 0 never collects finished tasks, 1e12 at once
    runtime: FakeRuntime = field(init=False)
    worker: Worker | None = None
    upkeep: Upkeep | None = None
    purger: Purger | None = None
    retention: float | None = None  # the worker's ORCA_RETENTION (None: its own pass purges nothing)
    wall_clock: Callable[[], float] = lambda: 0.0  # the purger's wall clock
    executor: StepExecutor | None = None
    incarnation: int = 0
    instance: str = ""
    partitioned: bool = False
    frozen: bool = False
    unavailable: bool = False  # every task request and /stats answers 503
    cut_count: int = 0  # times this host was cut off (partition, freeze, crash, declared lost)

    def __post_init__(self) -> None:
        self.runtime = FakeRuntime(self.name)

    @property
    def reachable(self) -> bool:
        """False while a request to it gets no answer at all."""
        return self.worker is not None and not self.partitioned and not self.frozen

    @property
    def why_unreachable(self) -> str:
        return "crashed" if self.worker is None else "partitioned" if self.partitioned else "frozen"

    @property
    def cut_off(self) -> bool:
        """True while the manager cannot talk to it."""
        return not self.reachable

    @property
    def runs(self) -> bool:
        """True while its process exists and is not frozen (its own steps can run)."""
        return self.worker is not None and not self.frozen

    def boot(self) -> None:
        """Start a new worker process (not ready until adopt())."""
        self.incarnation += 1
        self.instance = f"{self.name}-incarnation-{self.incarnation}"
        self.executor = StepExecutor()
        first = self.incarnation * 10**12 + int(self.clock.now * 1000)
        self.worker = Worker(self.name, self.runtime, POLICY, executor=self.executor, clock=self.clock,
                             first_version=first)
        self.upkeep = Upkeep(self.worker, wall_clock=lambda: self.gc_wall_clock)
        self.purger = Purger(self.worker, self.retention, wall_clock=lambda: self.wall_clock())

    def adopt(self) -> None:
        """The service's start-up: record the engine state and adopt containers (the worker
        stays not ready if the engine does not answer)."""
        assert self.worker is not None and self.upkeep is not None
        self.worker.record_engine(self.runtime.engine_status())
        if not self.worker.ready:
            try:
                self.upkeep.adopt()
            except Exception:  # RuntimeFailure: tried again at the next step
                pass

    def crash(self) -> None:
        """kill -9: the process, its queue and its DB are gone; containers stay."""
        if self.executor is not None:
            self.executor.shutdown()
        self.worker = self.upkeep = self.executor = self.purger = None
        self.cut_count += 1
