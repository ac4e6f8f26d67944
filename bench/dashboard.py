"""How long the dashboard's overview takes to render with 10 and 10,000 tasks (in process,
Flask's test client; no network, no browser).

The tasks sit in a manager over the memory store with two fake workers that never answer
(so nothing is sent anywhere); 10,000 tasks also leave the event ring full. The fair
baselines, measured in the same run: the same overview with 10 tasks (it should not grow
with the number of tasks: it reads counts and one page), and the API's GET /tasks?limit=50
(one page of JSON). The target is a median under 300 ms.

    python bench/dashboard.py [--renders 50]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import median, percentile, report  # noqa: E402
from manager.api import create_app  # noqa: E402
from manager.manager import Manager  # noqa: E402
from scheduler import RoundRobin  # noqa: E402
from task import Task, TaskEvent, WorkerUnreachable  # noqa: E402

HTML = {"Accept": "text/html"}


class Unreachable:
    """Workers that never answer: the manager keeps its tasks pending."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise WorkerUnreachable("benchmark: no workers")
        return fail


def client_with(tasks: int):
    manager = Manager(["w1:1", "w2:2"], Unreachable(), RoundRobin())
    for n in range(tasks):
        manager.submit(TaskEvent(task=Task(name=f"t{n}", image="busybox", command=["sleep", "9"])))
    return create_app(manager).test_client()


def timed(client, path: str, renders: int, headers=None) -> list[float]:
    client.get(path, headers=headers)  # warm: templates compiled
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=50)
    args = parser.parse_args()
    small, large = client_with(10), client_with(10_000)
    rows, medians = [], {}
    for name, client, path, headers in (("overview, 10 tasks", small, "/ui", HTML),
                                        ("overview, 10,000 tasks", large, "/ui", HTML),
                                        ("tasks page, 10,000 tasks", large, "/ui/tasks", HTML),
                                        ("GET /tasks?limit=50, 10,000 tasks", large, "/tasks?limit=50", None)):
        times = timed(client, path, args.renders, headers)
        medians[name] = median(times)
        rows.append((name, f"median {median(times) * 1000:.1f} ms, p95 {percentile(times, 95) * 1000:.1f} ms"))
    ratio = medians["overview, 10,000 tasks"] / medians["overview, 10 tasks"]
    rows.append(("overview 10,000 / 10 tasks", f"{ratio:.2f}x"))
    verdict = "under 300 ms" if medians["overview, 10,000 tasks"] < 0.3 else "OVER 300 ms"
    report("dashboard overview render", rows, f"{verdict} with 10,000 tasks")


if __name__ == "__main__":
    main()
