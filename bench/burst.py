"""Burst: 40 tasks POSTed at once over 2 workers until all are `running` at the manager,
against the engine's best parallel rate: 40 bare containers created and started through the
low-level API (`create_container` + `start`) from 8, 16 and 32 client threads, the fastest
of the three, in the same run.

    python bench/burst.py [--tasks 40] [--rounds 3]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import (  # noqa: E402
    IMAGE, PREFIX, Orca, RunningWatch, build_image, command_line, docker_client, load_line, median, remove_bench_containers,
    report, wait_until,
)

COMMAND = ["sleep", "60"]
THREADS = (8, 16, 32)
TARGET = 1.10
_names = itertools.count()


def bare_burst(client, count: int, threads: int) -> float:
    def one(_: int) -> None:
        created = client.api.create_container(IMAGE, COMMAND, name=f"{PREFIX}-bare-{next(_names)}", detach=True)
        client.api.start(created["Id"])

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


def orca_burst(url: str, count: int, watch: RunningWatch) -> float:
    session = requests.Session()
    body = {"task": {"image": IMAGE, "command": COMMAND}}
    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        ids = set(pool.map(lambda _: requests.post(f"{url}/tasks", json=body, timeout=30).json()["id"], range(count)))
    elapsed = max(watch.running_at(task_id, 120) for task_id in ids) - started
    running = session.get(f"{url}/tasks", params={"state": "running"}, timeout=10).json()
    assert ids <= {t["id"] for t in running}
    for task_id in ids:
        session.delete(f"{url}/tasks/{task_id}", timeout=10)
    wait_until(lambda: not session.get(f"{url}/tasks", params={"state": "running"}, timeout=10).json(), 120, 0.1)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    client = docker_client()
    build_image(client)
    bare = {threads: [] for threads in THREADS}
    orca, load = [], []
    with Orca("all", workers=2, ORCA_STOP_TIMEOUT="1") as cluster:
        watch = RunningWatch(cluster.url)  # sees each task shown running, without polling the manager
        for _ in range(args.rounds):
            for threads in THREADS:
                remove_bench_containers(client)
                bare[threads].append(bare_burst(client, args.tasks, threads))
            remove_bench_containers(client)
            orca.append(orca_burst(cluster.url, args.tasks, watch))
            load.append(load_line())
            remove_bench_containers(client)
    remove_bench_containers(client)
    best = min(THREADS, key=lambda threads: median(bare[threads]))
    ratio = median(orca) / median(bare[best])
    rows = [("rounds", str(args.rounds))]
    rows += [(f"baseline: {args.tasks} low-level create+start on {threads} threads, median",
              f"{median(bare[threads]):.2f} s  ({', '.join(f'{x:.2f}' for x in bare[threads])})") for threads in THREADS]
    rows += [
        (f"orca: POST {args.tasks} at once, until all running, median",
         f"{median(orca):.2f} s  ({', '.join(f'{x:.2f}' for x in orca)})"),
        (f"ratio to the fastest baseline ({best} threads)", f"{ratio:.2f}x"),
        ("load average after each round", ", ".join(load)),
        ("command", command_line()),
    ]
    report(f"burst: {args.tasks} tasks at once over 2 workers until all running", rows,
           f"target <= {TARGET:.2f}x: {'met' if ratio <= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
