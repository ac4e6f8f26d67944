"""Fixtures for API tests: Flask test clients around a Worker and a Manager with in-test fakes.

The fakes stand in for Docker (FakeRuntime) and for HTTP to workers (FakeWorkerClient) so
these tests check the APIs' contract and the worker's/manager's bookkeeping only. They are
never the proof that Orca works with Docker or over the network: that is what the
integration tests (real engine, real processes) are for.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest

from manager.api import create_app as create_manager_app
from manager.manager import Manager
from scheduler import RoundRobin
from task import NotFound, OrcaError, State, Task, TaskEvent, WorkerRejected
from worker.api import create_app as create_worker_app
from worker.runtime import ContainerStatus, RuntimeFailure
from worker.upkeep import Upkeep
from worker.worker import Policy, Worker

WORKER_NAME = "w-test"
STOP_TIMEOUT = 3
WORKERS = ["w1:1", "w2:2"]
STATS = {
    "hostname": "test-host", "cpu_count": 4, "cpu_percent": 12.5, "load_avg": [0.1, 0.2, 0.3],
    "memory": {"total": 8 << 30, "available": 4 << 30, "used": 4 << 30, "percent": 50.0},
    "disk": {"total": 100 << 30, "used": 10 << 30, "free": 90 << 30, "percent": 10.0},
}


def wait_until(predicate: Callable[[], Any], timeout: float = 3.0, interval: float = 0.005) -> Any:
    """Poll `predicate` until it returns something truthy; return it, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


class FakeRuntime:
    """An in-memory container runtime with the worker's Runtime protocol
    (start/stop/remove/inspect/containers).

    Not a proof of Docker behaviour: the integration tests drive the real engine.
    """

    STARTED_AT = "2024-01-01T00:00:01.000Z"
    FINISHED_AT = "2024-01-01T00:00:09.000Z"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.start_calls: list[str] = []  # task ids
        self.stop_calls: list[tuple[str, int]] = []  # (container id, timeout)
        self.remove_calls: list[str] = []  # container ids
        self.live: dict[str, ContainerStatus] = {}  # container id -> status, until removed
        self.start_error: str | None = None  # when set, start() raises RuntimeFailure(start_error)
        self.exit_on_start: int | None = None  # when set, the container has already exited with it
        self.start_gate: threading.Event | None = None  # when set, start() waits for it
        self.start_entered = threading.Event()

    def start(self, task: Task) -> ContainerStatus:
        self.start_entered.set()
        if self.start_gate is not None:
            assert self.start_gate.wait(5), "start_gate was never opened"
        with self._lock:
            self.start_calls.append(task.id)
            if self.start_error is not None:
                raise RuntimeFailure(self.start_error)
            status = ContainerStatus(container_id=f"c-{task.id}", task_id=task.id, running=True,
                                     started_at=self.STARTED_AT, host_ports={"8080/tcp": 32768})
            if self.exit_on_start is not None:
                status = ContainerStatus(container_id=status.container_id, task_id=task.id, running=False,
                                         exit_code=self.exit_on_start, started_at=self.STARTED_AT,
                                         finished_at=self.FINISHED_AT)
            self.live[status.container_id] = status
            return status

    def stop(self, container_id: str, timeout: int) -> ContainerStatus | None:
        with self._lock:
            self.stop_calls.append((container_id, timeout))
            status = self.live.pop(container_id, None)
        if status is None:
            return None
        return ContainerStatus(container_id=container_id, task_id=status.task_id, running=False,
                               exit_code=137, started_at=status.started_at, finished_at=self.FINISHED_AT)

    def remove(self, container_id: str) -> None:
        with self._lock:
            self.remove_calls.append(container_id)
            self.live.pop(container_id, None)

    def inspect(self, container_id: str) -> ContainerStatus | None:
        with self._lock:
            return self.live.get(container_id)

    def containers(self) -> list[ContainerStatus]:
        with self._lock:
            return list(self.live.values())

    def running_ids(self) -> set[str]:
        with self._lock:
            return {container_id for container_id, status in self.live.items() if status.running}

    def exit(self, container_id: str, exit_code: int, oom_killed: bool = False) -> None:
        """Make a container exit by itself (as if its process ended)."""
        with self._lock:
            status = self.live[container_id]
            self.live[container_id] = ContainerStatus(
                container_id=container_id, task_id=status.task_id, running=False, exit_code=exit_code,
                oom_killed=oom_killed, started_at=status.started_at, finished_at=self.FINISHED_AT)


class FakeWorkerClient:
    """The manager's WorkerAPI (send_event/stop_task/changes/stats) over an in-memory model of
    the workers: each address keeps its copies of the tasks it was sent and a change counter.

    `fail(method, address, error)` makes calls of `method` to `address` raise `error`
    (address "*" for every worker) until `heal()`. `report(address, task_id, **fields)`
    changes a worker's copy of a task, as its own jobs would.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []  # (address, event JSON), delivered only
        self.stops: list[tuple[str, str]] = []  # (address, task id), delivered only
        self.purged: list[tuple[str, str]] = []  # (address, task id) forgotten by purge_task
        self._tasks: dict[str, dict[str, dict[str, Any]]] = {}  # address -> task id -> copy
        self._changed: dict[str, dict[str, int]] = {}  # address -> task id -> version
        self._versions: dict[str, int] = {}
        self._errors: dict[tuple[str, str], Exception] = {}
        self.engines: dict[str, dict[str, Any]] = {}  # address -> engine report /health gives

    def fail(self, method: str, address: str, error: Exception) -> None:
        self._errors[(method, address)] = error

    def heal(self) -> None:
        self._errors.clear()

    def _check(self, method: str, address: str) -> None:
        error = self._errors.get((method, address)) or self._errors.get((method, "*"))
        if error is not None:
            raise error

    def report(self, address: str, task_id: str, **fields: Any) -> None:
        """Change (or create) the worker's copy of a task."""
        copy_ = self._tasks.setdefault(address, {}).setdefault(task_id, {"id": task_id, "node": address,
                                                                          "attempt": 1})
        copy_.update(fields)
        self._versions[address] = self._versions.get(address, 1000) + 1
        copy_["version"] = self._versions[address]
        self._changed.setdefault(address, {})[task_id] = self._versions[address]

    def send_event(self, address: str, event: TaskEvent) -> dict[str, Any]:
        self._check("send_event", address)
        sent = event.to_dict()
        self.sent.append((address, sent))
        held = self._tasks.get(address, {}).get(sent["task"]["id"])
        if held is None or held["attempt"] < sent["attempt"]:  # a new attempt; a repeat changes nothing
            self.report(address, sent["task"]["id"], **{**Task.from_dict(sent["task"]).to_dict(),
                                                      "state": "scheduled", "node": address,
                                                      "attempt": sent["attempt"],
                                                      "restart_count": sent["restart_count"]})
        return dict(self._tasks[address][sent["task"]["id"]])

    def send_orders(self, address: str, events: list[TaskEvent]) -> list[Any]:
        """A batch: each run as send_event, each stop as stop_task (their faults included),
        an error answering only its own event."""
        answers: list[Any] = []
        for event in events:
            try:
                if event.state is State.COMPLETED:
                    answers.append(self.stop_task(address, event.task.id, event.task.attempt))
                else:
                    answers.append(self.send_event(address, event))
            except OrcaError as exc:
                answers.append(exc)
        return answers

    def stop_task(self, address: str, task_id: str, attempt: int | None = None) -> dict[str, Any]:
        self._check("stop_task", address)
        if task_id not in self._tasks.get(address, {}):
            if attempt is None:
                raise NotFound(f"task {task_id} not found on worker {address}")
            self.report(address, task_id, state="completed", attempt=attempt)  # as a worker's tombstone
            self.stops.append((address, task_id))
            return dict(self._tasks[address][task_id])
        self.stops.append((address, task_id))
        self.report(address, task_id, state="completed", exit_code=137, finished_at=FakeRuntime.FINISHED_AT)
        return dict(self._tasks[address][task_id])

    def purge_task(self, address: str, task_id: str) -> dict[str, Any]:
        """DELETE ?purge=true: forget a finished copy (as worker/retention.py does)."""
        self._check("purge_task", address)
        held = self._tasks.get(address, {}).get(task_id)
        if held is None:
            raise NotFound(f"task {task_id} not found on worker {address}")
        if held.get("state") not in ("completed", "failed"):
            raise WorkerRejected(f"task {task_id} is {held.get('state')} on worker {address}")
        del self._tasks[address][task_id]
        self._changed.get(address, {}).pop(task_id, None)
        self.purged.append((address, task_id))
        return held

    def changes(self, address: str, since: int, wait: float = 0.0) -> tuple[str, int, list[dict[str, Any]]]:
        self._check("changes", address)
        changed = self._changed.get(address, {})
        tasks = [dict(self._tasks[address][i]) for i, v in changed.items() if v > since]
        return f"instance-{address}", self._versions.get(address, 0), tasks

    def stats(self, address: str) -> dict[str, Any]:
        self._check("stats", address)
        active = [t for t in self._tasks.get(address, {}).values() if t.get("state") in ("scheduled", "running")]
        return {**STATS, "task_count": len(active)}

    def health(self, address: str) -> dict[str, Any]:
        """The worker's /health; `engines[address]` overrides its engine report."""
        self._check("health", address)
        engine = self.engines.get(address, {"reachable": True, "version": "20.10", "api_version": "1.41"})
        return {"status": "ok" if engine.get("reachable") is not False else "unavailable", "docker": dict(engine)}


@pytest.fixture
def wait():
    """The polling helper, for waiting on the worker's thread pool."""
    return wait_until


@pytest.fixture
def runtime():
    return FakeRuntime()


@pytest.fixture
def worker(runtime):
    worker = Worker(WORKER_NAME, runtime, Policy(stop_timeout=STOP_TIMEOUT), threads=4)
    Upkeep(worker).adopt()  # nothing to adopt: the worker is ready
    yield worker
    worker.close()


@pytest.fixture
def worker_app(worker):
    return create_worker_app(worker, stats=lambda: dict(STATS))


@pytest.fixture
def worker_client(worker_app):
    return worker_app.test_client()


@pytest.fixture
def fake_workers():
    return FakeWorkerClient()


class FakeClock:
    """A monotonic clock that moves only when told (retry backoffs, liveness periods)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def manager(fake_workers, clock):
    return Manager(list(WORKERS), fake_workers, RoundRobin(), clock=clock)


@pytest.fixture
def manager_client(manager):
    return create_manager_app(manager).test_client()

