"""JSON-RPC 2.0 on the manager: `POST /jrpc` with ContainerService.Create and .Status.

Two layers, kept apart:

- the protocol (`handle_body`, `handle_call`): parse the raw body, check each request's
  envelope, dispatch to a table of methods, build responses, handle batches and
  notifications. It knows nothing about tasks.
- the methods (`ContainerService`): map `params` onto a task event and call the Manager,
  turning Orca's errors into JSON-RPC errors.

Every answer the protocol produces is HTTP 200, errors included; a request with nothing to
answer (a notification, or a batch of notifications only) gets 204 and no body. The body is
read raw whatever its Content-Type, so a body that is not JSON is always -32700.
"""
from __future__ import annotations

import json
import logging
import math
from typing import Any, Callable

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from common.http import MAX_BODY
from manager.bulk import BulkCreate
from manager.manager import Manager
from task import NotFound, OrcaError, ValidationError, parse_event, parse_uuid
from task.errors import Forbidden
from task.validation import check_image_allowed

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000  # implementation-defined: the manager cannot take the request now

MAX_BATCH = 100
ENVELOPE_FIELDS = frozenset({"jsonrpc", "method", "params", "id"})

Method = Callable[[Any], Any]


class RpcError(Exception):
    """A JSON-RPC error: `code` is one of the codes above, `message` one sentence."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """The response's `error` member."""
        return {"code": self.code, "message": self.message}


def invalid_params(message: str) -> RpcError:
    """An `Invalid params` (-32602) error whose message names the parameter."""
    return RpcError(INVALID_PARAMS, f"Invalid params: {message}")


# ----- the protocol


def handle_body(raw: bytes, methods: dict[str, Method]) -> dict | list | None:
    """Answer one HTTP body: a single request or a batch.

    Args:
        raw: the request body, as sent.
        methods: method name -> callable taking the request's `params` (absent: None).
    Returns:
        A response object, a list of them for a batch, or None when nothing is to be sent
        (only notifications).
    """
    try:
        payload = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return error_response(RpcError(PARSE_ERROR, f"Parse error: {_short(exc)}"), None)
    if not isinstance(payload, list):
        return handle_call(payload, methods)
    if not payload:
        return error_response(RpcError(INVALID_REQUEST, "Invalid Request: empty batch"), None)
    if len(payload) > MAX_BATCH:
        return error_response(RpcError(INVALID_REQUEST, f"Invalid Request: a batch holds at most {MAX_BATCH} "
                                                        f"requests, got {len(payload)}"), None)
    answers = [handle_call(call, methods) for call in payload]
    return [a for a in answers if a is not None] or None


def handle_call(call: Any, methods: dict[str, Method]) -> dict | None:
    """Answer one request object; None for a valid notification (no `id` member).

    Invalid requests are answered even without an id, as the specification's examples do;
    a notification's own errors are not reported.
    """
    request_id = _request_id(call)
    try:
        _check_envelope(call)
    except RpcError as error:
        log.info("jrpc request refused: %s", error.message)
        return error_response(error, request_id)
    notification = "id" not in call
    try:
        result = _call_method(call, methods)
    except RpcError as error:
        log.info("jrpc %.64s -> %d: %s", call["method"], error.code, error.message)
        return None if notification else error_response(error, request_id)
    except Exception:  # noqa: BLE001 - a bug must not become an HTTP 500 or kill a batch
        log.exception("jrpc %.64s crashed", call["method"])
        return None if notification else error_response(RpcError(INTERNAL_ERROR, "Internal error"), request_id)
    return None if notification else {"jsonrpc": "2.0", "result": result, "error": None, "id": request_id}


def error_response(error: RpcError, request_id: Any) -> dict[str, Any]:
    """A response object carrying `error` (id null when the request's id is unknown)."""
    return {"jsonrpc": "2.0", "error": error.to_dict(), "id": request_id}


def _check_envelope(call: Any) -> None:
    """Raise RpcError (-32600) unless `call` is a well-formed request object."""
    if not isinstance(call, dict):
        raise RpcError(INVALID_REQUEST, f"Invalid Request: a request must be a JSON object, not {_json_type(call)}")
    if call.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid Request: jsonrpc must be exactly "2.0"')
    unknown = sorted(str(k) for k in call if k not in ENVELOPE_FIELDS)
    if unknown:
        raise RpcError(INVALID_REQUEST, f"Invalid Request: unknown member {unknown[0][:64]!r}")
    if "id" in call and not _valid_id(call["id"]):
        raise RpcError(INVALID_REQUEST, "Invalid Request: id must be a string, a number or null")
    if not isinstance(call.get("method"), str):
        raise RpcError(INVALID_REQUEST, "Invalid Request: method must be a string")
    if "params" in call and not isinstance(call["params"], (list, dict)):
        raise RpcError(INVALID_REQUEST, "Invalid Request: params must be an array or an object")


def _call_method(call: dict[str, Any], methods: dict[str, Method]) -> Any:
    """Run the method a well-formed request names; raise RpcError (-32601) if there is none."""
    method = methods.get(call["method"])
    if method is None:
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {call['method'][:64]!r}")
    return method(call.get("params"))


def _request_id(call: Any) -> Any:
    """The id to echo: the request's own when it is a valid id, else null."""
    if isinstance(call, dict) and _valid_id(call.get("id")):
        return call.get("id")
    return None


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Python's parser accepts them by default)."""
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A number too large for a float (1e999) would be echoed back as Infinity: refuse it."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _short(exc: Exception) -> str:
    return str(exc)[:160] or type(exc).__name__


# ----- the methods

CREATE_PARAMS = frozenset({"image", "arguments", "resources", "env"})
STATUS_PARAMS = frozenset({"job_id"})
# resources member -> task field; cpu/cpus and memory/memory_mb are alternatives.
RESOURCE_FIELDS = {"cpu": "cpu", "cpus": "cpu", "memory": "memory", "memory_mb": "memory", "disk": "disk"}
MIB = 1 << 20


class ContainerService:
    """ContainerService.Create and ContainerService.Status over a Manager."""

    def __init__(self, manager: Manager, allowed_images: tuple[str, ...] = (),
                 submit: Callable[[Any], Any] | None = None) -> None:
        self._manager = manager
        self._allowed_images = allowed_images
        self._submit = submit or manager.submit  # a BulkCreate's add: a batch's creates share one commit

    def methods(self) -> dict[str, Method]:
        """The dispatch table for handle_body."""
        return {"ContainerService.Create": self.create, "ContainerService.Status": self.status}

    def create(self, params: Any) -> dict[str, Any]:
        """Queue a task from `{"image", "arguments", "resources", "env"}`; return its job id.

        Raises:
            RpcError: -32602 naming the bad parameter, also for an image ORCA_ALLOWED_IMAGES
                refuses (the caller must change it: retrying cannot help); -32000 when the
                manager refuses.
        """
        args = _single_object(params, CREATE_PARAMS)
        task, renames = _task_fields(args)
        try:
            event = parse_event({"task": task})
            check_image_allowed(event.task.image, self._allowed_images)
        except (ValidationError, Forbidden) as exc:
            raise invalid_params(_rename(str(exc), renames)) from None
        task = self._call(self._submit, event)
        return {"job_id": task.id, "message": "Job created successfully"}

    def status(self, params: Any) -> dict[str, Any]:
        """Return `{"job_id", "status", "exit_code", "error"}` of a job.

        Raises:
            RpcError: -32602 for a missing, malformed or unknown job id.
        """
        args = _single_object(params, STATUS_PARAMS)
        if "job_id" not in args:
            raise invalid_params("job_id is required")
        job_id = args["job_id"]
        if not isinstance(job_id, str):
            raise invalid_params("job_id must be a string")
        try:
            task = self._call(self._manager.get, parse_uuid(job_id, "job_id"))
        except (ValidationError, NotFound):
            raise invalid_params(f"unknown job id {job_id[:64]!r}") from None
        return {"job_id": task.id, "status": task.state.value, "exit_code": task.exit_code, "error": task.error}

    @staticmethod
    def _call(func: Callable, *args: Any) -> Any:
        """Call the Manager; errors other than bad input become server errors (-32000)."""
        try:
            return func(*args)
        except (ValidationError, NotFound):
            raise
        except OrcaError as exc:
            raise RpcError(SERVER_ERROR, f"Server error: {exc}") from None


def _single_object(params: Any, allowed: frozenset) -> dict[str, Any]:
    """Params by position (`[{...}]`) or by name (`{...}`): return the object, checked."""
    if params is None:
        raise invalid_params("params is required: [{...}]")
    if isinstance(params, list):
        if len(params) != 1 or not isinstance(params[0], dict):
            raise invalid_params("params must be an array holding one object")
        params = params[0]
    unknown = sorted(k for k in params if k not in allowed)
    if unknown:
        raise invalid_params(f"unknown parameter {unknown[0][:64]!r} (known: {', '.join(sorted(allowed))})")
    return params


def _task_fields(args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Map Create's params onto a POST /tasks `task` object.

    Returns the task object and, for error messages, task field -> parameter name.
    """
    task: dict[str, Any] = {}
    renames = {"task.image": "image", "task.command": "arguments", "task.env": "env"}
    if "image" in args:
        task["image"] = args["image"]
    if args.get("arguments") is not None:  # null is an empty list (what Go sends for a nil slice)
        task["command"] = args["arguments"]
    if args.get("env") is not None:
        task["env"] = _env(args["env"])
    for key, field, value in _resources(args.get("resources")):
        task[field] = value
        renames[f"task.{field}"] = f"resources.{key}"
    return task, renames


def _env(env: Any) -> Any:
    """Numbers become strings ({"PORT": 8080} -> "8080"); names and sizes are checked later.

    Raises:
        RpcError: -32602 for a value that is neither a string nor a number.
    """
    if not isinstance(env, dict):
        return env
    converted = {}
    for name, value in env.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise invalid_params(f"env.{name[:64]} must be a string or a number")
        converted[name] = value
    return converted


def _resources(resources: Any) -> list[tuple[str, str, Any]]:
    """Return (resources key, task field, value) for each resource given.

    Raises:
        RpcError: -32602 for a non-object, an unknown key, two keys for one field or a bad memory_mb.
    """
    if resources is None:
        return []
    if not isinstance(resources, dict):
        raise invalid_params("resources must be an object")
    unknown = sorted(k for k in resources if k not in RESOURCE_FIELDS)
    if unknown:
        raise invalid_params(f"unknown resource {unknown[0][:64]!r} (known: {', '.join(RESOURCE_FIELDS)})")
    given: dict[str, str] = {}
    found = []
    for key, value in resources.items():
        field = RESOURCE_FIELDS[key]
        if field in given:
            raise invalid_params(f"give only one of resources.{given[field]} and resources.{key}")
        given[field] = key
        found.append((key, field, _memory_mb(value) if key == "memory_mb" else value))
    return found


def _memory_mb(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid_params("resources.memory_mb must be a non-negative integer number of MiB")
    return value * MIB


def _rename(message: str, renames: dict[str, str]) -> str:
    """Rewrite a task validation message to name the JSON-RPC parameter the caller sent."""
    for field, param in renames.items():
        if message.startswith(field):
            return param + message[len(field):]
    return message


# ----- HTTP


def create_jrpc_blueprint(manager: Manager, allowed_images: tuple[str, ...] = ()) -> Blueprint:
    """The `POST /jrpc` route serving ContainerService over `manager`, refusing images that
    match none of `allowed_images` (when given)."""
    blueprint = Blueprint("jrpc", __name__)

    @blueprint.post("/jrpc")
    def jrpc():
        try:
            raw = request.get_data(cache=False)
        except RequestEntityTooLarge:
            error = RpcError(INVALID_REQUEST, f"Invalid Request: body larger than {MAX_BODY} bytes")
            return jsonify(error_response(error, None)), 413
        creates = BulkCreate(manager)
        answer = creates.settle(handle_body(raw, ContainerService(manager, allowed_images, creates.add).methods()))
        if answer is None:
            return Response(status=204)
        return jsonify(answer)

    return blueprint
