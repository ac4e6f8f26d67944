"""The manager's follow of a worker has a read timeout, with keep-alive (real processes, real
engine): a follow through the manager of a task whose worker freezes (SIGSTOP) does not hang
on the frozen worker. The worker is declared down, the task moves, and the follow goes on with
the output of the task's new container."""
from __future__ import annotations

import queue
import threading

import pytest
import requests

from tests.integration.conftest import post_task, wait_state
from tests.integration.test_crash_windows import frozen, logs_of, owner_and_other, split_cluster, waiting

pytestmark = pytest.mark.docker

TICKER = ["sh", "-c", "while true; do echo tick $(hostname); sleep 0.5; done"]


class Reader:
    """Reads the lines of a streamed response in a thread, into a queue."""

    def __init__(self, url: str) -> None:
        self.lines: queue.Queue = queue.Queue()
        self._response = requests.get(url, params={"follow": "true"}, stream=True, timeout=(5, None))
        assert self._response.status_code == 200, self._response.text
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._response.iter_lines():
                self.lines.put(line.decode())
        except (requests.RequestException, OSError, ValueError, AttributeError):
            pass  # closed by close(), from the test's thread

    def hosts_seen(self) -> set[str]:
        seen = set()
        while not self.lines.empty():
            seen.add(self.lines.get().split()[-1])
        return seen

    def close(self) -> None:
        self._response.close()


def test_a_follow_does_not_hang_on_a_frozen_worker(cluster, test_image):
    manager, workers = split_cluster(cluster, 2, ORCA_STATS_INTERVAL="0.3", ORCA_DOWN_AFTER="2")
    processes = (manager, *workers)
    task_id = post_task(manager.manager_url, {"image": test_image, "command": TICKER}).json()["id"]
    first = wait_state(manager.manager_url, task_id, ("running",))
    owner, other = owner_and_other(workers, first["node"])
    reader = Reader(f"{manager.manager_url}/tasks/{task_id}/logs")
    try:
        first_host = waiting(lambda: reader.hosts_seen(), 20, "the first lines", processes).pop()
        with frozen(owner):
            waiting(lambda: requests.get(f"{manager.manager_url}/tasks/{task_id}", timeout=5).json()["node"]
                    == other.worker_address(0), 40, "the task to move", processes)
            seen: set[str] = set()
            waiting(lambda: (seen.update(reader.hosts_seen()) or seen - {first_host}), 40,
                    "lines of the moved task's new container through the same follow", processes)
    finally:
        reader.close()
