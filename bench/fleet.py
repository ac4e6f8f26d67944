"""A fleet: one real manager (`python main.py manager`, SQLite store) with 1,000 simulated
workers and 100,000 tasks, each figure printed with its baseline from the same run.

The workers are Orca's real worker HTTP service with a fake container runtime, many per
process (bench/fleet_host.py says exactly what is simulated); one of them runs alone in its
own process so that it can be killed. Nothing of the manager is simulated.

    python bench/fleet.py                                   # 1,000 workers, 100,000 tasks
    python bench/fleet.py --workers 100 --tasks 5000        # a small run

run() is also the reduced test's driver (tests/integration/test_fleet.py), which asserts
the correctness figures only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import ROOT, free_port_run, percentile, wait_until  # noqa: E402

BATCH = 1000  # tasks per POST /tasks
SUBMITTERS = 2  # client threads submitting batches
PER_HOST = 250  # simulated workers per process
STATS_INTERVAL = 5.0  # ORCA_STATS_INTERVAL of the run (1,000 workers' /stats and /health every 5 s)
DOWN_AFTER = 3
SAMPLE = 50  # every 50th task is followed until it runs at the manager
MAX_POLL = 20  # sampled tasks read per round (the oldest not seen running)


@dataclass
class Figures:
    """What a run measured."""

    workers: int = 0
    tasks: int = 0
    seconds: float = 0.0  # first submit until all running at the manager
    latencies: list[float] = field(default_factory=list)  # submit -> running at the manager, sampled tasks
    worker_latencies: list[float] = field(default_factory=list)  # submit -> started on its worker, every task
    scan_period: float = 0.0  # how finely the latencies were observed
    list_ms: list[float] = field(default_factory=list)  # GET /tasks?limit=100 during the run
    get_ms: list[float] = field(default_factory=list)  # GET /tasks/<id> during the run
    idle_list_ms: list[float] = field(default_factory=list)
    idle_get_ms: list[float] = field(default_factory=list)
    rss_idle_mb: float = 0.0
    rss_mb: float = 0.0
    restart_empty_s: float = 0.0
    restart_s: float = 0.0
    moved: int = 0
    move_s: float = 0.0
    direct_rate: float = 0.0  # baseline: placements per second straight to the workers
    problems: list[str] = field(default_factory=list)  # correctness failures (empty: all good)
    pages: int = 0


class Fleet:
    """The worker host processes and the manager process of one run."""

    def __init__(self, workers: int, per_host: int, data_dir: str) -> None:
        self.data_dir = data_dir
        self.hosts: list[subprocess.Popen] = []
        self.addresses: list[str] = []
        self.lone: subprocess.Popen | None = None  # the worker that will be killed
        self.lone_address = ""
        self.manager: subprocess.Popen | None = None
        self.url = ""
        counts = [per_host] * ((workers - 1) // per_host) + ([(workers - 1) % per_host] if (workers - 1) % per_host else [])
        for count in counts:
            proc, addresses = _start_host(count)
            self.hosts.append(proc)
            self.addresses += addresses
        self.lone, (self.lone_address,) = _start_host(1)
        self.addresses.append(self.lone_address)

    def start_manager(self) -> float:
        """Start the manager on the data dir; return seconds until it serves /health."""
        port = free_port_run(1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCA_")}
        env.update(ORCA_WORKERS=",".join(self.addresses), ORCA_MANAGER_PORT=str(port), ORCA_DATA_DIR=self.data_dir,
                   ORCA_LOG_LEVEL="warning", ORCA_STATS_INTERVAL=str(STATS_INTERVAL),
                   ORCA_DOWN_AFTER=str(DOWN_AFTER))
        self.url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        self.manager = subprocess.Popen([sys.executable, "main.py", "manager"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=open(Path(self.data_dir) / "manager.log", "a"))
        wait_until(lambda: requests.get(self.url + "/health", timeout=1).ok, 120, 0.05)
        return time.monotonic() - started

    def kill_manager(self) -> None:
        if self.manager is not None and self.manager.poll() is None:
            self.manager.kill()
            self.manager.wait()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.manager.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        self.kill_manager()
        for proc in self.hosts + ([self.lone] if self.lone else []):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _start_host(count: int) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.fleet_host", str(count)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    return proc, json.loads(line)["addresses"]


def _count(session: requests.Session, url: str, state: str) -> int:
    """orca_tasks{state} from /metrics (kept up to date by the manager: no walk)."""
    for line in session.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(f'orca_tasks{{state="{state}"}}'):
            return int(float(line.split()[-1]))
    return 0


def _every(session: requests.Session, url: str, **params: Any) -> tuple[list[dict], int]:
    """Every task of a filtered listing, following the cursors; (tasks, pages)."""
    tasks, pages, params = [], 0, {"limit": 1000, **params}
    while True:
        response = session.get(url + "/tasks", params=params, timeout=60)
        response.raise_for_status()
        tasks += response.json()
        pages += 1
        cursor = response.headers.get("X-Orca-Next")
        if not cursor:
            return tasks, pages
        params["after"] = cursor


def _timed(session: requests.Session, url: str) -> float:
    started = time.perf_counter()
    session.get(url, timeout=30).raise_for_status()
    return (time.perf_counter() - started) * 1000


def _events(count: int) -> list[dict]:
    return [{"task": {"id": str(uuid.uuid4()), "image": "busybox", "command": ["sleep", "3600"]}} for _ in range(count)]


class Run:
    """The throughput run: submitters, a tracker of what is running, a reader of listings."""

    def __init__(self, url: str, tasks: int, already: int) -> None:
        self.url, self.total, self.already = url, tasks, already
        self.submitted: dict[str, tuple[float, float]] = {}  # task id -> (monotonic, wall) when its batch was sent
        self.sampled: list[str] = []  # every SAMPLE-th task: followed until it runs at the manager
        self.running_at: dict[str, float] = {}  # sampled task -> when first seen running at the manager
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.finished = 0.0
        self.errors: list[str] = []
        self.rounds: list[float] = []
        self.list_ms: list[float] = []
        self.get_ms: list[float] = []

    def submit(self, batches: list[list[dict]]) -> None:
        session = requests.Session()
        for batch in batches:
            sent = time.monotonic(), time.time()
            answers = session.post(self.url + "/tasks", json=batch, timeout=120).json()
            with self.lock:
                for answer in answers:
                    if answer.get("status") == 201:
                        self.submitted[answer["task"]["id"]] = sent
                        if len(self.submitted) % SAMPLE == 0:
                            self.sampled.append(answer["task"]["id"])
                    else:
                        self.errors.append(str(answer))

    def track(self) -> None:
        """Every 0.2 s: GET the oldest sampled tasks not seen running yet (at most MAX_POLL),
        and the running count from /metrics, until every task runs at the manager."""
        session = requests.Session()
        while not self.done.is_set():
            began = time.monotonic()
            with self.lock:
                waiting = [i for i in self.sampled if i not in self.running_at][:MAX_POLL]
            for task_id in waiting:
                if session.get(f"{self.url}/tasks/{task_id}", timeout=30).json()["state"] == "running":
                    self.running_at[task_id] = time.monotonic()
            if _count(session, self.url, "running") >= self.total + self.already:
                self.finished = time.monotonic()
                self.done.set()
            self.rounds.append(time.monotonic() - began)
            time.sleep(0.2)

    def read(self, sample: list[str]) -> None:
        """GET /tasks?limit=100 and GET /tasks/<id>, a few times a second, during the run."""
        session = requests.Session()
        n = 0
        while not self.done.is_set():
            self.list_ms.append(_timed(session, self.url + "/tasks?limit=100"))
            with self.lock:
                ids = list(self.submitted)[-50:] or sample
            self.get_ms.append(_timed(session, f"{self.url}/tasks/{ids[n % len(ids)]}"))
            n += 1
            time.sleep(0.1)


def throughput(url: str, tasks: int, figures: Figures, probe: str) -> Run:
    """Submit every task in batches from SUBMITTERS threads; wait until all run."""
    events = _events(tasks)
    batches = [events[i:i + BATCH] for i in range(0, tasks, BATCH)]
    run = Run(url, tasks, already=1)
    threads = [threading.Thread(target=run.submit, args=(batches[k::SUBMITTERS],)) for k in range(SUBMITTERS)]
    helpers = [threading.Thread(target=run.track), threading.Thread(target=run.read, args=([probe],))]
    started = time.monotonic()
    for thread in threads + helpers:
        thread.start()
    for thread in threads:
        thread.join()
    run.done.wait(900)
    figures.seconds = (run.finished or time.monotonic()) - started
    run.done.set()
    for thread in helpers:
        thread.join()
    figures.latencies = [run.running_at[i] - run.submitted[i][0] for i in run.running_at]
    figures.scan_period = percentile(run.rounds, 50) + 0.2 if run.rounds else 0.0
    figures.list_ms, figures.get_ms = run.list_ms, run.get_ms
    figures.problems += run.errors[:5]
    return run


def worker_latencies(listed: dict[str, dict], run: Run) -> list[float]:
    """Submit -> the container started on its worker (the worker's started_at), every task."""
    found = []
    for task_id, (_, wall) in run.submitted.items():
        started = listed.get(task_id, {}).get("started_at")
        if started:
            found.append(datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp() - wall)
    return found


def verify(session: requests.Session, fleet: Fleet, tasks: int, figures: Figures) -> dict[str, dict]:
    """Every task placed exactly once: running at the manager, attempt 1, on the worker the
    manager names and on no other; the paged listing complete and without repeats."""
    listed, figures.pages = _every(session, fleet.url, limit=997)
    ids = [t["id"] for t in listed]
    if len(ids) != tasks or len(set(ids)) != tasks:
        figures.problems.append(f"the listing has {len(ids)} entries, {len(set(ids))} distinct, of {tasks} tasks")
    bad = [t for t in listed if t["state"] != "running" or t["attempt"] != 1]
    if bad:
        figures.problems.append(f"{len(bad)} task(s) not running at attempt 1, e.g. {bad[0]['state']}")
    where: dict[str, list[str]] = {}
    for address in fleet.addresses:
        for task in session.get(f"http://{address}/tasks", timeout=30).json():
            if task["state"] == "running":
                where.setdefault(task["id"], []).append(address)
    twice = [i for i, nodes in where.items() if len(nodes) != 1]
    astray = [t["id"] for t in listed if where.get(t["id"]) != [t["node"]]]
    if twice or astray:
        figures.problems.append(f"{len(twice)} task(s) run on several workers, {len(astray)} not where the "
                                f"manager says")
    return {t["id"]: t for t in listed}


def kill_worker(session: requests.Session, fleet: Fleet, figures: Figures) -> None:
    """kill -9 the lone worker; time until each of its tasks runs elsewhere."""
    mine = [t["id"] for t in _every(session, fleet.url, node=fleet.lone_address)[0]]
    figures.moved = len(mine)
    killed = time.monotonic()
    fleet.lone.kill()
    fleet.lone.wait()

    def moved() -> bool:
        tasks = [session.get(f"{fleet.url}/tasks/{i}", timeout=10).json() for i in mine]
        return all(t["state"] == "running" and t["node"] != fleet.lone_address for t in tasks)
    wait_until(moved, 120, 0.2)
    figures.move_s = time.monotonic() - killed


def direct_baseline(fleet: Fleet, tasks: int) -> float:
    """Placements per second with no manager: batches posted straight to the workers'
    POST /tasks/batch (round robin, 4 threads), until each worker's feed shows them running."""
    events = _events(tasks)
    per = {address: [] for address in fleet.addresses[:-1]}
    for n, event in enumerate(events):
        per[fleet.addresses[n % (len(fleet.addresses) - 1)]].append({**event, "attempt": 1})
    started = time.monotonic()

    def send(items: list[tuple[str, list[dict]]]) -> None:
        session = requests.Session()
        for address, orders in items:
            session.post(f"http://{address}/tasks/batch", json=orders, timeout=60).raise_for_status()
    items = list(per.items())
    threads = [threading.Thread(target=send, args=(items[k::4],)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    session = requests.Session()
    for address, orders in per.items():
        wait_until(lambda: sum(t["state"] == "running" for t in session.get(f"http://{address}/tasks", timeout=30).json())
                   >= len(orders), 120, 0.01)
    return tasks / (time.monotonic() - started)


def run(workers: int = 1000, tasks: int = 100_000, per_host: int = PER_HOST, baseline: bool = True,
        recovery: bool = True, then: Callable[[str, Figures], None] | None = None) -> Figures:
    """One run; returns its figures (figures.problems lists any correctness failure).
    Without `baseline`, no baseline is measured; without `recovery`, no worker is killed and
    the manager is not restarted. `then(manager_url, figures)` runs once every task is
    verified, before the recovery (the suite's reduced run checks purges there)."""
    figures = Figures(workers=workers, tasks=tasks)
    data_dir = tempfile.mkdtemp(prefix="orca-fleet-")
    fleet = Fleet(workers, per_host, data_dir)
    session = requests.Session()
    try:
        if baseline:
            figures.restart_empty_s = fleet.start_manager()
            fleet.kill_manager()
        fleet.start_manager()
        wait_until(lambda: len(_nodes(session, fleet.url, "up")) == workers, 120, 0.2)
        figures.rss_idle_mb = fleet.rss_mb()
        probe = session.post(fleet.url + "/tasks", json=_events(1)[0], timeout=10).json()["id"]
        figures.idle_list_ms = [_timed(session, fleet.url + "/tasks?limit=100") for _ in range(30)]
        figures.idle_get_ms = [_timed(session, f"{fleet.url}/tasks/{probe}") for _ in range(30)]
        wait_until(lambda: _count(session, fleet.url, "running") == 1, 30, 0.05)
        done = throughput(fleet.url, tasks - 1, figures, probe)
        figures.worker_latencies = worker_latencies(verify(session, fleet, tasks, figures), done)
        figures.rss_mb = fleet.rss_mb()
        if then is not None:
            then(fleet.url, figures)
        if not recovery:
            return figures
        kill_worker(session, fleet, figures)
        fleet.kill_manager()
        figures.restart_s = fleet.start_manager()
        if _count(session, fleet.url, "running") + _count(session, fleet.url, "scheduled") != tasks:
            figures.problems.append("after the restart the manager does not hold every task")
        if baseline:
            fleet.kill_manager()
            figures.direct_rate = direct_baseline(fleet, min(tasks, 20_000))
    finally:
        fleet.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def _nodes(session: requests.Session, url: str, state: str) -> list[dict]:
    nodes, params = [], {"state": state, "limit": 1000}
    while True:
        response = session.get(url + "/nodes", params=params, timeout=10)
        nodes += response.json()
        if not response.headers.get("X-Orca-Next"):
            return nodes
        params["after"] = response.headers["X-Orca-Next"]


def report(f: Figures) -> None:
    rate = f.tasks / f.seconds if f.seconds else 0.0
    p99 = percentile(f.latencies, 99) if f.latencies else float("nan")
    down = DOWN_AFTER * STATS_INTERVAL
    rows = [
        ("placements/s, all running at the manager", f"{rate:,.0f}/s ({f.tasks:,} in {f.seconds:.1f} s)",
         f"straight to the workers, no manager: {f.direct_rate:,.0f}/s", ">= 1,000/s", rate >= 1000),
        ("submit -> running at the manager, p99", f"{p99:.2f} s (median {percentile(f.latencies, 50):.2f} s; "
         f"{len(f.latencies)} sampled tasks read every {f.scan_period:.2f} s)",
         f"submit -> started on its worker, every task: p99 {percentile(f.worker_latencies, 99):.2f} s",
         "<= 2 s", p99 <= 2),
        ("GET /tasks?limit=100, p99 during the run", f"{percentile(f.list_ms, 99):.0f} ms ({len(f.list_ms)} reads)",
         f"idle manager {percentile(f.idle_list_ms, 99):.0f} ms", "<= 100 ms", percentile(f.list_ms, 99) <= 100),
        ("GET /tasks/<id>, p99 during the run", f"{percentile(f.get_ms, 99):.0f} ms ({len(f.get_ms)} reads)",
         f"idle manager {percentile(f.idle_get_ms, 99):.0f} ms", "<= 100 ms", percentile(f.get_ms, 99) <= 100),
        (f"manager RSS, {f.tasks:,} tasks and {f.workers:,} workers", f"{f.rss_mb:.0f} MiB",
         f"same manager, no tasks: {f.rss_idle_mb:.0f} MiB", "<= 1 GiB", f.rss_mb <= 1024),
        (f"manager restart with {f.tasks:,} tasks until it serves", f"{f.restart_s:.1f} s",
         f"empty store: {f.restart_empty_s:.1f} s", "<= 10 s", f.restart_s <= 10),
        (f"a worker with {f.moved} tasks killed until they all run elsewhere", f"{f.move_s:.1f} s",
         f"ORCA_DOWN_AFTER x ORCA_STATS_INTERVAL = {down:.0f} s", f"<= {down + 5:.0f} s", f.move_s <= down + 5),
    ]
    print(f"\n== fleet: {f.workers:,} workers, {f.tasks:,} tasks ({os.cpu_count()} cores)")
    print("| what | Orca | baseline, same run | target | met |\n|---|---|---|---|---|")
    for what, value, base, target, met in rows:
        print(f"| {what} | {value} | {base} | {target} | {'yes' if met else 'NO'} |")
    print(f"correctness: {'every task placed exactly once; listing complete over ' + str(f.pages) + ' pages' if not f.problems else f.problems}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--per-host", type=int, default=PER_HOST)
    args = parser.parse_args()
    report(run(args.workers, args.tasks, args.per_host))


if __name__ == "__main__":
    main()
