"""HTTP client for the workers' APIs: the manager's only outbound HTTP."""
from __future__ import annotations

import json
import socket
import threading
from typing import Any, Callable, Iterator

import requests
from requests.adapters import HTTPAdapter

from common.streams import unframed
from task import NotFound, OrcaError, TaskEvent, WorkerRejected, WorkerUnavailable, WorkerUnreachable
from task.wire import MAX_BATCH, SEEN_TERM_HEADER, TERM_HEADER

VERSION_HEADER = "X-Orca-Version"
KEEPALIVE = 2.0  # seconds of quiet after which a worker's follow sends a heartbeat
SILENT_AFTER = 5 * KEEPALIVE  # seconds without a byte (heartbeats included): the worker is silent
INSTANCE_HEADER = "X-Orca-Instance"
BATCH_BYTES = 768 * 1024  # a batch's body stays under the worker's 1 MiB limit


class StaleTermRefused(WorkerUnavailable):
    """A worker refused a command: it has seen a newer leader's term. This manager is deposed;
    the command is not the task's fault, so it is treated as not delivered."""


WORKER_POOLS = 4096  # workers whose connections are kept (least recently called dropped first)
POOL_PER_WORKER = 4  # idle connections kept per worker


class WorkerClient:
    """Calls a worker at host:port. Every call has a connect and a read timeout and one try;
    the caller decides when to try again.

    Raises (every method):
        WorkerUnreachable: no answer at all (refused, reset, timed out).
        WorkerUnavailable: a 5xx or a body that is not JSON (the worker is alive).
        NotFound: the worker does not know the task.
        WorkerRejected: another 4xx; the message is the worker's own.
    """

    def __init__(self, connect_timeout: float = 1.0, read_timeout: float = 5.0, token: str = "") -> None:
        self._timeout = (connect_timeout, read_timeout)
        self._token = token  # sent as a bearer token to workers that require ORCA_TOKEN
        self._shared: requests.Session | None = None
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self.term: int | None = None  # the leader's term, sent on every call (several managers)
        self.on_stale_term: Callable[[int], None] = lambda seen: None  # a worker knows a newer term

    def _headers(self) -> dict[str, str] | None:
        term = self.term
        return None if term is None else {TERM_HEADER: str(term)}

    def _session(self) -> requests.Session:
        """The session every thread shares: one connection pool per worker, each keeping at
        most POOL_PER_WORKER idle connections (more are opened while more calls are in
        flight, then closed). A session per thread kept only its last 10 workers' pools: with
        1,000 workers every call opened and closed a connection, which cost the manager a
        third of its time."""
        session = self._shared
        if session is None:
            with self._sessions_lock:
                if self._shared is None:
                    session = requests.Session()
                    session.trust_env = False  # workers are addressed directly, never through a proxy
                    session.mount("http://", HTTPAdapter(max_retries=0, pool_connections=WORKER_POOLS,
                                                         pool_maxsize=POOL_PER_WORKER))
                    if self._token:
                        session.headers["Authorization"] = f"Bearer {self._token}"
                    self._shared = session
                    self._sessions.append(session)
                session = self._shared
        return session

    def close(self) -> None:
        """Close every connection, which also ends long polls in flight (shutdown)."""
        for session in list(self._sessions):
            session.close()

    def _call(self, method: str, address: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        headers = {**(self._headers() or {}), **kwargs.pop("headers", {})}
        try:
            response = self._session().request(method, f"http://{address}{path}", headers=headers, **kwargs)
        except requests.RequestException as exc:
            raise WorkerUnreachable(f"worker {address} unreachable: {type(exc).__name__}") from None
        if response.status_code < 400:
            return response
        message = _error_message(response)
        if response.status_code == 409 and response.headers.get(SEEN_TERM_HEADER, "").isdigit():
            self.on_stale_term(int(response.headers[SEEN_TERM_HEADER]))
            raise StaleTermRefused(f"worker {address}: {message}")
        if response.status_code >= 500:
            raise WorkerUnavailable(f"worker {address} answered {response.status_code}: {message}")
        if response.status_code == 404:
            raise NotFound(message)
        raise WorkerRejected(message)

    @staticmethod
    def _json(response: requests.Response, address: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise WorkerUnavailable(f"worker {address} answered something that is not JSON") from None

    def send_event(self, address: str, event: TaskEvent) -> dict[str, Any]:
        """POST a task event; return the worker's copy of the task."""
        return self._json(self._call("POST", address, "/tasks", json=event.to_dict()), address)

    def send_orders(self, address: str, events: list[TaskEvent]) -> list[dict[str, Any] | OrcaError]:
        """POST task events (runs and stops, each naming its attempt) to the worker's
        /tasks/batch, in requests of at most MAX_BATCH events and BATCH_BYTES bytes.

        Never raises: returns, for each event in order, the worker's copy of the task or the
        error for that event (what the other methods raise). A request refused as a whole
        (4xx) is sent again one event at a time, so one bad event fails only itself."""
        encoded = [json.dumps(event.to_dict(), separators=(",", ":")) for event in events]
        answers: list[dict[str, Any] | OrcaError] = []
        for group in _groups(encoded):
            answers += self._post_orders(address, group)
        return answers

    def _post_orders(self, address: str, group: list[str]) -> list[dict[str, Any] | OrcaError]:
        body = "[" + ",".join(group) + "]"
        try:
            response = self._call("POST", address, "/tasks/batch", data=body,
                                  headers={"Content-Type": "application/json"})
            answers = self._json(response, address)
            if not isinstance(answers, list) or len(answers) != len(group):
                raise WorkerUnavailable(f"worker {address} answered a batch of {len(group)} with something else")
        except (WorkerRejected, NotFound) as exc:
            if len(group) > 1:
                return [answer for item in group for answer in self._post_orders(address, [item])]
            return [exc]
        except WorkerUnavailable as exc:
            return [exc] * len(group)
        return [order_answer(address, answer) for answer in answers]

    def stop_task(self, address: str, task_id: str, attempt: int | None = None) -> dict[str, Any]:
        """DELETE a task's `attempt` on the worker; return its copy of the task."""
        params = {"attempt": attempt} if attempt is not None else None
        return self._json(self._call("DELETE", address, f"/tasks/{task_id}", params=params), address)

    def purge_task(self, address: str, task_id: str) -> dict[str, Any]:
        """DELETE ?purge=true: the worker forgets its finished copy of a task (and its container);
        return the copy it forgot. Raises NotFound (no copy there), WorkerRejected (its copy has
        not finished), WorkerUnavailable."""
        return self._json(self._call("DELETE", address, f"/tasks/{task_id}", params={"purge": "true"}), address)

    def changes(self, address: str, since: int, wait: float = 0.0) -> tuple[str, int, list[dict[str, Any]]]:
        """Return (the worker's instance id, its version, the tasks it changed after `since`).

        With `wait`, the worker holds the request until something changes or `wait` seconds
        pass (a long poll). The instance id changes when the worker restarts; its versions
        then start again."""
        params = {"since": since, "wait": wait} if wait else {"since": since}
        timeout = (self._timeout[0], self._timeout[1] + wait)
        response = self._call("GET", address, "/tasks", params=params, timeout=timeout)
        try:
            version = int(response.headers.get(VERSION_HEADER, "0"))
        except ValueError:
            raise WorkerUnavailable(f"worker {address} sent a bad {VERSION_HEADER} header") from None
        return response.headers.get(INSTANCE_HEADER, ""), version, self._json(response, address)

    def stats(self, address: str) -> dict[str, Any]:
        """GET the worker's /stats."""
        return self._json(self._call("GET", address, "/stats"), address)

    def health(self, address: str) -> dict[str, Any]:
        """GET the worker's /health; return it with its "docker" engine report.

        A 503 that carries an engine report is an answer too: the worker is up, its engine
        is not. Raises NotFound for a worker that has no /health.
        """
        try:
            response = self._session().get(f"http://{address}/health", headers=self._headers(),
                                           timeout=self._timeout)
        except requests.RequestException as exc:
            raise WorkerUnreachable(f"worker {address} unreachable: {type(exc).__name__}") from None
        if response.status_code in (200, 503):
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("docker"), dict):
                return {**body, "docker": _engine_report(body["docker"])}
        if response.status_code == 404:
            raise NotFound(f"worker {address} has no /health")
        raise WorkerUnavailable(f"worker {address} answered /health with {response.status_code}: "
                                f"{_error_message(response)}")

    def open_logs(self, address: str, task_id: str, params: dict[str, str],
                  follow: bool) -> tuple[Iterator[bytes], Callable[[], None]]:
        """GET the worker's /tasks/<id>/logs as a stream.

        Following, the worker frames the stream and sends a heartbeat every KEEPALIVE
        seconds of quiet, so a read that waits SILENT_AFTER seconds means the worker is gone
        silent (frozen, or cut off): the read fails and the follow reconnects.
        Returns:
            (chunks, close): the body as the worker sends it (a line per chunk when
            following); reading raises WorkerUnavailable when the connection breaks. close()
            ends the stream, also from another thread while a read is blocked.
        """
        timeout = (self._timeout[0], SILENT_AFTER if follow else self._timeout[1])
        if follow:
            params = {**params, "keepalive": str(KEEPALIVE)}
        url = f"http://{address}/tasks/{task_id}/logs"
        session = self._stream_session()
        try:
            response = session.get(url, params=params, stream=True, timeout=timeout)
        except requests.RequestException as exc:
            session.close()
            raise WorkerUnavailable(f"worker {address} unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            message = _error_message(response)
            response.close()
            session.close()
            if response.status_code == 404:
                raise NotFound(message)
            if response.status_code >= 500:
                raise WorkerUnavailable(f"worker {address} answered {response.status_code}: {message}")
            raise WorkerRejected(message)
        chunks = _chunks(response, address, session)
        return (_unframed(chunks, address) if follow else chunks), _aborter(response, session)

    def _stream_session(self) -> requests.Session:
        """A session for one stream, closed with it. Streams are opened from short-lived
        reader threads, which would each leave a per-thread session behind; and a stream
        holds its connection to the end anyway. Set up like _session()."""
        session = requests.Session()
        session.trust_env = False
        session.mount("http://", HTTPAdapter(max_retries=0, pool_maxsize=1))
        if self._token:
            session.headers["Authorization"] = f"Bearer {self._token}"
        return session


def _chunks(response: requests.Response, address: str, session: requests.Session) -> Iterator[bytes]:
    try:
        for chunk in response.iter_content(chunk_size=None):
            if chunk:
                yield chunk
    except (requests.RequestException, OSError, ValueError, AttributeError) as exc:
        raise WorkerUnavailable(f"worker {address}: the output stream broke: {type(exc).__name__}") from None
    finally:
        response.close()
        session.close()


def _unframed(chunks: Iterator[bytes], address: str) -> Iterator[bytes]:
    try:
        yield from unframed(chunks)
    except ValueError:
        raise WorkerUnavailable(f"worker {address}: the output stream is not framed") from None


def _aborter(response: requests.Response, session: requests.Session) -> Callable[[], None]:
    """A close() for a streamed response that also wakes a read blocked in another thread.

    Response.close() alone would wait for that read (it takes the buffer's lock), so the
    socket is shut down first, as the Docker SDK does for its own streams.
    """
    def close() -> None:
        sock = getattr(getattr(getattr(getattr(response.raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed
        response.close()
        session.close()
    return close


def _groups(encoded: list[str]) -> list[list[str]]:
    """Split encoded events into groups of at most MAX_BATCH events and BATCH_BYTES bytes
    (an event larger than that goes alone)."""
    groups: list[list[str]] = []
    size = 0
    for item in encoded:
        if not groups or len(groups[-1]) >= MAX_BATCH or size + len(item) > BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += len(item) + 1
    return groups


def order_answer(address: str, answer: Any) -> dict[str, Any] | OrcaError:
    """One event's answer in a batch: the task, or the error its status stands for."""
    if not isinstance(answer, dict) or not isinstance(answer.get("status"), int):
        return WorkerUnavailable(f"worker {address} sent a malformed batch answer")
    status = answer["status"]
    if status < 400 and isinstance(answer.get("task"), dict):
        return answer["task"]
    message = str(answer.get("error"))[:500]
    if status >= 500 or status < 400:
        return WorkerUnavailable(f"worker {address} answered {status}: {message}")
    return NotFound(message) if status == 404 else WorkerRejected(message)


ENGINE_FIELDS = ("reachable", "version", "api_version", "error", "checked_at")


def _engine_report(report: dict[str, Any]) -> dict[str, Any]:
    """The known fields of a worker's engine report, with `reachable` True, False or None."""
    clean = {key: str(report[key])[:500] for key in ENGINE_FIELDS[1:] if report.get(key) is not None}
    reachable = report.get("reachable")
    return {"reachable": reachable if isinstance(reachable, bool) else None, **clean}


def _error_message(response: requests.Response) -> str:
    try:
        return str(response.json().get("error"))[:500]
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"

