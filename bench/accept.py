"""POST /tasks acceptance: 16 concurrent clients send 2,000 tasks to the manager (default
store: SQLite, durable before the 201), against a trivial JSON endpoint on the same server
stack, in the same run. The manager's workers are unreachable on purpose, so no container
is started: this measures intake only. Afterwards every acknowledged task must be listed.

    python bench/accept.py [--tasks 2000] [--clients 16]
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
from bench.harness import ROOT, IMAGE, Orca, free_port_run, median, percentile, report, wait_until  # noqa: E402

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


def orca_run(total: int, clients: int) -> tuple[float, list[float], int, int]:
    closed = free_port_run(1)
    with Orca("manager", workers=0, ORCA_WORKERS=f"127.0.0.1:{closed}") as cluster:
        load(cluster.url, 200, clients)  # warm up
        seconds, latencies, ids, errors = load(cluster.url, total, clients)
        listed = {t["id"] for t in requests.get(cluster.url + "/tasks", timeout=60).json()}
        missing = len(set(ids) - listed)
        return total / seconds, latencies, errors, missing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trivial, orca, orca_lat, lost, errors = [], [], [], 0, 0
    for _ in range(args.rounds):
        rate, _ = trivial_run(args.tasks, args.clients)
        trivial.append(rate)
        rate, latencies, errs, missing = orca_run(args.tasks, args.clients)
        orca.append(rate)
        orca_lat += latencies
        errors += errs
        lost += missing
    ratio = median(orca) / median(trivial)
    p99 = percentile(orca_lat, 99)
    report(f"POST /tasks acceptance: {args.clients} clients, {args.tasks} tasks, {args.rounds} rounds", [
        ("trivial JSON endpoint, median", f"{median(trivial):.0f} req/s"),
        ("orca POST /tasks (sqlite), median", f"{median(orca):.0f} req/s"),
        ("ratio", f"{ratio:.2f}x"),
        ("orca latency p50 / p99", f"{percentile(orca_lat, 50) * 1000:.1f} ms / {p99 * 1000:.1f} ms"),
        ("errors / acknowledged but not listed", f"{errors} / {lost}"),
    ], f"target >= 0.8x, p99 <= 50 ms, none lost: "
       f"{'met' if ratio >= 0.8 and p99 <= 0.05 and lost == 0 and errors == 0 else 'NOT met'}")


if __name__ == "__main__":
    main()
