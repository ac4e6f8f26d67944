"""Placement cost per strategy at 10, 1,000 and 10,000 nodes (pure, no I/O).

The fleet is a realistic mix: every tenth node down, one in twenty ineligible, one in
twenty draining, one in ten full (no cpu left), the rest with some load and two zones of
labels. Each placement asks 0.5 cpu and 256m with a zone constraint (half the fleet). The
fair baseline, measured in the same run, is the same strategy scoring every feasible node
(no sampling), as a scheduler without Nomad's sample would.

    python bench/placement.py [--placements 2000]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import median, report  # noqa: E402
from node import DOWN, UP, Node  # noqa: E402
from scheduler import STRATEGIES, Cluster, sample_size  # noqa: E402
from task import Task  # noqa: E402

SIZES = (10, 1000, 10000)
G = 1 << 30


def fleet(size: int, rng: random.Random) -> list[Node]:
    """`size` nodes of 8 cores and 32g in the mix described above."""
    nodes = []
    for i in range(size):
        used = 8.0 if i % 10 == 3 else rng.uniform(0, 6)
        nodes.append(Node(name=f"n{i}", address=f"10.0.{i // 250}.{i % 250}:5556",
                          state=DOWN if i % 10 == 9 else UP, eligible=i % 20 != 5,
                          drain={"started_at": "", "deadline": None, "remaining": 1} if i % 20 == 7 else None,
                          capacity={"cpu": 8.0, "memory": 32 * G, "disk": 500 * G},
                          allocated={"cpu": used, "memory": int(used * 2 * G), "disk": 0},
                          labels={"zone": "a" if i % 2 else "b"}))
    return nodes


def per_placement(strategy: str, size: int, placements: int, sampled: bool) -> float:
    """Median over 5 repeats of the seconds one placement takes among `size` nodes."""
    rng = random.Random(size)
    cluster = Cluster(fleet(size, rng))
    task = Task(image="busybox", cpu=0.5, memory=256 << 20,
                constraints=[{"label": "zone", "op": "==", "value": "a"}])
    samples = []
    for _ in range(5):
        scheduler = STRATEGIES[strategy](random.Random(1))
        if not sampled:
            scheduler.sample_all_up_to = size
        started = time.perf_counter()
        for _ in range(placements):
            if scheduler.place(task, cluster).node is None:
                raise RuntimeError("the benchmark's fleet should always have room")
        samples.append((time.perf_counter() - started) / placements)
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--placements", type=int, default=2000)
    placements = parser.parse_args().placements
    worst = 0.0
    for strategy in STRATEGIES:
        rows = []
        for size in SIZES:
            sampled = per_placement(strategy, size, placements, sampled=True)
            full = per_placement(strategy, size, max(10, placements // (1 + size // 1000)), sampled=False)
            worst = max(worst, sampled if size == SIZES[-1] else 0.0)
            scored = "next feasible in rotation" if strategy == "round-robin" else (
                f"scores {sample_size(size)} feasible" if sample_size(size) < size else "scores all feasible")
            rows.append((f"{size:>6} nodes", f"{sampled * 1e6:8.1f} us per placement ({scored}); "
                         f"without sampling: {full * 1e6:9.1f} us ({full / sampled:6.1f}x)"))
        report(f"placement ({strategy}; 10% down, 5% ineligible, 5% draining, 10% full; zone constraint)", rows,
               f"{rows[-1][1].split(' us')[0].strip()} us at 10,000 nodes: target <= 1 ms "
               f"{'met' if worst <= 1e-3 else 'NOT met'}")


if __name__ == "__main__":
    main()
