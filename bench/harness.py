"""Shared helpers for the benchmarks: processes, the test image, statistics, reporting.

Benchmarks print figures; they never fail a build. Each measures its baseline in the same
run, on the same machine, so the ratio is what counts.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import requests

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "orca-bench-busybox:latest"
PREFIX = "orca-bench"


def docker_client():
    """A Docker SDK client on the local engine (explicit socket)."""
    import docker

    return docker.DockerClient(base_url=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), timeout=120)


def build_image(client) -> str:
    """Build the FROM-scratch busybox image the tests use, tagged for benchmarks."""
    busybox = next(p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p))
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(ROOT / "tests" / "images" / "busybox" / "Dockerfile", context)
        shutil.copy(busybox, Path(context) / "busybox")
        client.images.build(path=context, tag=IMAGE, rm=True)
    return IMAGE


def free_port_run(count: int) -> int:
    """First of `count` consecutive free loopback ports."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        try:
            held = []
            for port in range(base, base + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()


class Orca:
    """`python main.py [role]` as a child process, for the duration of a `with` block."""

    def __init__(self, role: str = "all", workers: int = 2, **env: str) -> None:
        self.base = free_port_run(workers + 1)
        self.data = tempfile.mkdtemp(prefix="orca-bench-")
        self.worker_name = f"{PREFIX}-{self.base}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ORCA_")}
        self.env.update(ORCA_MANAGER_PORT=str(self.base), ORCA_WORKER_PORT=str(self.base + 1),
                        ORCA_WORKER_COUNT=str(workers), ORCA_WORKER_NAME=self.worker_name,
                        ORCA_DATA_DIR=self.data, ORCA_LOG_LEVEL="warning")
        self.env.update(env)
        self.role = role
        self.url = f"http://127.0.0.1:{self.base}"
        self.proc: subprocess.Popen | None = None

    @property
    def worker_address(self) -> str:
        return f"127.0.0.1:{self.base + 1}"

    def __enter__(self) -> "Orca":
        args = [sys.executable, "main.py"] + ([] if self.role == "all" else [self.role])
        self.log = open(Path(self.data) / f"orca-{self.role}.log", "ab")  # kept until __exit__, for failures
        self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except TimeoutError:
            self.log.flush()
            tail = (Path(self.data) / f"orca-{self.role}.log").read_text(errors="replace")[-3000:]
            self.__exit__(None, None, None)
            raise TimeoutError(f"orca {self.role} did not come up; its log ends:\n{tail}") from None
        return self

    def _wait_ready(self) -> None:
        if self.role == "worker":
            wait_until(lambda: requests.get(f"http://{self.worker_address}/stats", timeout=1).ok, 60)
            return
        wait_until(lambda: requests.get(self.url + "/nodes", timeout=1).ok, 60)
        if self.role == "all" or self.env.get("ORCA_WORKERS"):
            wait_until(lambda: all(n["state"] == "up" for n in requests.get(self.url + "/nodes", timeout=1).json()), 60)

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)

    def rss_mb(self) -> float:
        """Resident memory of the process, in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


class SplitCluster:
    """A manager process and `workers` worker processes (each its own `python main.py
    worker`), all real, for the duration of a `with` block: the manager's own memory can be
    measured apart from the workers'. The containers the workers started are removed at the end."""

    def __init__(self, workers: int = 2, **env: str) -> None:
        self.workers = [Orca("worker", workers=1, **env) for _ in range(workers)]
        self.env = env
        self.manager: Orca | None = None

    def __enter__(self) -> Orca:
        started = []
        try:
            for worker in self.workers:
                started.append(worker.__enter__())
            addresses = ",".join(worker.worker_address for worker in self.workers)
            self.manager = Orca("manager", workers=0, ORCA_WORKERS=addresses, **self.env).__enter__()
        except BaseException:
            for worker in started:
                worker.__exit__(None, None, None)
            raise
        return self.manager

    def __exit__(self, *exc) -> None:
        for process in [self.manager, *self.workers]:
            if process is not None:
                process.__exit__(*exc)
        remove_bench_containers(docker_client())


def wait_until(check: Callable[[], object], timeout: float, interval: float = 0.005):
    """Call `check` until truthy; return its value; raise TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except requests.RequestException:
            pass
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")


def remove_bench_containers(client) -> None:
    """Remove every container this benchmark created (Orca's by label, bare ones by name).
    Listed without inspecting (other processes' containers may vanish meanwhile)."""
    import docker.errors

    ours = [c["Id"] for c in client.api.containers(all=True, filters={"label": "orca.task_id"})
            if (c.get("Labels") or {}).get("orca.worker", "").startswith(PREFIX)]
    ours += [c["Id"] for c in client.api.containers(all=True, filters={"name": PREFIX + "-bare"})]
    for container_id in ours:
        try:
            client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: being removed already
                raise


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def machine() -> str:
    """One line describing where the figures were taken."""
    try:
        import docker  # noqa: F401
        engine = docker_client().version().get("Version", "?")
    except Exception:  # noqa: BLE001 - description only
        engine = "?"
    return (f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, Docker {engine}")


def load_line() -> str:
    """The 1-minute load average, as a string (figures taken under load are skewed)."""
    return f"{os.getloadavg()[0]:.1f}"


def command_line() -> str:
    """The command that produced these figures."""
    return "python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute()
                                 else sys.argv[0]] + sys.argv[1:])


def report(title: str, rows: list[tuple[str, str]], verdict: str) -> None:
    """Print a small aligned table and the verdict line."""
    print(f"\n== {title}")
    print(f"   machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the end")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"   {name:<{width}}  {value}")
    print(f"   -> {verdict}")


class RunningWatch:
    """Follows the manager's event stream (GET /events?topic=task) and notes when each task is
    first shown `running`: the moment a GET would show it, without polling the manager (a GET
    every few milliseconds would take CPU from the very pipeline being measured)."""

    def __init__(self, url: str) -> None:
        self._seen: dict[str, float] = {}
        self._closed = False
        self._changed = threading.Condition()
        self._response = requests.get(f"{url}/events", params={"topic": "task"}, stream=True, timeout=(5, 60))
        self._response.raise_for_status()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._response.iter_lines():
                if not line.startswith(b"data:"):
                    continue
                data = json.loads(line[5:]).get("data", {})
                if data.get("state") == "running":
                    with self._changed:
                        self._seen.setdefault(data["id"], time.perf_counter())
                        self._changed.notify_all()
        except (requests.RequestException, AttributeError, ValueError):
            if not self._closed:  # else: closed at the end of the run, under the reader's feet
                raise

    def running_at(self, task_id: str, timeout: float = 30.0) -> float:
        """perf_counter() when the manager first showed the task running."""
        with self._changed:
            if not self._changed.wait_for(lambda: task_id in self._seen, timeout):
                raise TimeoutError(f"task {task_id} not running within {timeout} s")
            return self._seen[task_id]

    def close(self) -> None:
        self._closed = True
        self._response.close()
