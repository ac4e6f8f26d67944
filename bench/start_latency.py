"""One task: POST to the manager until its GET shows `running`, against a bare Docker SDK
create+start of the same image, measured alternately in the same run.

The target's baseline is the SDK's high-level `containers.create()` + `.start()` (which
inspects the container after creating it); the low-level `api.create_container()` +
`api.start()` is printed too, as the engine's floor.

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
    IMAGE, PREFIX, Orca, build_image, docker_client, median, remove_bench_containers, report, wait_until,
)


def bare_start(client, i: int) -> float:
    started = time.perf_counter()
    container = client.containers.create(IMAGE, ["sleep", "30"], name=f"{PREFIX}-bare-{i}", detach=True)
    container.start()
    elapsed = time.perf_counter() - started
    container.remove(force=True)
    return elapsed


def bare_start_low_level(client, i: int) -> float:
    started = time.perf_counter()
    created = client.api.create_container(IMAGE, ["sleep", "30"], name=f"{PREFIX}-bare-ll-{i}", detach=True)
    client.api.start(created["Id"])
    elapsed = time.perf_counter() - started
    client.api.remove_container(created["Id"], force=True)
    return elapsed


def orca_start(session: requests.Session, url: str) -> float:
    started = time.perf_counter()
    task = session.post(f"{url}/tasks", json={"task": {"image": IMAGE, "command": ["sleep", "30"]}}, timeout=10).json()
    wait_until(lambda: session.get(f"{url}/tasks/{task['id']}", timeout=5).json()["state"] == "running", 30, 0.002)
    elapsed = time.perf_counter() - started
    session.delete(f"{url}/tasks/{task['id']}", timeout=5)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    client = docker_client()
    build_image(client)
    remove_bench_containers(client)
    bare, low, orca = [], [], []
    with Orca("all", workers=2) as cluster, requests.Session() as session:
        for i in range(2):  # warm both paths
            bare_start(client, 1000 + i)
            orca_start(session, cluster.url)
        for i in range(runs):
            bare.append(bare_start(client, i))
            low.append(bare_start_low_level(client, i))
            orca.append(orca_start(session, cluster.url))
        time.sleep(1)
    remove_bench_containers(client)
    ratio = median(orca) / median(bare)
    report("one task: POST until GET shows running", [
        ("runs", str(runs)),
        ("bare SDK create+start, median", f"{median(bare) * 1000:.0f} ms"),
        ("bare low-level API create+start, median", f"{median(low) * 1000:.0f} ms"),
        ("orca POST -> running, median", f"{median(orca) * 1000:.0f} ms"),
        ("ratio to SDK create+start (target)", f"{ratio:.2f}x"),
        ("ratio to low-level create+start", f"{median(orca) / median(low):.2f}x"),
    ], f"target <= 1.15x: {'met' if ratio <= 1.15 else 'NOT met'}")


if __name__ == "__main__":
    main()
