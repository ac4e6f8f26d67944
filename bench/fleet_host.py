"""Many simulated workers in one process, for bench/fleet.py.

Each simulated worker is Orca's real worker: worker.worker.Worker behind the real Flask app
of worker/api.py, served over HTTP on its own loopback port. What is simulated is below
the worker: a fake container runtime (a container "starts" at once and runs until stopped;
no Docker), and the plumbing is shared by all the workers of the process so that hundreds
fit in one: one waitress server listening on every port (a thread per held long poll), one
thread pool for the container operations, one host-stats reading, one thread waking the
workers' run_pending. Nothing of the manager is simulated.

    python -m bench.fleet_host COUNT      # prints one line of JSON: {"addresses": [...]}, then serves
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from waitress.server import create_server

from node import stats as host_stats
from task import Task, utc_now
from worker.api import create_app
from worker.containers import ATTEMPT_LABEL, RESTART_LABEL, TASK_LABEL, WORKER_LABEL, ContainerStatus
from worker.upkeep import Upkeep
from worker.worker import Policy, Worker

_ids = itertools.count(1)


class InstantRuntime:
    """The worker's Runtime protocol without Docker: start() makes a running "container" at
    once; it runs until stopped. Thread-safe (the worker starts containers from a pool)."""

    def __init__(self, worker_name: str) -> None:
        self._name = worker_name
        self._lock = threading.Lock()
        self._live: dict[str, ContainerStatus] = {}

    def start(self, task: Task) -> ContainerStatus:
        labels = {TASK_LABEL: task.id, WORKER_LABEL: self._name, ATTEMPT_LABEL: str(task.attempt),
                  RESTART_LABEL: str(task.restart_count)}
        status = ContainerStatus(container_id=f"fake{next(_ids):012d}", task_id=task.id, running=True,
                                 started_at=utc_now(), labels=labels)
        with self._lock:
            self._live[status.container_id] = status
        return status

    def stop(self, container_id: str, timeout: int) -> ContainerStatus | None:
        with self._lock:
            status = self._live.pop(container_id, None)
        if status is None:
            return None
        return ContainerStatus(container_id=container_id, task_id=status.task_id, running=False, exit_code=137,
                               started_at=status.started_at, finished_at=utc_now(), labels=status.labels)

    def remove(self, container_id: str) -> None:
        with self._lock:
            self._live.pop(container_id, None)

    def inspect(self, container_id: str) -> ContainerStatus | None:
        with self._lock:
            return self._live.get(container_id)

    def containers(self) -> list[ContainerStatus]:
        with self._lock:
            return list(self._live.values())


class Host:
    """COUNT workers on COUNT ephemeral loopback ports, served by one waitress server."""

    def __init__(self, count: int) -> None:
        self._apps: dict[str, Any] = {}
        self._dirty: set[Worker] = set()
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(16, thread_name_prefix="fleet-start")
        self._stats = host_stats.collect()
        self.server = create_server(self._dispatch, listen=" ".join(["127.0.0.1:0"] * count),
                                    threads=count + 32, connection_limit=count * 4 + 100, channel_timeout=600,
                                    ident="orca-fleet", asyncore_use_poll=True)  # select() stops at fd 1023
        listening = getattr(self.server, "effective_listen", None) or [(self.server.effective_host,
                                                                         self.server.effective_port)]
        self.addresses = [f"{host}:{port}" for host, port in listening]
        for address in self.addresses:
            self._apps[address.rsplit(":", 1)[1]] = self._worker_app(address)
        threading.Thread(target=self._run_pending, name="fleet-run-pending", daemon=True).start()

    def _worker_app(self, address: str) -> Any:
        worker = Worker(address, InstantRuntime(address), Policy(), executor=self._pool)
        Upkeep(worker).adopt()
        worker.record_engine({"reachable": True, "version": "fake", "api_version": "fake"})
        worker.on_work = lambda: self._mark(worker)
        return create_app(worker, stats=lambda: self._stats)

    def _mark(self, worker: Worker) -> None:
        self._dirty.add(worker)
        self._wake.set()

    def _run_pending(self) -> None:
        """The workers' run_pending job, for all of them on one thread, woken by new work."""
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            for worker in list(self._dirty):
                self._dirty.discard(worker)
                worker.run_pending()

    def _dispatch(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._apps[environ["SERVER_PORT"]](environ, start_response)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    host = Host(int(sys.argv[1]))
    print(json.dumps({"addresses": host.addresses}), flush=True)
    # Nothing more on stdout: a pipe nobody reads would fill and freeze the server (waitress
    # prints its "Serving on" lines there).
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    host.server.run()


if __name__ == "__main__":
    main()
