"""One task: POST to the manager until it shows `running` (seen on its event stream, where the
state change is published as the manager records it), against the engine's floor,
the low-level Docker API's `create_container` + `start` of the same image and command (no
inspect), measured alternately in the same run.

    python bench/start_latency.py [--runs 15]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import (  # noqa: E402
    IMAGE, PREFIX, Orca, RunningWatch, build_image, command_line, docker_client, load_line, median, remove_bench_containers,
    report, wait_until,
)

COMMAND = ["sleep", "30"]
TARGET = 1.10


def bare_start(client, i: int) -> float:
    """The floor: create + start through the low-level API, the calls Orca's worker makes."""
    started = time.perf_counter()
    created = client.api.create_container(IMAGE, COMMAND, name=f"{PREFIX}-bare-{i}", detach=True)
    client.api.start(created["Id"])
    elapsed = time.perf_counter() - started
    client.api.remove_container(created["Id"], force=True)
    return elapsed


def orca_start(client, session: requests.Session, url: str, watch: RunningWatch) -> float:
    started = time.perf_counter()
    task = session.post(f"{url}/tasks", json={"task": {"image": IMAGE, "command": COMMAND}}, timeout=10).json()
    elapsed = watch.running_at(task["id"]) - started
    assert session.get(f"{url}/tasks/{task['id']}", timeout=5).json()["state"] == "running"
    session.delete(f"{url}/tasks/{task['id']}", timeout=5)
    # The stop and removal finish before the next measurement, so neither side pays for them.
    wait_until(lambda: not client.api.containers(all=True, filters={"label": f"orca.task_id={task['id']}"}), 60, 0.02)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    client = docker_client()
    build_image(client)
    remove_bench_containers(client)
    bare, orca, load = [], [], []
    with Orca("all", workers=2, ORCA_STOP_TIMEOUT="1") as cluster, requests.Session() as session:
        watch = RunningWatch(cluster.url)
        for i in range(2):  # warm both paths
            bare_start(client, 1000 + i)
            orca_start(client, session, cluster.url, watch)
        for i in range(runs):
            bare.append(bare_start(client, i))
            orca.append(orca_start(client, session, cluster.url, watch))
            load.append(load_line())
        watch.close()
    remove_bench_containers(client)
    ratio = median(orca) / median(bare)
    report("one task: POST until the manager shows it running", [
        ("runs (alternating)", str(runs)),
        ("baseline: low-level create_container+start, median", f"{median(bare) * 1000:.0f} ms"),
        ("orca: POST -> the manager shows it running, median", f"{median(orca) * 1000:.0f} ms"),
        ("ratio", f"{ratio:.2f}x"),
        ("load average during the runs (first / last)", f"{load[0]} / {load[-1]}"),
        ("command", command_line()),
    ], f"target <= {TARGET:.2f}x: {'met' if ratio <= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
