"""Manager memory holding 10,000 tasks: resident set size of the manager process (default
SQLite store) after 10,000 POSTs, against the same process idle, in the same run. Its two
workers are real processes that take the tasks and run them as containers; the figure is
read once the manager's dispatch has settled (its count of pending tasks has stopped falling),
so it holds the placements and the workers' reports too, not just the intake.

    python bench/memory.py [--tasks 10000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.accept import BODY, load, states  # noqa: E402
from bench.harness import SplitCluster, build_image, command_line, docker_client, load_line, report  # noqa: E402

TARGET_MB = 150


def settle(url: str, limit: float = 180.0) -> dict[str, int]:
    """Wait until the count of pending tasks has not fallen for 3 s (or `limit` s); return the counts."""
    deadline = time.monotonic() + limit
    counts = states(url)
    best, since = counts.get("pending", 0), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < 3:
        time.sleep(0.5)
        counts = states(url)
        if counts.get("pending", 0) < best:
            best, since = counts.get("pending", 0), time.monotonic()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10000)
    total = parser.parse_args().tasks
    build_image(docker_client())
    with SplitCluster(workers=2) as cluster:
        time.sleep(1)  # let start-up allocations settle before the idle figure
        idle = cluster.rss_mb()
        _, _, ids, errors = load(cluster.url, total, 16)
        counts = settle(cluster.url)
        held = cluster.rss_mb()
        started = time.perf_counter()
        listed = len(requests.get(cluster.url + "/tasks", params={"limit": 10000}, timeout=120).json())
        list_time = time.perf_counter() - started
    report(f"manager memory holding {total} tasks", [
        ("baseline: idle manager RSS (2 workers up)", f"{idle:.0f} MB"),
        (f"RSS with {total} tasks", f"{held:.0f} MB  ({held / idle:.2f}x idle, {(held - idle) * 1024 / total:.1f} KB per task)"),
        ("tasks acknowledged / listed / errors", f"{len(ids)} / {listed} / {errors}"),
        ("tasks by state when measured", ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)),
        ("GET /tasks?limit=10000", f"{list_time * 1000:.0f} ms"),
        ("load average", load_line()),
        ("command", command_line()),
    ], f"target RSS <= {TARGET_MB} MB: {'met' if held <= TARGET_MB else 'NOT met'}")


if __name__ == "__main__":
    main()
