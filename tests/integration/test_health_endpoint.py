"""A worker's GET /health answers from its last periodic engine check: requests, which need no
token, never make engine calls. The worker reaches the real engine through a loopback proxy
that counts the engine's /version requests (each engine check is one)."""
from __future__ import annotations

import contextlib
import os
import socket
import threading

import pytest
import requests

pytestmark = pytest.mark.docker

REQUESTS = 30


class CountingProxy:
    """tcp://127.0.0.1:<port> in front of the engine's unix socket; counts GET /version."""

    def __init__(self, socket_path: str) -> None:
        self._socket_path = socket_path
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._versions = 0
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def versions(self) -> int:
        with self._lock:
            return self._versions

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(self._socket_path)
            with self._lock:
                self._open += [client, engine]
            threading.Thread(target=self._pipe, args=(client, engine, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(engine, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(65536):
                if count:
                    with self._lock:
                        self._versions += data.count(b" /version HTTP/1.1\r\n")
                target.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()


def test_health_requests_make_no_engine_calls(cluster):
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip("the proxy fronts a unix socket engine")
    proxy = CountingProxy(host.removeprefix("unix://"))
    try:
        worker = cluster.start("worker", workers=1, DOCKER_HOST=f"tcp://127.0.0.1:{proxy.port}",
                               ORCA_STATS_INTERVAL="600")
        before = proxy.versions
        assert before >= 1  # the worker checked its engine before serving
        for _ in range(REQUESTS):
            answer = requests.get(f"{worker.worker_url(0)}/health", timeout=5)
            assert answer.status_code == 200 and answer.json()["docker"]["reachable"] is True, answer.text
        # At most the check_engine job's first run (it runs when the jobs start) came meanwhile.
        assert proxy.versions - before <= 1, (before, proxy.versions)
        worker.signal()
    finally:
        proxy.close()
