"""Several managers, one leader: a follower forwards writes to the leader and returns its
answer; reads are served where they arrive. The only outbound HTTP to other managers.

Writes are POST/PUT/PATCH/DELETE, except a JSON-RPC body whose every call is a read
(ContainerService.Status). With no leader, a write waits up to LEADER_WAIT seconds for one,
then answers 503 with Retry-After.
"""
from __future__ import annotations

import json
import logging
from typing import Callable

import requests
from flask import Flask, Response, jsonify, request
from requests.adapters import HTTPAdapter

from manager.leader import Leadership

log = logging.getLogger(__name__)

LEADER_WAIT = 3.0  # seconds a write waits for a leader before 503
RETRY_AFTER = "1"
FORWARDED_HEADER = "X-Orca-Forwarded-By"  # a forwarded request is never forwarded again
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JRPC_READS = frozenset({"ContainerService.Status"})
PASSED_REQUEST = ("Content-Type", "Authorization", "Accept")
PASSED_RESPONSE = ("Content-Type", "Location", "Retry-After")


def is_write(method: str, path: str, body: Callable[[], bytes]) -> bool:
    """True if the request changes state and so belongs to the leader."""
    if method in READ_METHODS:
        return False
    if path.rstrip("/") == "/jrpc":
        return not _jrpc_reads_only(body())
    return True


def _jrpc_reads_only(raw: bytes) -> bool:
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return True  # answered locally with the protocol's own parse error
    calls = payload if isinstance(payload, list) else [payload]
    return all(isinstance(c, dict) and c.get("method") in JRPC_READS for c in calls)


class Forwarder:
    """Sends a follower's writes to the leader (one try, with timeouts)."""

    def __init__(self, leadership: Leadership, own_name: str, read_timeout: float = 30.0) -> None:
        self._leadership = leadership
        self._own_name = own_name
        self._read_timeout = read_timeout
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.mount("http://", HTTPAdapter(max_retries=0, pool_maxsize=32))

    def install(self, app: Flask) -> None:
        """Forward `app`'s writes while this manager is not the leader (runs after the token check)."""
        app.before_request(self._before)

    def _before(self):
        if self._leadership.is_leader or request.headers.get(FORWARDED_HEADER):
            return None
        if not is_write(request.method, request.path, lambda: request.get_data(cache=True)):
            return None
        leader = self._leadership.wait_for_leader(LEADER_WAIT)
        if leader is None:
            return _unavailable("no leader is elected at the moment; try again")
        if leader[0] == self._own_name:
            return None  # elected while waiting: serve it here
        return self.forward(leader[1])

    def forward(self, address: str) -> Response:
        """The leader's answer to the current request, or 503 if the leader did not answer."""
        headers = {k: request.headers[k] for k in PASSED_REQUEST if k in request.headers}
        headers[FORWARDED_HEADER] = self._own_name
        wait = _float(request.args.get("wait") or request.args.get("timeout"))
        try:
            answer = self._session.request(
                request.method, f"http://{address}{request.full_path.rstrip('?')}", data=request.get_data(cache=True),
                headers=headers, timeout=(1.0, self._read_timeout + wait), allow_redirects=False)
        except requests.RequestException as exc:
            log.info("forwarding %s %s to the leader at %s failed: %s", request.method, request.path, address,
                     type(exc).__name__)
            return _unavailable(f"the leader at {address} did not answer ({type(exc).__name__}); try again")
        passed = {k: answer.headers[k] for k in PASSED_RESPONSE if k in answer.headers}
        return Response(answer.content, status=answer.status_code, headers=passed)

    def close(self) -> None:
        self._session.close()


def _unavailable(message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = 503
    response.headers["Retry-After"] = RETRY_AFTER
    return response


def _float(raw: str | None) -> float:
    try:
        return min(max(float(raw or 0), 0.0), 600.0)
    except ValueError:
        return 0.0
