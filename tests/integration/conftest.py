"""Real Orca processes (`python main.py ...`) on free loopback ports against the real engine."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("completed", "failed")


# Below the kernel's ephemeral range (32768-60999 here): a port the OS hands to bind(0) or to
# an outgoing connection can be taken again between this probe and the process's own bind.
PORTS = range(20000, 32000)


def free_ports(count: int) -> int:
    """Return the first of `count` consecutive free loopback ports, outside the ephemeral range."""
    for _ in range(200):
        base = random.randrange(PORTS.start, PORTS.stop - count)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no run of free ports found")



def split_cluster(cluster, workers: int = 2, **overrides):
    """A manager process and `workers` worker processes (named <prefix>-w<i>), each killable on its own."""
    base = free_ports(workers + 1)
    procs = [cluster.start("worker", workers=1, ORCA_MANAGER_PORT=str(base), ORCA_WORKER_PORT=str(base + 1 + i),
                           ORCA_WORKER_NAME=f"{cluster.prefix}-w{i}", **overrides) for i in range(workers)]
    addresses = ",".join(f"127.0.0.1:{base + 1 + i}" for i in range(workers))
    manager = cluster.start("manager", workers=0, ORCA_MANAGER_PORT=str(base), ORCA_WORKER_PORT=str(base + 1),
                            ORCA_WORKERS=addresses, **overrides)
    return manager, procs

def wait_for(check: Callable[[], object], timeout: float = 15.0, interval: float = 0.05, what: str = "condition",
             explain: Callable[[], str] | None = None):
    """Call `check` until it returns something truthy; return that, or fail after `timeout`
    (with what `explain` says about the last state, when given)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except requests.RequestException as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}" + (f"; {explain()}" if explain else ""))


class OrcaProcess:
    """One `python main.py [role]` child process with its own ports, names and log file."""

    def __init__(self, role: str, env: dict[str, str], log_path: Path) -> None:
        self.role = role
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "OrcaProcess":
        args = [sys.executable, "main.py"] + ([] if self.role == "all" else [self.role])
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        url = self.manager_url + "/nodes" if self.role != "worker" else self.worker_url(0) + "/stats"
        wait_for(lambda: self._alive() and requests.get(url, timeout=1).ok, what=f"{self.role} to listen")
        if self.role == "all" and int(self.env.get("ORCA_WORKER_COUNT", "2")):  # its own workers are up
            wait_for(lambda: all(n["state"] == "up" for n in requests.get(url, timeout=1).json()), what="workers up")
        return self

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"orca {self.role} exited with {self.proc.returncode}:\n{self.log()}")
        return True

    @property
    def manager_url(self) -> str:
        return f"http://127.0.0.1:{self.env['ORCA_MANAGER_PORT']}"

    def worker_url(self, index: int = 0) -> str:
        return f"http://127.0.0.1:{int(self.env['ORCA_WORKER_PORT']) + index}"

    def worker_address(self, index: int = 0) -> str:
        return f"127.0.0.1:{int(self.env['ORCA_WORKER_PORT']) + index}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def signal(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send `signum` and return the exit status (fails if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"orca {self.role} did not exit within {timeout}s of {signum}:\n{self.log()}")
        self._log.close()
        return self.proc.returncode

    def restart(self) -> "OrcaProcess":
        """kill -9 the process, then start it again with the same environment."""
        self.kill()
        self._log.close()
        return self.start()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Cluster:
    """Starts Orca processes for one test and removes everything they created afterwards."""

    def __init__(self, tmp_path: Path, docker_client) -> None:
        self.tmp_path = tmp_path
        self.docker = docker_client
        self.processes: list[OrcaProcess] = []
        self.worker_names: set[str] = set()
        self.prefix = f"itest-{uuid.uuid4().hex[:8]}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCA_")}
        env.update(ORCA_LOG_LEVEL="info", ORCA_STATS_INTERVAL="0.5", ORCA_DOWN_AFTER="2",
                   ORCA_DATA_DIR=str(self.tmp_path / "data"))
        env.update(overrides)
        return env

    def start(self, role: str = "all", workers: int = 2, **overrides: str) -> OrcaProcess:
        """Start `python main.py role` on fresh ports; return the running process."""
        base = free_ports(workers + 1)
        settings = dict(ORCA_MANAGER_PORT=str(base), ORCA_WORKER_PORT=str(base + 1),
                        ORCA_WORKER_COUNT=str(workers), ORCA_WORKER_NAME=f"{self.prefix}-{base}")
        settings.update(overrides)
        name = settings["ORCA_WORKER_NAME"]
        self.worker_names.update({name} | {f"{name}-{i}" for i in range(workers)})
        SESSION_WORKERS.update(self.worker_names)
        SESSION_WORKERS_ENGINE[:] = [self.docker]
        process = OrcaProcess(role, self.env(**settings), self.tmp_path / f"orca-{role}-{base}.log")
        self.processes.append(process)
        return process.start()

    def containers(self, all: bool = True) -> list:
        """Containers created by this test's workers."""
        import docker.errors

        found = []
        for name in self.worker_names:
            # Sparse, then inspected one by one: Orca may remove one between the listing and its
            # inspection, and a full listing would fail with a 404 instead of leaving it out.
            for sparse in self.docker.containers.list(all=all, sparse=True, filters={"label": f"orca.worker={name}"}):
                try:
                    sparse.reload()
                except docker.errors.NotFound:
                    continue
                found.append(sparse)
        return found

    def close(self) -> None:
        import docker.errors

        from concurrent.futures import ThreadPoolExecutor

        for process in self.processes:
            process.kill()

        def remove(container) -> None:
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:  # 409: a removal is already in progress
                if exc.status_code != 409:
                    raise
        containers = []
        for name in self.worker_names:  # sparse: no inspect of containers a worker may be removing
            containers += self.docker.containers.list(all=True, sparse=True, filters={"label": f"orca.worker={name}"})
        with ThreadPoolExecutor(8) as pool:  # a forced removal waits for the kill: ~0.4 s each
            list(pool.map(remove, containers))


SESSION_WORKERS: set[str] = set()  # every worker name a Cluster of this run started
SESSION_WORKERS_ENGINE: list = []  # the Docker client they used


@pytest.fixture(scope="session", autouse=True)
def late_containers_swept():
    """At the end of the run, remove what a killed worker's last create left behind: Docker
    may finish a create the worker sent just before its kill -9, after its test's cleanup
    had listed and removed that worker's containers (seen: a few `Created` containers)."""
    yield
    if not SESSION_WORKERS:
        return
    import docker.errors

    docker_client = SESSION_WORKERS_ENGINE[0]
    for container in docker_client.containers.list(all=True, sparse=True, filters={"label": "orca.worker"}):
        if container.attrs.get("Labels", {}).get("orca.worker") in SESSION_WORKERS:
            try:
                container.remove(force=True, v=True)
            except docker.errors.APIError:
                pass  # removed meanwhile, or already being removed


@pytest.fixture
def cluster(tmp_path, docker_client, test_image):
    """A factory of Orca processes whose containers are removed after the test."""
    c = Cluster(tmp_path, docker_client)
    yield c
    c.close()


@pytest.fixture
def orca(cluster):
    """`python main.py` (one manager, two workers) on fresh ports."""
    return cluster.start("all", workers=2)


def post_task(base_url: str, task: dict, state: str | None = None) -> requests.Response:
    body = {"task": task} if state is None else {"task": task, "state": state}
    return requests.post(f"{base_url}/tasks", json=body, timeout=5)


def wait_state(base_url: str, task_id: str, states: tuple[str, ...], timeout: float = 15.0) -> dict:
    """Poll GET /tasks/<id> until its state is one of `states`; return the task."""
    def check():
        task = requests.get(f"{base_url}/tasks/{task_id}", timeout=5).json()
        return task if task["state"] in states else None
    return wait_for(check, timeout, what=f"task {task_id} to be {'/'.join(states)}")
