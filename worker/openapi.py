"""The worker's OpenAPI document (GET /openapi.json), from the definitions its routes use."""
from __future__ import annotations

import copy
from typing import Any

from common.openapi import (
    TASK_ID, document, json_response, logs_operation, number_query, operation, query,
)
from common.streams import MAX_KEEPALIVE, MIN_KEEPALIVE
from task.schema import ref, task_schemas
from task.validation import MAX_RESTARTS
from task.wire import MAX_ATTEMPT, MAX_BATCH

ATTEMPT = {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPT}


def _order(name: str) -> dict[str, Any]:
    """A task event as the manager sends it: with the attempt it is for and the restarts so far."""
    schema = copy.deepcopy(task_schemas()[name])
    schema["properties"] = {**schema["properties"], "attempt": {**ATTEMPT, "description": "the placement it is "
                            "for; an event for an older attempt than the worker holds is ignored"},
                            "restart_count": {"type": "integer", "minimum": 0, "maximum": MAX_RESTARTS + 1}}
    return schema


def _answer() -> dict[str, Any]:
    """One event's answer in a batch: its status, and the task or the error."""
    return {"type": "object", "required": ["status"],
            "properties": {"status": {"type": "integer"}, "task": ref("Task"), "error": {"type": "string"}}}


def worker_document(max_wait: float, version_header: str, instance_header: str) -> dict[str, Any]:
    """The worker API's OpenAPI document; `max_wait` bounds GET /tasks?wait, and the two
    headers are the change counter and instance id GET /tasks answers with."""
    task = json_response("the task", ref("Task"))
    placed = json_response("the task, accepted", ref("Task"), {"Location": "/tasks/<id>: the task"})
    since = query("since", {"type": "integer"}, "only the tasks changed after this version (the "
                  f"{version_header} of an earlier answer)")
    wait = number_query("wait", 0.0, max_wait, 0.0, "with since: wait up to this many seconds for a change")
    health = {"type": "object", "required": ["status", "worker", "docker"],
              "properties": {"status": {"enum": ["ok", "unavailable"]}, "worker": {"type": "string"},
                             "docker": ref("EngineState")}}
    listed = json_response("the tasks", {"type": "array", "items": ref("Task")},
                           {version_header: "the worker's change counter", instance_header:
                            "changes when the worker restarts (then read everything again)"})
    paths = {
        "/tasks": {
            "post": operation("submitTask", "Run a task event (the manager's call)", "tasks",
                              {200: placed, 201: placed, 202: json_response("stop requested", ref("Task"))},
                              (400, 403, 404, 409, 413, 415, 503),
                              body={"anyOf": [_order("RunTaskEvent"), _order("StopTaskEvent")]}),
            "get": operation("listTasks", "The tasks on this worker, or those changed since a version", "tasks",
                             {200: listed}, (400, 503), parameters=(since, wait)),
        },
        "/tasks/batch": {
            "post": operation("submitTaskBatch", "Several task events in one request (the manager's batched "
                              "dispatch); each is answered on its own, in order", "tasks",
                              {200: json_response("one answer per event", {"type": "array", "items": _answer()})},
                              (400, 413, 415),
                              # Items are checked one by one: a bad one gets its own 400 in the
                              # answer, so the request schema only bounds the list.
                              body={"type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                                    "items": {"description": "a RunTaskEvent or a "
                                              "StopTaskEvent (as POST /tasks); each is validated on its own"}}),
        },
        "/tasks/{task_id}": {
            "parameters": [TASK_ID],
            "get": operation("getTask", "One task", "tasks", {200: task}, (404,)),
            "delete": operation("stopTask", "Stop a task (its container is stopped and removed); with "
                                "?purge=true, forget a finished task", "tasks",
                                {200: json_response("purged: the task as it was", ref("Task")),
                                 202: json_response("stop requested", ref("Task"))}, (400, 404, 409, 503),
                                parameters=(query("attempt", ATTEMPT, "stop only this attempt (or a newer "
                                                  "one); unknown here: a completed record of it is kept"),
                                            query("purge", {"type": "boolean", "default": False},
                                                  "forget the finished task and remove its container "
                                                  "(409 if it has not finished)"))),
        },
        "/tasks/{task_id}/logs": {"parameters": [TASK_ID], "get": logs_operation("getTaskLogs", (number_query(
            "keepalive", MIN_KEEPALIVE, MAX_KEEPALIVE, None,
            "with follow: frame the stream (common/streams.py) and send a heartbeat frame after this many "
            "seconds without output, so a reader can tell a quiet task from a silent worker (the manager's "
            "follows use 2)"),))},
        "/stats": {"get": operation("getStats", "The host's figures", "nodes",
                                    {200: json_response("the host's stats", ref("Stats"))})},
        "/health": {"get": operation("getWorkerHealth", "Liveness: the worker and its Docker engine", "meta",
                                     {200: json_response("ok", health),
                                      503: json_response("the engine is unreachable", health)}, open_route=True)},
    }
    return document("Orca worker", "Runs task events as Docker containers; the manager is its client.", paths)
