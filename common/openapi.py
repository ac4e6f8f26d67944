"""What the manager's and the worker's OpenAPI documents share: schemas, parameters, error
responses, bearer auth, and the GET /openapi.json route.

The task schemas come from task.schema, which builds them from task.validation (what POST
/tasks checks) and Task.to_dict() (what every route answers); the Node schema is checked
against Node.to_dict(); the log parameters come from common.query. manager/openapi.py and
worker/openapi.py describe their routes with these parts, and tests/api/test_openapi_metrics.py
holds every route of each app and every operation of its document to each other.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

from common.http import MAX_BODY
from common.query import MAX_TAIL, STREAMS
from node import DOWN, UP, Node
from task.schema import JSON_SCHEMA_DIALECT, ref, task_schemas

OPENAPI_VERSION = "3.1.0"
TASK_ID = {"$ref": "#/components/parameters/TaskId"}
TEXT = "text/plain"

# status -> (component name, when it happens); an operation lists the ones it can answer.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "malformed body or query parameter; the message names the field"),
    401: ("Unauthorized", "missing or wrong bearer token (only when the server has ORCA_TOKEN)"),
    403: ("Forbidden", "the image matches none of ORCA_ALLOWED_IMAGES"),
    404: ("NotFound", "no task with this id"),
    409: ("Conflict", "the id exists already, or the task has finished"),
    413: ("PayloadTooLarge", f"body over {MAX_BODY} bytes"),
    415: ("UnsupportedMediaType", "body not declared as JSON (Content-Type: application/json)"),
    503: ("Unavailable", "shutting down, too many long requests at once, or a worker or engine unreachable"),
}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """The `content` of a JSON request or response."""
    return {"application/json": {"schema": schema}}


def json_response(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response with a JSON body, and `headers` (name -> description) that are always sent."""
    response: dict[str, Any] = {"description": description, "content": json_content(schema)}
    if headers:
        response["headers"] = {name: {"description": text, "required": True, "schema": {"type": "string"}}
                               for name, text in headers.items()}
    return response


def text_response(description: str) -> dict[str, Any]:
    """A response with a plain-text body."""
    return {"description": description, "content": {TEXT: {"schema": {"type": "string"}}}}


def operation(operation_id: str, summary: str, tag: str, responses: dict[Any, dict[str, Any]],
              errors: tuple[int, ...] = (), *, parameters: tuple[dict[str, Any], ...] = (),
              body: dict[str, Any] | None = None, body_required: bool = True,
              open_route: bool = False) -> dict[str, Any]:
    """One operation. Every route but an open one may answer 401 (see common.http.require_token)."""
    codes = sorted(set(errors) | (set() if open_route else {401}))
    answers = {str(status): response for status, response in responses.items()}
    answers.update({str(code): {"$ref": f"#/components/responses/{ERRORS[code][0]}"} for code in codes})
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": answers}
    if parameters:
        op["parameters"] = list(parameters)
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": json_content(body)}
    if open_route:
        op["security"] = []
    return op


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def number_query(name: str, low: float, high: float, default: float | None, description: str) -> dict[str, Any]:
    """A numeric query parameter within [low, high] (common.http.query_float)."""
    schema: dict[str, Any] = {"type": "number", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return query(name, schema, description)


LOG_PARAMETERS = (
    query("tail", {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_TAIL}, {"const": "all"}]},
          "the last N lines of the current container first; `all` (the default): every line"),
    query("follow", {"type": "boolean", "default": False},
          "keep the response open and send lines as they are written, until the task ends"),
    query("stream", {"enum": list(STREAMS), "default": STREAMS[0]}, "which output; both: interleaved"),
)


def logs_operation(operation_id: str, extra: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """GET /tasks/{task_id}/logs, the same on the manager and on a worker (plus `extra` parameters)."""
    return operation(operation_id, "The task's output (stdout and stderr), streamed as text", "tasks",
                     {200: text_response("the output; empty while the task has no container")},
                     (400, 404, 503), parameters=LOG_PARAMETERS + extra)


def meta_paths() -> dict[str, Any]:
    """GET /openapi.json and GET /metrics, on both apps."""
    return {
        "/openapi.json": {"get": operation(
            "getOpenAPI", "This document", "meta",
            {200: json_response("an OpenAPI 3.1 document", {"type": "object"})})},
        "/metrics": {"get": operation(
            "getMetrics", "Prometheus metrics (text exposition format 0.0.4)", "meta",
            {200: text_response("metrics, `text/plain; version=0.0.4`")})},
    }


def _error_responses() -> dict[str, Any]:
    return {name: json_response(text, ref("Error")) for name, text in ERRORS.values()}


def _node_schemas() -> dict[str, dict[str, Any]]:
    integer = {"type": "integer", "minimum": 0}
    resources = {"type": "object", "required": ["cpu", "memory", "disk"],
                 "properties": {"cpu": {"type": "number", "minimum": 0}, "memory": integer, "disk": integer},
                 "description": "cores, bytes of memory, bytes of disk"}
    fields = {
        "name": {"type": "string"}, "address": {"type": "string"}, "state": {"enum": [UP, DOWN]},
        "cores": integer, "memory": integer, "disk": integer, "task_count": integer,
        "stats": {"type": "object", "description": "the worker's latest /stats; {} until it answered"},
        "last_seen": {"type": ["string", "null"]}, "engine": ref("EngineState"),
        "id": {"type": "string", "description": "stable across the worker's restarts"},
        "status": {"enum": [UP, DOWN]}, "eligible": {"type": "boolean", "description": "false: no new placements"},
        "drain": {"anyOf": [{"type": "null"}, {
            "type": "object", "required": ["started_at", "deadline", "remaining"],
            "properties": {"started_at": {"type": "string"}, "deadline": {"type": ["string", "null"]},
                           "remaining": {"type": "integer", "minimum": 0}}}]},
        "capacity": resources, "allocated": resources,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    names = list(Node(name="", address="").to_dict())
    if set(names) != set(fields):
        raise RuntimeError(f"node schema out of step with Node.to_dict(): {sorted(set(names) ^ set(fields))}")
    return {"Node": {"type": "object", "required": names, "additionalProperties": False,
                     "properties": {name: fields[name] for name in names}}}


def _stats_schema() -> dict[str, Any]:
    integer, percent = {"type": "integer", "minimum": 0}, {"type": "number", "minimum": 0}

    def group(*names: str) -> dict[str, Any]:
        return {"type": "object", "required": [*names, "percent"],
                "properties": {**{n: integer for n in names}, "percent": percent}}

    properties = {
        "hostname": {"type": "string"}, "cpu_count": integer, "cpu_percent": percent,
        "load_avg": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
        "memory": group("total", "available", "used"), "disk": group("total", "used", "free"),
        "task_count": integer,
    }
    return {"type": "object", "required": list(properties), "properties": properties}


def _common_schemas() -> dict[str, dict[str, Any]]:
    return {
        "Error": {"type": "object", "required": ["error"], "additionalProperties": False,
                  "properties": {"error": {"type": "string"}}},
        "EngineState": {"type": "object", "required": ["reachable"], "description":
                        "the worker's Docker engine: reachable true (with version, api_version), false "
                        "(with error), or null before the first check",
                        "properties": {"reachable": {"type": ["boolean", "null"]}, "version": {"type": "string"},
                                       "api_version": {"type": "string"}, "error": {"type": "string"},
                                       "checked_at": {"type": "string"}}},
        "Stats": _stats_schema(),
        **_node_schemas(),
    }


def document(title: str, description: str, paths: dict[str, Any],
             schemas: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """An OpenAPI 3.1 document of `paths`, with the shared components and `schemas`."""
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
        "info": {"title": title, "version": "1", "description": description + (
            "\n\nErrors are JSON `{\"error\": \"...\"}`: 400 bad body or parameter, 401 missing token, "
            "403 image not allowed, 404 unknown id or route, 405 wrong method, 409 conflict, "
            f"413 body over {MAX_BODY} bytes, 415 body not JSON, 503 unavailable. With ORCA_TOKEN set, "
            "every route but /health needs `Authorization: Bearer <token>`.")},
        "security": [{"bearer": []}, {}],
        "paths": {**paths, **meta_paths()},
        "components": {
            "schemas": {**task_schemas(), **_common_schemas(), **(schemas or {})},
            "parameters": {"TaskId": {"name": "task_id", "in": "path", "required": True,
                                      "schema": {"type": "string", "minLength": 1}, "description": "the task's id"}},
            "responses": _error_responses(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "ORCA_TOKEN, when the server has one"}},
        },
    }


def serve_document(app: Flask, document_: dict[str, Any]) -> None:
    """Add GET /openapi.json to `app`, answering `document_`."""
    @app.get("/openapi.json")
    def openapi_document():
        return jsonify(document_)
