"""Exit latency: from the moment a container exits (Docker's State.FinishedAt) until the
manager's GET shows the task terminal. The baseline, in the same run, is how long Docker's
own event stream takes to report the `die` of a bare container.

    python bench/exit_latency.py [--runs 15]
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import (  # noqa: E402
    IMAGE, PREFIX, Orca, build_image, docker_client, median, percentile, remove_bench_containers, report, wait_until,
)

COMMAND = ["sh", "-c", "sleep 0.5"]


def finished_at(attrs: dict) -> float:
    """Docker's FinishedAt as a Unix time (nanoseconds cut to microseconds)."""
    raw = attrs["State"]["FinishedAt"].rstrip("Z")
    head, _, frac = raw.partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def bare_die_latency(client, i: int) -> float:
    """Seconds from a bare container's exit to the `die` event reaching an SDK listener."""
    name = f"{PREFIX}-bare-exit-{i}"
    seen = {}
    events = client.events(decode=True, filters={"type": "container", "event": "die", "container": name})
    listener = threading.Thread(target=lambda: seen.setdefault("t", (next(iter(events)), time.time())[1]))
    listener.start()
    container = client.containers.run(IMAGE, COMMAND, name=name, detach=True)
    listener.join(30)
    events.close()
    container.reload()
    latency = seen["t"] - finished_at(container.attrs)
    container.remove(force=True)
    return latency


def orca_exit_latency(client, session: requests.Session, url: str) -> float:
    task = session.post(f"{url}/tasks", json={"task": {"image": IMAGE, "command": COMMAND, "restart_policy": "no"}},
                        timeout=10).json()
    done = wait_until(lambda: (t := session.get(f"{url}/tasks/{task['id']}", timeout=5).json())["state"]
                      in ("completed", "failed") and t, 30, 0.002)
    seen = time.time()
    return seen - finished_at(client.api.inspect_container(done["container_id"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    client = docker_client()
    build_image(client)
    remove_bench_containers(client)
    bare, orca = [], []
    with Orca("all", workers=2) as cluster, requests.Session() as session:
        orca_exit_latency(client, session, cluster.url)  # warm up
        for i in range(runs):
            bare.append(bare_die_latency(client, i))
            orca.append(orca_exit_latency(client, session, cluster.url))
    remove_bench_containers(client)
    report("exit latency: container exit until the manager shows it terminal", [
        ("runs", str(runs)),
        ("docker die event to an SDK listener, median", f"{median(bare) * 1000:.0f} ms"),
        ("orca: exit -> manager terminal, median", f"{median(orca) * 1000:.0f} ms (p90 {percentile(orca, 90) * 1000:.0f} ms)"),
        ("ratio to the die event", f"{median(orca) / median(bare):.2f}x"),
    ], f"target median <= 300 ms: {'met' if median(orca) <= 0.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
