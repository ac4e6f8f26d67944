"""JSON-only Flask apps and an in-process waitress server that shuts down cleanly."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any

from flask import Flask, Response, jsonify, request
from waitress.server import create_server
from werkzeug.exceptions import HTTPException

from task import Conflict, NotFound, OrcaError, Unavailable, ValidationError, WorkerRejected
from task.errors import Forbidden

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
OPEN_PATHS = frozenset({"/health"})  # routes answered without a token (liveness probes)
CONNECTION_LIMIT = 1000
# Requests waitress reads ahead on a connection while one is being served. Above 0 it also
# notices a client that hangs up mid-request (environ["waitress.client_disconnected"]), which
# is how a follow or wait of a client that left gives its slot back.
REQUEST_LOOKAHEAD = 4
logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" on every burst


class UnsupportedMediaType(OrcaError):
    """The body is not declared as JSON."""


class Unauthorized(OrcaError):
    """The request lacks the bearer token this server requires."""


# The one mapping from Orca's errors to HTTP statuses.
STATUS_BY_ERROR: tuple[tuple[type[OrcaError], int], ...] = (
    (ValidationError, 400),
    (UnsupportedMediaType, 415),
    (Unauthorized, 401),
    (Forbidden, 403),
    (WorkerRejected, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
)


def status_for(error: OrcaError) -> int:
    """Return the HTTP status of an Orca error (500 for one with no mapping)."""
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


def error_response(message: str, status: int) -> tuple[Response, int]:
    """A JSON error body `{"error": message}` with `status`."""
    return jsonify(error=message), status


def create_json_app(name: str) -> Flask:
    """Return a Flask app whose every error, including 404/405/413 and crashes, is JSON."""
    app = Flask(name, static_folder=None)  # no /static route serving files from the working directory
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False  # "/tasks//x" would be an HTML redirect: a JSON 404 instead

    @app.errorhandler(OrcaError)
    def _orca_error(error: OrcaError):
        status = status_for(error)
        if status >= 500 and not isinstance(error, Unavailable):
            log.exception("%s %s failed", request.method, _printable(request.path))
        else:
            log.info("%s %s -> %d: %s", request.method, _printable(request.path), status, _printable(str(error)))
        response = error_response(str(error), status)
        if status == 401:
            response[0].headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        messages = {404: f"no route {request.path}", 405: f"method {request.method} not allowed on {request.path}",
                    413: f"request body larger than {MAX_BODY} bytes"}
        response = error_response(messages.get(error.code, error.description or error.name), error.code or 500)
        if error.code == 405 and getattr(error, "valid_methods", None):
            response[0].headers["Allow"] = ", ".join(sorted(error.valid_methods))  # RFC 9110 requires it
        return response

    @app.errorhandler(Exception)
    def _crash(error: Exception):
        log.exception("%s %s crashed", request.method, _printable(request.path))
        return error_response("internal error", 500)

    return app


SESSION_COOKIE = "orca_session"
SESSION_HOURS = 12
SELF_AUTHENTICATED = ("ui.",)  # endpoints (by blueprint) that check credentials themselves: the dashboard


def require_token(app: Flask, token: str) -> None:
    """Make every route of `app` but /health answer 401 unless the request carries
    `Authorization: Bearer <token>`. An empty token leaves the app open.

    The comparison takes constant time; neither the expected nor the offered token is ever
    logged or echoed. A path that matches no route needs the token too, so an unauthenticated
    caller cannot even map the routes. A read (GET/HEAD) may instead carry the dashboard's
    session cookie (see session_value): the browser's event stream and log follows. The
    dashboard's own routes (SELF_AUTHENTICATED) check the cookie themselves and send a browser
    to their login page.
    """
    if not token:
        return
    expected = _digest(token)
    app.config["ORCA_TOKEN_DIGEST"] = expected

    @app.before_request
    def _check_token():
        rule = request.url_rule
        if rule is not None and (rule.rule in OPEN_PATHS or rule.endpoint.startswith(SELF_AUTHENTICATED)):
            return None
        if bearer_valid(expected):
            return None
        if request.method in ("GET", "HEAD") and session_valid(expected):
            return None
        raise Unauthorized("missing or invalid bearer token")


def bearer_valid(expected: bytes) -> bool:
    """Whether the request carries `Authorization: Bearer <the token>` (constant time)."""
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    valid = hmac.compare_digest(_digest(offered.strip()), expected)
    return scheme.lower() == "bearer" and valid


def session_value(expected: bytes, issued: int) -> str:
    """The session cookie's value for a login at `issued` (Unix seconds): the time and an
    HMAC of it keyed by the token's digest; the token itself never leaves the server."""
    mac = hmac.new(expected, f"orca-session:{issued}".encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{mac}"


def session_valid(expected: bytes, now: float | None = None) -> bool:
    """Whether the request's session cookie was issued for this token less than SESSION_HOURS ago."""
    raw = request.cookies.get(SESSION_COOKIE, "")
    issued, _, _ = raw.partition(".")
    if not issued.isdigit() or len(issued) > 12:
        return False
    age = (time.time() if now is None else now) - int(issued)
    if not 0 <= age <= SESSION_HOURS * 3600:
        return False
    return hmac.compare_digest(session_value(expected, int(issued)).encode(), raw.encode("utf-8", "replace"))


def _digest(token: str) -> bytes:
    """Equal-length digests, so compare_digest reveals not even the token's length (and
    never sees a str: on non-ASCII str it raises TypeError)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _printable(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters, control characters escaped: a log line stays one
    line, whatever a client put in a path or a field name."""
    text = text[:limit]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def json_body() -> Any:
    """Return the request's JSON body, or raise: 415 when it is not JSON, 400 when malformed."""
    if not request.is_json:
        raise UnsupportedMediaType("request body must be JSON (Content-Type: application/json)")
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError(f"malformed JSON: {exc}"[:200]) from None


class Server:
    """A waitress server running one WSGI app in a background thread.

    waitress' close() alone leaves worker threads and keep-alive connections behind, so
    close() here also shuts the task dispatcher down and closes every open channel.
    """

    def __init__(self, app: Flask, host: str, port: int, threads: int = 16, name: str = "http") -> None:
        # waitress stops accepting at connection_limit (default 100) until idle keep-alive
        # connections time out: clients that keep their connections open would stall others.
        # Its loop uses select() unless told to poll(): select() cannot watch a descriptor
        # past 1023, and its loop dies on the first one, which a manager following 1,000
        # workers (a connection each) reaches.
        self._server = create_server(app, host=host, port=port, threads=threads, connection_limit=CONNECTION_LIMIT,
                                     channel_timeout=30, ident="orca", clear_untrusted_proxy_headers=True,
                                     channel_request_lookahead=REQUEST_LOOKAHEAD, asyncore_use_poll=True)
        self._thread = threading.Thread(target=self._run, name=f"{name}-server", daemon=True)
        self._closed = False
        self.host = host
        self.port = self._server.effective_port

    @property
    def address(self) -> str:
        """host:port this server listens on."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Start serving in a background thread."""
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except Exception:  # a closed socket during shutdown ends the loop
            if not self._closed:
                log.exception("server on %s stopped", self.address)

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening, close open connections and join every server thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.close()
        for channel in list(self._server._map.values()):
            try:
                channel.close()
            except OSError:
                pass
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
        self._thread.join(timeout)
