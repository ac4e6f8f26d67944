"""GET /events against a real manager and worker (waitress, the real engine).

A task's changes arrive in order with their attempt; a reader that reconnects with ?since
misses nothing; a client that hangs up frees its stream slot at once (long before the next
heartbeat would have noticed); the manager stops promptly with streams open.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading

import pytest
import requests

from manager.events_api import HEARTBEAT, MAX_EVENT_STREAMS
from tests.integration.conftest import Cluster, post_task, wait_for, wait_state


@pytest.fixture(scope="module")
def orca(tmp_path_factory, docker_client, test_image):
    cluster = Cluster(tmp_path_factory.mktemp("events"), docker_client)
    try:
        yield cluster.start("all", workers=1, ORCA_STORE="memory")
    finally:
        cluster.close()


class Reader:
    """Reads an SSE stream in a thread, collecting its messages."""

    def __init__(self, url: str, **params) -> None:
        self.response = wait_for(lambda: granted(url, params), timeout=5, what="a stream slot")
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.messages: list[dict] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line == "" and "data" in fields:
                    self.messages.append({"id": fields.get("id"), "event": fields.get("event"),
                                          "data": json.loads(fields["data"])})
                    fields = {}
                elif line and not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by the test

    def task_states(self, task_id: str) -> list[tuple[str, int]]:
        return [(m["data"]["data"]["state"], m["data"]["data"]["attempt"]) for m in list(self.messages)
                if m["event"] == "task" and m["data"]["data"]["id"] == task_id and m["data"]["kind"] != "updated"]

    def close(self) -> None:
        """Hang up as a browser does. (Closing the response alone leaves the socket open
        while the reading thread is still in recv.)"""
        hang_up(self.response)
        self._thread.join(5)


def hang_up(response: requests.Response) -> None:
    """Shut the response's connection down (both ways), then close it."""
    try:
        with socket.socket(fileno=os.dup(response.raw.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass  # already closed
    response.close()


def test_a_task_s_changes_arrive_in_order_with_their_attempt(orca, test_image):
    reader = Reader(orca.manager_url, topic="task")
    try:
        task_id = post_task(orca.manager_url, {"image": test_image, "command": ["sh", "-c", "sleep 0.5"]}).json()["id"]
        wait_for(lambda: ("completed", 1) in reader.task_states(task_id), what="the completed event")
        assert reader.task_states(task_id) == [("pending", 0), ("scheduled", 1), ("running", 1), ("completed", 1)]
        indices = [int(m["id"]) for m in reader.messages]
        assert indices == sorted(indices) and len(set(indices)) == len(indices)
        assert all(m["data"]["index"] == int(m["id"]) for m in reader.messages)
    finally:
        reader.close()


def test_a_reader_that_reconnects_with_since_misses_nothing(orca, test_image):
    first = Reader(orca.manager_url)
    one = post_task(orca.manager_url, {"image": test_image, "command": ["true"]}).json()["id"]
    wait_for(lambda: first.task_states(one), what="the first task's event")
    first.close()
    seen = int(first.messages[-1]["id"])
    two = post_task(orca.manager_url, {"image": test_image, "command": ["true"]}).json()["id"]
    wait_state(orca.manager_url, two, ("completed",))
    again = Reader(orca.manager_url, since=seen)
    try:
        wait_for(lambda: ("completed", 1) in again.task_states(two), what="the second task's events")
        indices = [int(m["id"]) for m in again.messages]
        assert indices == list(range(seen + 1, seen + 1 + len(indices)))  # no gap, no repeat
        assert again.task_states(two)[:2] == [("pending", 0), ("scheduled", 1)]
    finally:
        again.close()


def test_a_client_that_hangs_up_frees_its_slot_long_before_a_heartbeat(orca):
    readers = [Reader(orca.manager_url) for _ in range(MAX_EVENT_STREAMS)]
    admitted: list[requests.Response] = []
    try:
        refused = requests.get(f"{orca.manager_url}/events", timeout=5)
        assert refused.status_code == 503 and "too many event streams" in refused.json()["error"]
        readers.pop().close()

        admitted.append(wait_for(lambda: granted(orca.manager_url, {}), timeout=HEARTBEAT / 3, interval=0.1,
                                 what="the freed slot"))
        assert requests.get(f"{orca.manager_url}/tasks", timeout=5).status_code == 200  # short requests still served
    finally:
        for reader in readers:
            reader.close()
        for response in admitted:
            hang_up(response)


def granted(url: str, params: dict) -> requests.Response | None:
    """GET /events; the response if it was granted (a stream that ended a moment ago may
    still hold its slot for up to POLL seconds)."""
    response = requests.get(f"{url}/events", params=params, stream=True, timeout=(3, 60))
    if response.status_code == 200:
        return response
    assert response.status_code == 503, response.text
    response.close()
    return None


def test_the_manager_stops_promptly_with_streams_open(tmp_path, docker_client):
    cluster = Cluster(tmp_path, docker_client)
    try:
        process = cluster.start("all", workers=1, ORCA_STORE="memory")
        readers = [Reader(process.manager_url) for _ in range(3)]
        assert process.signal(signal.SIGTERM, timeout=10) == 0
        for reader in readers:
            reader._thread.join(5)
            assert not reader._thread.is_alive()
    finally:
        cluster.close()


def test_orca_events_prints_a_task_s_changes_as_they_come(orca, test_image):
    import subprocess
    import sys

    from tests.integration.conftest import ROOT

    env = {**os.environ, "ORCA_MANAGER_URL": orca.manager_url, "PYTHONUNBUFFERED": "1"}
    env.pop("ORCA_TOKEN", None)
    command = subprocess.Popen([sys.executable, "main.py", "events", "--topic", "task", "--since", "0"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(command.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        task_id = post_task(orca.manager_url, {"image": test_image, "command": ["true"]}).json()["id"]
        wait_for(lambda: any(task_id[:8] in line and " completed " in line for line in lines),
                 what=f"orca events to print the task completed; got {lines}")
        mine = [line for line in lines if task_id[:8] in line]
        assert [line.split()[4] for line in mine if line.split()[3] != "updated"][:1] == [task_id[:8]]
        assert " pending attempt 0" in mine[0] and any(" running attempt 1 on " in line for line in mine)
    finally:
        command.terminate()
        command.wait(10)
