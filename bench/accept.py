"""POST /tasks acceptance: 16 concurrent clients send 2,000 tasks to the manager (default
store: SQLite, durable before the 201), against a trivial JSON endpoint on the same server
stack, in the same run. The manager has two real worker processes that take the tasks and
run them as containers while the POSTs come in, so the manager's dispatch (placement commits,
sends) and the workers' reports (state commits) compete with the intake, as in real use.
Afterwards every acknowledged task must be listed.

    python bench/accept.py [--tasks 2000] [--clients 16] [--rounds 3]
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import (  # noqa: E402
    IMAGE, ROOT, SplitCluster, build_image, command_line, docker_client, free_port_run, load_line, median,
    percentile, report, wait_until,
)

BODY = {"task": {"image": IMAGE, "command": ["sh", "-c", "echo hi"], "env": {"A": "1"}, "memory": "64m"}}


def load(url: str, total: int, clients: int) -> tuple[float, list[float], list[str], int]:
    """Send `total` POSTs from `clients` threads; return (seconds, latencies, ids, errors)."""
    latencies, ids, errors = [], [], []
    lock = threading.Lock()

    def client(count: int) -> None:
        session = requests.Session()
        for _ in range(count):
            started = time.perf_counter()
            try:
                response = session.post(url + "/tasks", json=BODY, timeout=10)
                ok = response.status_code == 201
                task_id = response.json().get("id", "") if ok else ""
            except requests.RequestException:
                ok, task_id = False, ""
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                (ids.append(task_id) if ok else errors.append(task_id))

    share = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    threads = [threading.Thread(target=client, args=(n,)) for n in share]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, ids, len(errors)


def trivial_run(total: int, clients: int) -> tuple[float, list[float]]:
    port = free_port_run(1)
    proc = subprocess.Popen([sys.executable, "bench/trivial_server.py", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.post(url + "/tasks", json=BODY, timeout=1).ok, 20)
        load(url, 200, clients)  # warm up
        seconds, latencies, _, errors = load(url, total, clients)
        assert errors == 0, f"{errors} errors from the trivial endpoint"
        return total / seconds, latencies
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def states(url: str) -> dict[str, int]:
    """Count of the manager's tasks by state, from its /metrics."""
    counts = {}
    for line in requests.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("orca_tasks{"):
            name = line.split('state="', 1)[1].split('"', 1)[0]
            counts[name] = int(float(line.rsplit(" ", 1)[1]))
    return counts


def orca_run(total: int, clients: int) -> tuple[float, list[float], int, int, dict[str, int]]:
    with SplitCluster(workers=2) as cluster:
        load(cluster.url, 200, clients)  # warm up
        seconds, latencies, ids, errors = load(cluster.url, total, clients)
        at_end = states(cluster.url)  # placed and run while the POSTs came in
        listed = {t["id"] for t in requests.get(cluster.url + "/tasks", params={"limit": 10000}, timeout=60).json()}
        missing = len(set(ids) - listed)
        return total / seconds, latencies, errors, missing, at_end


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    build_image(docker_client())
    trivial, orca, orca_lat, lost, errors, loads, progress = [], [], [], 0, 0, [], []
    for _ in range(args.rounds):
        rate, _ = trivial_run(args.tasks, args.clients)
        trivial.append(rate)
        rate, latencies, errs, missing, at_end = orca_run(args.tasks, args.clients)
        orca.append(rate)
        orca_lat += latencies
        errors += errs
        lost += missing
        loads.append(load_line())
        progress.append(", ".join(f"{k} {v}" for k, v in sorted(at_end.items()) if v))
    ratio = median(orca) / median(trivial)
    p99 = percentile(orca_lat, 99)
    report(f"POST /tasks acceptance: {args.clients} clients, {args.tasks} tasks, {args.rounds} rounds", [
        ("baseline: trivial JSON endpoint, same stack, median", f"{median(trivial):.0f} req/s  "
                                                                f"({', '.join(f'{x:.0f}' for x in trivial)})"),
        ("orca POST /tasks (sqlite, 2 real workers), median", f"{median(orca):.0f} req/s  "
                                                              f"({', '.join(f'{x:.0f}' for x in orca)})"),
        ("ratio", f"{ratio:.2f}x"),
        ("orca latency p50 / p99", f"{percentile(orca_lat, 50) * 1000:.1f} ms / {p99 * 1000:.1f} ms"),
        ("errors / acknowledged but not listed", f"{errors} / {lost}"),
        ("tasks by state when the last POST was answered", " | ".join(progress)),
        ("load average after each round", ", ".join(loads)),
        ("command", command_line()),
    ], f"target >= 0.8x, p99 <= 50 ms, none lost: "
       f"{'met' if ratio >= 0.8 and p99 <= 0.05 and lost == 0 and errors == 0 else 'NOT met'}")


if __name__ == "__main__":
    main()
