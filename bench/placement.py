"""Scheduler placement cost with 10, 100, 1,000 and 10,000 nodes (pure, no I/O).

Each size runs the three steps (select candidates, score, pick) for many placements over a
node list where every tenth node is down; the 10-node figure is the baseline.

    python bench/placement.py [--placements 20000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import median, report  # noqa: E402
from node import DOWN, UP, Node  # noqa: E402
from scheduler import STRATEGIES, place  # noqa: E402
from task import Task  # noqa: E402


def per_placement(strategy: str, size: int, placements: int) -> float:
    """Median over 5 repeats of the seconds one placement takes among `size` nodes."""
    nodes = [Node(name=f"n{i}", address=f"10.0.0.{i}:5556", state=DOWN if i % 10 == 9 else UP) for i in range(size)]
    task = Task(image="busybox")
    samples = []
    for _ in range(5):
        scheduler = STRATEGIES[strategy]()
        started = time.perf_counter()
        for _ in range(placements):
            place(scheduler, task, nodes)
        samples.append((time.perf_counter() - started) / placements)
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--placements", type=int, default=20000)
    placements = parser.parse_args().placements
    for strategy in STRATEGIES:
        sizes = [10, 100, 1000, 10000]
        costs = {size: per_placement(strategy, size, placements) for size in sizes}
        base = costs[10]
        rows = [(f"{size:>6} nodes", f"{costs[size] * 1e6:8.2f} us per placement  ({costs[size] / base:5.2f}x the 10-node cost,"
                 f" {size // 10}x the nodes)") for size in sizes]
        linear = all(costs[s] / base <= 2 * s / 10 for s in sizes)
        verdict = (f"target <= 1 ms at 10,000 nodes and no worse than linear: "
                   f"{'met' if costs[10000] <= 1e-3 and linear else 'NOT met'}")
        report(f"placement ({strategy}, every tenth node down)", rows, verdict)


if __name__ == "__main__":
    main()
