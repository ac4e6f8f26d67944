"""HTTP client for the workers' APIs: the manager's only outbound HTTP."""
from __future__ import annotations

import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from task import NotFound, TaskEvent, WorkerRejected, WorkerUnavailable

VERSION_HEADER = "X-Orca-Version"
INSTANCE_HEADER = "X-Orca-Instance"


class WorkerClient:
    """Calls a worker at host:port. Every call has a connect and a read timeout and one try;
    the caller decides when to try again.

    Raises (every method):
        WorkerUnavailable: no answer, a timeout, a 5xx or a body that is not JSON.
        NotFound: the worker does not know the task.
        WorkerRejected: another 4xx; the message is the worker's own.
    """

    def __init__(self, connect_timeout: float = 1.0, read_timeout: float = 5.0) -> None:
        self._timeout = (connect_timeout, read_timeout)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # workers are addressed directly, never through a proxy
            session.mount("http://", HTTPAdapter(max_retries=0, pool_maxsize=32))
            self._local.session = session
        return session

    def _call(self, method: str, address: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session().request(method, f"http://{address}{path}", timeout=self._timeout, **kwargs)
        except requests.RequestException as exc:
            raise WorkerUnavailable(f"worker {address} unreachable: {type(exc).__name__}") from None
        if response.status_code < 400:
            return response
        message = _error_message(response)
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

    def stop_task(self, address: str, task_id: str) -> dict[str, Any]:
        """DELETE a task on the worker; return its copy of the task."""
        return self._json(self._call("DELETE", address, f"/tasks/{task_id}"), address)

    def changes(self, address: str, since: int) -> tuple[str, int, list[dict[str, Any]]]:
        """Return (the worker's instance id, its version, the tasks it changed after `since`).

        The instance id changes when the worker restarts; its versions then start again."""
        response = self._call("GET", address, "/tasks", params={"since": since})
        try:
            version = int(response.headers.get(VERSION_HEADER, "0"))
        except ValueError:
            raise WorkerUnavailable(f"worker {address} sent a bad {VERSION_HEADER} header") from None
        return response.headers.get(INSTANCE_HEADER, ""), version, self._json(response, address)

    def stats(self, address: str) -> dict[str, Any]:
        """GET the worker's /stats."""
        return self._json(self._call("GET", address, "/stats"), address)


def _error_message(response: requests.Response) -> str:
    try:
        return str(response.json().get("error"))[:500]
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
