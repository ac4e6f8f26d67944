"""Manager memory holding 10,000 tasks: resident set size of a manager process (default
SQLite store) after 10,000 POSTs, against the same process idle, in the same run. Its
workers are unreachable on purpose, so the tasks stay pending in memory and no container
is started.

    python bench/memory.py [--tasks 10000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.accept import BODY, load  # noqa: E402
from bench.harness import Orca, free_port_run, report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10000)
    total = parser.parse_args().tasks
    closed = free_port_run(1)
    with Orca("manager", workers=0, ORCA_WORKERS=f"127.0.0.1:{closed}") as cluster:
        time.sleep(1)
        idle = cluster.rss_mb()
        _, _, ids, errors = load(cluster.url, total, 16)
        time.sleep(1)
        started = time.perf_counter()
        listed = len(requests.get(cluster.url + "/tasks", timeout=120).json())
        list_time = time.perf_counter() - started
        held = cluster.rss_mb()
    report(f"manager memory holding {total} tasks", [
        ("idle manager RSS", f"{idle:.0f} MB"),
        (f"RSS with {total} tasks", f"{held:.0f} MB  ({held / idle:.2f}x idle, {(held - idle) * 1024 / total:.1f} KB per task)"),
        ("tasks acknowledged / listed / errors", f"{len(ids)} / {listed} / {errors}"),
        ("GET /tasks of all of them", f"{list_time * 1000:.0f} ms"),
    ], f"target RSS <= 150 MB: {'met' if held <= 150 else 'NOT met'}")


if __name__ == "__main__":
    main()
