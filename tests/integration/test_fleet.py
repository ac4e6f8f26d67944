"""A reduced bench/fleet.py run in the suite: one real manager process (SQLite store) and 100
simulated workers (the real worker HTTP service with a fake container runtime, 50 per
process), 5,000 tasks submitted in batches. Asserts correctness only, never timing: every
task placed exactly once (running at attempt 1 on the worker the manager names, on no other
worker), the paged listing complete and without repeats across its pages, and purges at that
scale (200 tasks stopped, then purged: gone from the listing, the counts and their workers)."""
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.fleet import run
from tests.integration.conftest import wait_for

PURGED = 200


def stop_and_purge(url: str, figures) -> None:
    """Stop PURGED tasks, purge them once completed, then check the listing and counts."""
    session = requests.Session()
    victims = [t["id"] for t in session.get(f"{url}/tasks", params={"limit": PURGED}, timeout=60).json()]
    refused = session.delete(f"{url}/tasks/{victims[0]}", params={"purge": "true"}, timeout=30)
    assert refused.status_code == 409  # still running
    with ThreadPoolExecutor(8) as pool:
        stops = list(pool.map(lambda i: requests.delete(f"{url}/tasks/{i}", timeout=30).status_code, victims))
    assert stops == [202] * PURGED
    wait_for(lambda: len(session.get(f"{url}/tasks", params={"state": "completed", "limit": PURGED},
                                     timeout=60).json()) == PURGED, timeout=120, what="the stopped tasks to end")
    nodes = {t["id"]: t["node"] for t in session.get(f"{url}/tasks", params={"limit": PURGED}, timeout=60).json()}
    with ThreadPoolExecutor(8) as pool:
        purges = list(pool.map(lambda i: requests.delete(f"{url}/tasks/{i}", params={"purge": "true"},
                                                         timeout=30).status_code, victims))
    assert purges == [200] * PURGED
    listed, after = [], None
    while True:
        response = session.get(f"{url}/tasks", params={"limit": 997, **({"after": after} if after else {})},
                               timeout=60)
        listed += [t["id"] for t in response.json()]
        after = response.headers.get("X-Orca-Next")
        if not after:
            break
    assert len(listed) == len(set(listed)) == figures.tasks - PURGED
    assert not set(listed) & set(victims)
    metrics = session.get(f"{url}/metrics", timeout=30).text
    assert 'orca_tasks{state="completed"} 0' in metrics
    assert f'orca_tasks{{state="running"}} {figures.tasks - PURGED}' in metrics
    for task_id in victims[:10]:  # and its worker forgot it (a loaded fleet host may answer slowly)
        wait_for(lambda: requests.get(f"http://{nodes[task_id]}/tasks/{task_id}", timeout=10).status_code == 404,
                 timeout=60, what=f"worker {nodes[task_id]} to have purged {task_id}")


def test_a_fleet_places_every_task_exactly_once_and_lists_them_all():
    figures = run(workers=100, tasks=5000, per_host=50, baseline=False, recovery=False, then=stop_and_purge)
    assert figures.problems == []
    assert figures.pages == 6  # 5,000 tasks in pages of 997
    assert len(figures.worker_latencies) == 4999  # every submitted task started on a worker
