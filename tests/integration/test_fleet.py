"""A reduced bench/fleet.py run in the suite: one real manager process (SQLite store) and 100
simulated workers (the real worker HTTP service with a fake container runtime, 50 per
process), 5,000 tasks submitted in batches. Asserts correctness only, never timing: every
task placed exactly once (running at attempt 1 on the worker the manager names, on no other
worker), and the paged listing complete and without repeats across its pages."""
from bench.fleet import run


def test_a_fleet_places_every_task_exactly_once_and_lists_them_all():
    figures = run(workers=100, tasks=5000, per_host=50, baseline=False, recovery=False)
    assert figures.problems == []
    assert figures.pages == 6  # 5,000 tasks in pages of 997
    assert len(figures.worker_latencies) == 4999  # every submitted task started on a worker
