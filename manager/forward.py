"""Several managers, one leader: a follower forwards writes to the leader and returns its
answer; reads are served where they arrive. The only outbound HTTP to other managers.

Writes are POST/PUT/PATCH/DELETE, except a JSON-RPC body whose every call is a read
(ContainerService.Status). With no leader, a write waits up to LEADER_WAIT seconds for one,
then answers 503 with Retry-After.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable

import requests
from flask import Flask, Response, jsonify, request
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

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
        if self._leadership.is_leader:
            return None
        if not is_write(request.method, request.path, lambda: request.get_data(cache=True)):
            return None
        if request.headers.get(FORWARDED_HEADER):
            # Sent here by a manager that saw this one hold the lease: it may still be taking
            # over (its state not yet reloaded), so wait until it leads; a manager the lease
            # no longer names answers at once. Never forwarded again.
            if self._leadership.wait_to_lead(LEADER_WAIT if self._leadership.holds_lease() else 0.0):
                return None
            return _unavailable("this manager is not the leader (any more); try again")
        deadline = time.monotonic() + LEADER_WAIT
        dead: set[str] = set()  # leaders that refused the connection: the request never reached them
        while True:
            leader = self._leadership.wait_for_leader(max(0.0, deadline - time.monotonic()), avoid=dead)
            if leader is None:
                return _unavailable("no leader is elected at the moment; try again")
            if leader[0] == self._own_name:
                return None  # elected while waiting: serve it here
            try:
                return self.forward(leader[1])
            except _NotDelivered:
                dead.add(leader[0])

    def forward(self, address: str) -> Response:
        """The leader's answer to the current request, or 503 if the leader did not answer.

        Raises:
            _NotDelivered: no connection could be opened: the request surely did not reach
                the leader, so it may be sent to the next one.
        """
        headers = {k: request.headers[k] for k in PASSED_REQUEST if k in request.headers}
        headers[FORWARDED_HEADER] = self._own_name
        wait = _float(request.args.get("wait") or request.args.get("timeout"))
        try:
            answer = self._session.request(
                request.method, f"http://{address}{request.full_path.rstrip('?')}", data=request.get_data(cache=True),
                headers=headers, timeout=(1.0, self._read_timeout + wait), allow_redirects=False)
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                log.info("the leader at %s refused the connection: waiting for the next one", address)
                raise _NotDelivered(address) from None
            return self._failed(address, exc)
        except requests.RequestException as exc:
            return self._failed(address, exc)
        passed = {k: answer.headers[k] for k in PASSED_RESPONSE if k in answer.headers}
        return Response(answer.content, status=answer.status_code, headers=passed)

    @staticmethod
    def _failed(address: str, exc: Exception) -> Response:
        """503 for a request that may or may not have reached the leader (never sent again)."""
        log.info("forwarding %s %s to the leader at %s failed: %s", request.method, request.path, address,
                     type(exc).__name__)
        return _unavailable(f"the leader at {address} did not answer ({type(exc).__name__}); try again")

    def close(self) -> None:
        self._session.close()


class _NotDelivered(Exception):
    """The leader refused the connection: the request never reached it."""


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when no connection was opened (refused, unreachable, connect timeout): nothing was
    sent, so sending the request to another leader cannot run it twice."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


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
