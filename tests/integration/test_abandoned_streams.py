"""Clients that hang up give their slots back, with real `python main.py` processes and the
real engine: each server serves at most 8 follows and waits at once (503 beyond), and a follow
of a quiet task sends nothing (not even headers) until the task prints, so before waitress
could tell that a client left, 8 abandoned follows blocked every later follow and wait."""
from __future__ import annotations

import contextlib
import socket
import uuid

import pytest
import requests

from tests.integration.conftest import post_task, wait_for, wait_state

pytestmark = pytest.mark.docker

LONG_REQUESTS = 8  # MAX_LONG_REQUESTS (manager) and MAX_FOLLOWS (worker)


def start(orca, test_image, command: list[str]) -> str:
    task_id = str(uuid.uuid4())
    response = post_task(orca.manager_url, {"id": task_id, "image": test_image, "command": command,
                                            "restart_policy": "no"})
    assert response.status_code == 201, response.text
    wait_state(orca.manager_url, task_id, ("running",), timeout=30)
    return task_id


def open_requests(url: str, paths: list[str]) -> list[socket.socket]:
    """Send each GET on its own connection and read nothing back."""
    host, _, port = url.removeprefix("http://").partition(":")
    sockets = []
    for path in paths:
        client = socket.create_connection((host, int(port)), timeout=5)
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        sockets.append(client)
    return sockets


def hang_up(sockets: list[socket.socket]) -> None:
    for client in sockets:
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        client.close()


def refused(url: str) -> bool:
    return requests.get(url, timeout=5).status_code == 503


def first_line_of_follow(url: str) -> bytes:
    with requests.get(url, params={"follow": "true"}, stream=True, timeout=(5, 30)) as response:
        assert response.status_code == 200, response.text
        return next(response.iter_lines())


def test_abandoned_follows_and_waits_free_their_slots(orca, test_image):
    quiet = start(orca, test_image, ["sleep", "300"])
    chatty = start(orca, test_image, ["sh", "-c", "echo first; sleep 300"])
    manager = orca.manager_url
    for paths in ([f"/tasks/{quiet}/logs?follow=true"] * LONG_REQUESTS,
                  [f"/tasks/{quiet}/wait?timeout=300"] * LONG_REQUESTS,
                  [f"/tasks/{quiet}/logs?follow=true", f"/tasks/{quiet}/wait?timeout=300"] * LONG_REQUESTS):
        clients = open_requests(manager, paths)
        wait_for(lambda: refused(f"{manager}/tasks/{quiet}/wait?timeout=0"), timeout=15, what="every slot taken")
        hang_up(clients)
        # Every kind of long request is served again: a wait, a run to completion, a follow.
        wait_for(lambda: requests.get(f"{manager}/tasks/{quiet}/wait?timeout=0", timeout=5).status_code == 200,
                 timeout=15, what="a wait served again")
        ran = requests.post(f"{manager}/tasks?wait=60", timeout=70, json={
            "task": {"image": test_image, "command": ["echo", "done"], "restart_policy": "no"}})
        assert ran.status_code == 201 and ran.json()["output"]["text"] == "done\n", ran.text
        assert first_line_of_follow(f"{manager}/tasks/{chatty}/logs") == b"first"


def test_abandoned_follows_on_a_worker_free_its_slots(orca, test_image):
    quiet = start(orca, test_image, ["sleep", "300"])
    chatty = start(orca, test_image, ["sh", "-c", "echo first; sleep 300"])
    node = requests.get(f"{orca.manager_url}/tasks/{chatty}", timeout=5).json()["node"]
    worker = next(n["address"] for n in requests.get(f"{orca.manager_url}/nodes", timeout=5).json()
                  if n["name"] == node)
    quiet_on_worker = requests.get(f"http://{worker}/tasks/{quiet}", timeout=5).ok
    target = quiet if quiet_on_worker else chatty  # a task of that worker; a quiet one if it has it
    clients = open_requests(f"http://{worker}", [f"/tasks/{target}/logs?follow=true&tail=0"] * LONG_REQUESTS)
    wait_for(lambda: refused(f"http://{worker}/tasks/{target}/logs?follow=true"), timeout=15,
             what="every follow slot of the worker taken")
    hang_up(clients)
    wait_for(lambda: served_first_line(f"http://{worker}/tasks/{chatty}/logs"), timeout=15,
             what="a follow served by the worker again")
    assert first_line_of_follow(f"{orca.manager_url}/tasks/{chatty}/logs") == b"first"


def served_first_line(url: str) -> bool:
    """Follow `url`: False when refused (503), else whether its first line is `first`."""
    with requests.get(url, params={"follow": "true"}, stream=True, timeout=(5, 30)) as response:
        return response.status_code != 503 and next(response.iter_lines()) == b"first"
