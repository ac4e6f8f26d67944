"""The simulated cluster: one real Manager over a store that survives its crashes, real
Workers on fake hosts, a fake clock and the simulated network. Every operation the driver
and the regression tests use is a method here."""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from manager.manager import Manager
from scheduler.round_robin import RoundRobin
from store import MemoryStore
from task import Conflict, NotFound, Task, TaskEvent, Unavailable
from tests.sim.clock import FakeClock
from tests.sim.host import WorkerHost
from tests.sim.net import ManagerCrash, SimNetwork
from worker.runtime import ContainerEvent, RuntimeFailure

DOWN_AFTER = 3
MARGIN = 15.0
FRESH_FOR = 2.5  # odd seeds: ManagerService's fresh_for at ORCA_STATS_INTERVAL=5 (manager/liveness.py)


@dataclass
class World:
    """Everything one run needs, built from a seed."""

    seed: int
    n_workers: int = 3
    store: Any = None
    gc_wall_clock: float = 0.0
    verbose: bool = False
    clock: FakeClock = field(default_factory=FakeClock)
    rng: random.Random = field(init=False)
    hosts: dict[str, WorkerHost] = field(default_factory=dict)
    net: SimNetwork = field(init=False)
    manager: Manager | None = None
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # exceptions that escaped a pass
    max_tasks: int = 10  # tasks the random schedule submits at most (tests/sim/driver.py)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        random.seed(self.seed)  # the worker's restart jitter uses the global generator
        self.store = self.store if self.store is not None else MemoryStore()
        for i in range(self.n_workers):
            host = WorkerHost(f"w{i}", self.clock, gc_wall_clock=self.gc_wall_clock)
            host.boot()
            host.adopt()
            self.hosts[host.name] = host
        self.net = SimNetwork(self.hosts, self.rng, trace=self.trace)
        self.start_manager()

    # ----- bookkeeping

    def trace(self, line: str) -> None:
        """Keep a line of the trace (printed as it happens when verbose)."""
        self.lines.append(line)
        if self.verbose:
            print(line)

    def new_id(self) -> str:
        """A task id drawn from the seed."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def manager_call(self, name: str, fn: Callable[[Manager], Any]) -> Any:
        """Run fn(manager); a ManagerCrash inside kills the manager; any other exception is
        recorded as an error of the pass."""
        if self.manager is None:
            return None
        try:
            return fn(self.manager)
        except ManagerCrash as exc:
            self.trace(f"  ! {exc}")
            self.manager = None
        except (Unavailable, Conflict, NotFound):
            raise
        except Exception as exc:  # noqa: BLE001 - a pass must never raise
            self.errors.append(f"{name} raised {type(exc).__name__}: {exc}")
            self.trace(f"  ! {name} raised {type(exc).__name__}: {exc}")
        return None

    # ----- the manager

    def start_manager(self) -> None:
        """A new manager process over the same store (memory state is lost)."""
        self.manager = Manager(list(self.hosts), self.net, RoundRobin(), store=self.store, down_after=DOWN_AFTER,
                               clock=self.clock, disconnect_margin=MARGIN)

    def crash_manager(self) -> None:
        """kill -9 of the manager between two steps."""
        self.manager = None

    def submit(self, restart_policy: str = "on-failure", max_restarts: int = 3,
               stop_after_disconnect: float | None = None) -> Task | None:
        """A user's POST /tasks; the returned copy is the acknowledgement (None: refused)."""
        task_id = self.new_id()
        task = Task(id=task_id, name=f"sim-{task_id[:8]}", image="busybox:latest", restart_policy=restart_policy,
                    max_restarts=max_restarts, stop_after_disconnect=stop_after_disconnect)
        event = TaskEvent(task=task, id=self.new_id())
        try:
            return self.manager_call("submit", lambda m: m.submit(event))
        except Unavailable:
            return None

    def stop(self, task_id: str) -> Task | None:
        """A user's DELETE; the returned copy is the acknowledgement (None: refused)."""
        try:
            return self.manager_call("stop", lambda m: m.stop(task_id))
        except (Conflict, NotFound, Unavailable):
            return None

    def dispatch(self) -> None:
        self.manager_call("dispatch_pending", lambda m: m.dispatch_pending())

    def sync_nodes(self) -> None:
        def sync(manager: Manager) -> None:
            if self.seed % 2:  # odd seeds: as the service runs it, a node whose feed answered lately is not asked
                manager.fresh_for, manager.refresh_after = FRESH_FOR, 3 * FRESH_FOR
            manager.sync_nodes()
        self.manager_call("sync_nodes", sync)

    def sync_tasks(self) -> None:
        self.manager_call("sync_tasks", lambda m: m.sync_tasks())

    def watch(self, name: str) -> None:
        self.manager_call("watch_tasks", lambda m: m.watch_tasks(name, wait=0.0, block=False))

    # ----- the workers

    def worker_step(self, name: str, step: str, index: int = 0) -> None:
        """One job of a worker process (nothing if it is down or frozen)."""
        host = self.hosts[name]
        if not host.runs:
            return
        worker, upkeep = host.worker, host.upkeep
        assert worker is not None and upkeep is not None and host.executor is not None
        try:
            if step == "adopt":
                host.adopt()
            elif step == "run_pending":
                worker.run_pending()
            elif step == "exec":
                host.executor.run_one(index)
            elif step == "sync_states":
                worker.sync_states()
            elif step == "stop_disconnected":
                upkeep.stop_disconnected()
            elif step == "collect_garbage":
                if worker.engine.get("reachable") is not False:
                    upkeep.collect_garbage()
            elif step == "engine_check":
                worker.record_engine(host.runtime.engine_status())
        except RuntimeFailure:
            pass  # the service logs it and tries again at the next pass
        except Exception as exc:  # noqa: BLE001 - a worker job must never raise
            self.errors.append(f"worker {name} {step} raised {type(exc).__name__}: {exc}")
            self.trace(f"  ! worker {name} {step} raised {type(exc).__name__}: {exc}")

    def exit_container(self, name: str, container_id: str, code: int, notify: bool = True) -> None:
        """A container's process ends; the worker hears of it from the event stream if `notify`."""
        host = self.hosts[name]
        status = host.runtime.containers_by_id[container_id]
        host.runtime.exit(container_id, code)
        if notify and host.runs and host.worker is not None and host.worker.ready:
            host.worker.on_container_event(ContainerEvent(status.task_id or "", container_id, "die"))

    def crash_worker(self, name: str) -> None:
        self.hosts[name].crash()

    def restart_worker(self, name: str) -> None:
        """Boot a new process on a crashed host (it adopts at its 'adopt' step)."""
        host = self.hosts[name]
        if host.worker is None:
            host.boot()

    # ----- quiescence

    def heal(self) -> None:
        """End every fault: heal partitions, thaw, restart crashed workers and the manager,
        bring engines back, stop message faults, deliver what is still in flight."""
        self.net.fault_rate, self.net.crash_manager, self.net.interleave = 0.0, False, None
        for host in self.hosts.values():
            host.partitioned = host.frozen = host.unavailable = host.runtime.down = False
            host.runtime.fail_next_start = False
            if host.worker is None:
                host.boot()
            host.adopt()
        if self.manager is None:
            self.start_manager()
        while self.net.deliver_one(0):
            pass

    def round(self) -> None:
        """Every periodic job once, after a second of time."""
        self.clock.advance(1.0)
        self.sync_nodes()
        self.sync_tasks()
        self.dispatch()
        for name, host in self.hosts.items():
            for step in ("engine_check", "adopt", "sync_states", "stop_disconnected", "collect_garbage",
                         "run_pending"):
                self.worker_step(name, step)
            if host.executor is not None:
                host.executor.run_all()
        self.sync_tasks()

    def fingerprint(self) -> tuple:
        """What must stop changing at quiescence (plus the work still waiting for a timer)."""
        m = self.manager
        tasks = tuple((t.id, t.state.value, t.attempt, t.node, t.desired_state) for t in m.list()) if m else ()
        running = tuple(sorted((h.name, s.container_id) for h in self.hosts.values() for s in h.runtime.running()))
        waiting = bool(m and (m.pending_count() or m._kills or any(m._deferred.values())))
        waiting = waiting or any(h.worker is not None and (h.worker._delayed or h.executor.calls)
                                 for h in self.hosts.values())
        return tasks, running, waiting

    def quiesce(self, max_rounds: int = 400) -> int:
        """heal(), then rounds until nothing changes and no timer is pending; returns rounds."""
        self.heal()
        same, previous = 0, None
        for count in range(1, max_rounds + 1):
            self.round()
            current = self.fingerprint()
            same = same + 1 if current == previous and not current[2] else 0
            previous = current
            if same >= 3:
                return count
        raise AssertionError(f"no quiescence after {max_rounds} rounds: {previous}")
