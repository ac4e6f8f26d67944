"""Burst: 40 tasks POSTed at once over 2 workers until all are `running` at the manager,
against 40 bare containers created and started with 8 threads, in the same run.

    python bench/burst.py [--tasks 40] [--rounds 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import (  # noqa: E402
    IMAGE, PREFIX, Orca, build_image, docker_client, median, remove_bench_containers, report, wait_until,
)


def bare_burst(client, count: int, round_no: int) -> float:
    def one(i: int) -> None:
        container = client.containers.create(IMAGE, ["sleep", "60"], name=f"{PREFIX}-bare-{round_no}-{i}", detach=True)
        container.start()

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


def orca_burst(url: str, count: int) -> float:
    session = requests.Session()
    body = {"task": {"image": IMAGE, "command": ["sleep", "60"]}}
    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        ids = set(pool.map(lambda _: requests.post(f"{url}/tasks", json=body, timeout=30).json()["id"], range(count)))

    def all_running() -> bool:
        tasks = session.get(f"{url}/tasks", timeout=10).json()
        return sum(1 for t in tasks if t["id"] in ids and t["state"] == "running") == count
    wait_until(all_running, 120, 0.01)
    elapsed = time.perf_counter() - started
    for task_id in ids:
        session.delete(f"{url}/tasks/{task_id}", timeout=10)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    client = docker_client()
    build_image(client)
    bare, orca = [], []
    with Orca("all", workers=2, ORCA_STOP_TIMEOUT="1") as cluster:
        for round_no in range(args.rounds):
            remove_bench_containers(client)
            bare.append(bare_burst(client, args.tasks, round_no))
            remove_bench_containers(client)
            orca.append(orca_burst(cluster.url, args.tasks))
            time.sleep(2)  # let the stops finish before the next bare round
    remove_bench_containers(client)
    ratio = median(orca) / median(bare)
    report(f"burst: {args.tasks} tasks at once over 2 workers until all running", [
        ("rounds", str(args.rounds)),
        ("bare: 40 create+start with 8 threads, median", f"{median(bare):.2f} s  ({', '.join(f'{x:.2f}' for x in bare)})"),
        ("orca: POST all, until all running, median", f"{median(orca):.2f} s  ({', '.join(f'{x:.2f}' for x in orca)})"),
        ("ratio", f"{ratio:.2f}x"),
    ], f"target <= 1.15x: {'met' if ratio <= 1.15 else 'NOT met'}")


if __name__ == "__main__":
    main()
