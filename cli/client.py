"""HTTP client for the manager's API: the command line's only outbound HTTP."""
from __future__ import annotations

import re
from typing import Any, Iterator
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

DEFAULT_URL = "http://127.0.0.1:5555"
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()]+)")


class ClientError(Exception):
    """Something the command line reports as one line on stderr and exit status 1."""


class ManagerUnreachable(ClientError):
    """No answer from the manager: refused, timed out, or not an Orca manager."""


class ManagerRejected(ClientError):
    """The manager answered with an error; the message is the manager's own.

    Attributes:
        status: the HTTP status code.
        message: the manager's `error` text.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        if self.status == 503:
            return f"the manager is unavailable: {self.message}"
        if self.status >= 500:
            return f"the manager failed (HTTP {self.status}): {self.message}"
        return f"rejected by the manager: {self.message}"


class UnknownTask(ClientError):
    """No task has the given id (or no task id starts with the given prefix)."""


class LogsUnsupported(ClientError):
    """The manager has no logs route."""


def normalize_url(url: str) -> str:
    """Return `url` with a scheme (http:// when absent) and no trailing slash."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def normalize_urls(urls: str) -> str:
    """A comma-separated list of managers' URLs, each normalized (see normalize_url)."""
    return ",".join(normalize_url(url) for url in urls.split(",") if url.strip())


def default_url(env: dict[str, str]) -> str:
    """The manager's URL: ORCA_MANAGER_URL (one URL, or several separated by commas), else the
    manager's own listen address settings."""
    if env.get("ORCA_MANAGER_URL", "").strip().strip(","):
        return normalize_urls(env["ORCA_MANAGER_URL"])
    host = env.get("ORCA_MANAGER_HOST", "").strip() or "127.0.0.1"
    port = env.get("ORCA_MANAGER_PORT", "").strip() or "5555"
    if host in ("0.0.0.0", "::"):  # listening everywhere: talk to it locally
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def explain(exc: requests.RequestException) -> str:
    """A short reason for a failed request, without urllib3's nested reprs."""
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    match = _ERRNO.search(str(exc))
    if match:
        return match.group(1).strip().rstrip(".").lower()
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return "not a valid URL"
    return type(exc).__name__


def _never_sent(exc: requests.RequestException) -> bool:
    """True when no connection was opened, so the request surely did not reach the manager."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and type(reason).__name__ == "NewConnectionError"


class ManagerClient:
    """Calls the manager's API at `url`. Every call has a connect and a read timeout and one try
    per manager: `url` may list several managers separated by commas (several managers on one
    database); a call that cannot connect to one goes to the next, and the one that answered
    is used first from then on.

    Raises (every method):
        ManagerUnreachable: no answer, a timeout, or an answer that is not the API's JSON.
        ManagerRejected: a 4xx or 5xx; the message is the manager's.
    """

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT) -> None:
        self.urls = [normalize_url(u) for u in url.split(",") if u.strip()] or [normalize_url(url)]
        self.url = self.urls[0]
        self._timeout = (connect_timeout, read_timeout)
        self._session = requests.Session()
        self._session.trust_env = False  # the manager is addressed directly, never through a proxy
        self._session.mount("http://", HTTPAdapter(max_retries=0))
        self._session.mount("https://", HTTPAdapter(max_retries=0))
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    def _call(self, method: str, path: str, stream: bool = False, timeout=None, **kwargs: Any) -> requests.Response:
        start = self.urls.index(self.url)
        failures: list[tuple[str, str]] = []
        response = None
        for url in self.urls[start:] + self.urls[:start]:
            try:
                response = self._session.request(method, url + path, timeout=timeout or self._timeout,
                                                 stream=stream, **kwargs)
            except requests.RequestException as exc:
                failures.append((url, explain(exc)))
                if _never_sent(exc) or method in ("GET", "HEAD"):
                    continue  # nothing reached that manager (or it was a read): try the next
                break
            self.url = url
            break
        if response is None:
            if len(failures) == 1:
                raise ManagerUnreachable(f"cannot reach the manager at {failures[0][0]}: {failures[0][1]}")
            raise ManagerUnreachable("cannot reach any manager: " + "; ".join(f"{u}: {why}" for u, why in failures))
        if response.status_code >= 400:
            raise ManagerRejected(response.status_code, self._error_message(response))
        return response

    def _error_message(self, response: requests.Response) -> str:
        try:
            message = response.json().get("error")
        except (ValueError, AttributeError):
            message = None
        if not isinstance(message, str) or not message:
            message = f"HTTP {response.status_code} {response.reason or ''}".strip()
        return " ".join(message.split())[:500]

    def _json(self, response: requests.Response, shape: type) -> Any:
        """The body as JSON of `shape` (a task is a dict with an id, a listing a list of such)."""
        try:
            data = response.json()
        except ValueError:
            data = None
        items = data if isinstance(data, list) and shape is list else [data]
        if not isinstance(data, shape) or not all(isinstance(i, dict) and isinstance(i.get("id", i.get("name")), str)
                                                  for i in items):
            raise ManagerUnreachable(f"{self.url} answered {response.status_code} with something that is not "
                                     "the manager API's JSON: is it an Orca manager?")
        return data

    def _task_call(self, method: str, task_id: str, suffix: str = "", **kwargs: Any) -> requests.Response:
        """Call a route under /tasks/<id>; a 404 for the task becomes UnknownTask."""
        try:
            return self._call(method, f"/tasks/{quote(task_id, safe='')}{suffix}", **kwargs)
        except ManagerRejected as exc:
            if exc.status == 404 and not exc.message.startswith("no route"):
                raise UnknownTask(exc.message) from None
            raise

    def submit(self, event: dict[str, Any]) -> dict[str, Any]:
        """POST a task event; return the new task (pending)."""
        return self._json(self._call("POST", "/tasks", json=event), dict)

    def tasks(self) -> list[dict[str, Any]]:
        """Every task the manager knows, oldest first (following the pages of the listing)."""
        return self._every("/tasks")

    def _every(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paged listing: each page's X-Orca-Next cursor is the next `after`."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        while True:
            response = self._call("GET", path, params=params)
            items += self._json(response, list)
            cursor = response.headers.get("X-Orca-Next")
            if not cursor or cursor == params.get("after"):
                return items
            params["after"] = cursor

    def task(self, task_id: str) -> dict[str, Any]:
        """One task; raises UnknownTask."""
        return self._json(self._task_call("GET", task_id), dict)

    def stop(self, task_id: str) -> dict[str, Any]:
        """Ask for a task to stop; return it. Raises UnknownTask, or ManagerRejected (409) if finished."""
        return self._json(self._task_call("DELETE", task_id), dict)

    def purge(self, task_id: str) -> dict[str, Any]:
        """Purge a finished task now (DELETE ?purge=true); return it as it was. Raises
        UnknownTask, or ManagerRejected (409) if it has not finished."""
        return self._json(self._task_call("DELETE", task_id, params={"purge": "true"}), dict)

    def nodes(self) -> list[dict[str, Any]]:
        """The workers with their latest stats."""
        return self._every("/nodes")

    def cluster(self) -> dict[str, Any]:
        """GET /cluster: {"leader", "term", "managers": [...]}."""
        response = self._call("GET", "/cluster")
        try:
            view = response.json()
        except ValueError:
            view = None
        if not isinstance(view, dict) or not isinstance(view.get("managers"), list):
            raise ManagerUnreachable(f"{self.url} answered {response.status_code} with something that is not "
                                     "the manager API's JSON: is it an Orca manager?")
        return view

    def call_json(self, method: str, path: str, shape: type = dict, **kwargs: Any) -> Any:
        """Any other route answering JSON of `shape` (objects named by id or name)."""
        return self._json(self._call(method, path, **kwargs), shape)

    def logs(self, task_id: str, tail: int | None = None, follow: bool = False,
             stream: str | None = None) -> Iterator[bytes]:
        """Yield a task's output as it arrives from GET /tasks/<id>/logs.

        With `follow` the read has no timeout: the stream lasts as long as the task writes.
        `stream` ("stdout" or "stderr") asks for one of the two; both, interleaved, by default.
        Raises UnknownTask, LogsUnsupported (the manager has no such route), ManagerUnreachable.
        """
        params: dict[str, Any] = {}
        if tail is not None:
            params["tail"] = tail
        if follow:
            params["follow"] = "true"
        if stream:
            params["stream"] = stream
        timeout = (self._timeout[0], None) if follow else self._timeout
        try:
            response = self._task_call("GET", task_id, "/logs", params=params, stream=True, timeout=timeout)
        except ManagerRejected as exc:
            if exc.status in (404, 405) and exc.message.startswith(("no route", "method")):
                raise LogsUnsupported(f"the manager at {self.url} does not support logs yet") from None
            raise
        with response:
            try:
                yield from (chunk for chunk in response.iter_content(chunk_size=None) if chunk)
            except requests.RequestException as exc:
                raise ManagerUnreachable(f"lost the connection to the manager at {self.url}: {explain(exc)}") from None

    def event_lines(self, since: int | None = None, topics: tuple[str, ...] = ()) -> Iterator[str]:
        """Yield the lines of GET /events (server-sent events) as they arrive; no read timeout.

        Raises ManagerRejected (410 when the events after `since` are gone; its message names
        the oldest kept), ManagerUnreachable (also when the stream breaks).
        """
        params: dict[str, Any] = {}
        if since is not None:
            params["since"] = since
        if topics:
            params["topic"] = ",".join(topics)
        response = self._call("GET", "/events", params=params, stream=True, timeout=(self._timeout[0], None))
        with response:
            try:
                yield from response.iter_lines(decode_unicode=True)
            except requests.RequestException as exc:
                raise ManagerUnreachable(f"lost the connection to the manager at {self.url}: {explain(exc)}") from None

    def resolve(self, task_id: str) -> str:
        """Return the full id of the task whose id is `task_id` or starts with it.

        A full UUID is returned as given (the manager says whether it exists). Raises
        UnknownTask when no task id starts with the prefix, ClientError when several do.
        """
        if _UUID.match(task_id):
            return task_id
        prefix = task_id.lower()
        matches = [t["id"] for t in self.tasks() if t["id"].startswith(prefix)] if prefix else []
        if not matches:
            raise UnknownTask(f"task {task_id[:64]} not found")
        if len(matches) > 1:
            raise ClientError(f"{task_id} is the start of {len(matches)} task ids; give more of the id")
        return matches[0]
