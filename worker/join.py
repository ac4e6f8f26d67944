"""Joining a manager: the worker's only outbound HTTP (POST {ORCA_MANAGER_URL}/nodes).

The worker keeps its node id in its data directory, so a restart rejoins as the same node.
It registers once when it starts, retrying with a bounded backoff until the manager
records it; after that only the manager's liveness checks keep it in the cluster, so a
node the operator removed stays removed while this worker runs.
"""
from __future__ import annotations

import logging
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import requests

log = logging.getLogger(__name__)

FIRST_DELAY = 0.5  # seconds before the first retry, doubling
MAX_DELAY = 10.0
TIMEOUT = (2.0, 5.0)  # connect, read


def node_id(data_dir: str, name: str) -> str:
    """The node id kept in `<data_dir>/node-<name>.id`, made on first use."""
    path = Path(data_dir) / f"node-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.id"
    try:
        return str(uuid.UUID(path.read_text().strip()))
    except (OSError, ValueError):
        pass
    value = str(uuid.uuid4())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    return value


class Joiner:
    """Registers this worker with the manager, in a background thread, until it succeeds."""

    def __init__(self, manager_urls: tuple[str, ...], registration: dict[str, Any], token: str = "") -> None:
        self._urls = [f"{url}/nodes" for url in manager_urls]  # tried in turn: one of them leads
        self._body = registration
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._halt = threading.Event()
        self.joined = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"join-{registration['name']}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop trying (idempotent)."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(TIMEOUT[0] + TIMEOUT[1])

    def _run(self) -> None:
        delay = FIRST_DELAY
        while not self._halt.is_set():
            if any(self.join_once(url) for url in self._urls):
                self.joined.set()
                return
            self._halt.wait(delay)
            delay = min(MAX_DELAY, delay * 2)

    def join_once(self, url: str) -> bool:
        """One registration at `url`; True when the manager recorded it."""
        try:
            answer = requests.post(url, json=self._body, headers=self._headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            log.info("worker %s: manager at %s not reached yet: %s", self._body["name"], url, exc)
            return False
        if answer.status_code in (200, 201):
            log.info("worker %s joined the manager at %s as node %s", self._body["name"], url, self._body["id"])
            return True
        level = logging.WARNING if 400 <= answer.status_code < 500 else logging.INFO
        log.log(level, "worker %s: the manager at %s refused to register it (%d): %s", self._body["name"], url,
                answer.status_code, answer.text[:300])
        return False
