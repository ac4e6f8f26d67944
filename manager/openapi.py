"""The manager's OpenAPI document (GET /openapi.json), from the definitions its routes use."""
from __future__ import annotations

from typing import Any

from common.openapi import (
    TASK_ID, document, json_response, logs_operation, number_query, operation, query,
)
from manager.events import TOPICS
from manager.events_api import HEARTBEAT, MAX_INDEX
from manager.jrpc import ENVELOPE_FIELDS, MAX_BATCH
from manager.intake import MAX_SUBMIT
from manager.queries import DEFAULT_LIMIT, MAX_FILTER, MAX_LIMIT, NODE_STATES, STATES
from manager.services_openapi import cluster_paths, service_paths, service_schemas
from node import DOWN, UP
from node.validation import _ADDRESS, _NODE_NAME, DEFAULT_DRAIN_DEADLINE, MAX_LABELS, MAX_NODE_NAME
from task.schema import SIZE_PATTERN, ref
from task.validation import _LABEL, MAX_BYTES, MAX_CPU, MAX_LABEL, MAX_SECONDS

LOCATION = {"Location": "/tasks/<id>: the task"}
NEXT = {"description": "the cursor of the next page (pass it as `after`); absent on the last page",
        "schema": {"type": "string"}}
LINK = {"description": 'the next page\'s URL, rel="next"; absent on the last page', "schema": {"type": "string"}}


def _bulk_answer() -> dict[str, Any]:
    """One event's answer in a bulk submission: its status, and the task or the error."""
    return {"type": "object", "required": ["status"],
            "properties": {"status": {"type": "integer"}, "task": ref("Task"), "error": {"type": "string"}}}


def _page_parameters(states: tuple[str, ...], *filters: str) -> tuple[dict[str, Any], ...]:
    text = {"type": "string", "minLength": 1, "maxLength": MAX_FILTER}
    return (
        query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
              "items per page"),
        query("after", text, "the cursor of the previous page (its X-Orca-Next header)"),
        query("state", {"enum": list(states)}, "only items in this state"),
        *(query(name, text, f"only tasks of this {name}") for name in filters),
    )


def _listing(operation_id: str, summary: str, tag: str, item: str, parameters: tuple) -> dict[str, Any]:
    response = json_response(f"a page of {tag}", {"type": "array", "items": ref(item)})
    response["headers"] = {"X-Orca-Next": NEXT, "Link": LINK}
    return operation(operation_id, summary, tag, {200: response}, (400,), parameters=parameters)


def _schemas() -> dict[str, dict[str, Any]]:
    rpc_id = {"type": ["string", "number", "null"]}
    request = {"type": "object", "required": ["jsonrpc", "method"], "additionalProperties": False,
               "properties": {"jsonrpc": {"const": "2.0"}, "method": {"type": "string"},
                              "params": {"type": ["array", "object"]}, "id": rpc_id}}
    if set(request["properties"]) != ENVELOPE_FIELDS:
        raise RuntimeError("JSON-RPC request schema out of step with manager.jrpc.ENVELOPE_FIELDS")
    error = {"type": "object", "required": ["code", "message"],
             "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}
    response = {"type": "object", "required": ["jsonrpc", "id"],
                "properties": {"jsonrpc": {"const": "2.0"}, "result": {}, "error": {"anyOf": [{"type": "null"}, error]},
                               "id": rpc_id}}
    output = {"type": "object", "required": ["text", "bytes", "truncated", "cut"],
              "properties": {"text": {"type": "string"}, "bytes": {"type": "integer", "minimum": 0},
                             "truncated": {"type": "boolean"}, "cut": {"enum": ["head", None]},
                             "error": {"type": "string"}},
              "description": "the task's output (the last 64 KiB); `error` when its worker could not be read"}
    wait = {"task": ref("Task"), "done": {"type": "boolean"}, "timed_out": {"type": "boolean"}}
    worker = {"type": "object", "required": ["name", "address", "state", "accepts_tasks", "docker"],
              "properties": {"name": {"type": "string"}, "address": {"type": "string"}, "state": {"enum": [UP, DOWN]},
                             "accepts_tasks": {"type": "boolean"}, "docker": ref("EngineState")}}
    return {
        "WaitResult": {"type": "object", "required": list(wait), "properties": wait},
        "RunResult": {"type": "object", "required": [*wait, "exit_code", "output"],
                      "properties": {**wait, "exit_code": {"type": ["integer", "null"]}, "output": output}},
        "ManagerHealth": {"type": "object", "required": ["status", "workers"],
                          "properties": {"status": {"enum": ["ok", "degraded"]},
                                         "workers": {"type": "array", "items": worker}}},
        "Cluster": _cluster_schema(),
        "EventsGone": {"type": "object", "required": ["error", "oldest", "last"],
                       "properties": {"error": {"type": "string"}, "oldest": {"type": "integer", "minimum": 1},
                                      "last": {"type": "integer", "minimum": 0}}},
        "JsonRpcRequest": request,
        "JsonRpcResponse": response,
    }


def _cluster_schema() -> dict[str, Any]:
    manager = {"type": "object", "required": ["name", "address", "role", "last_seen"],
               "properties": {"name": {"type": "string"}, "address": {"type": "string"},
                              "role": {"enum": ["leader", "follower", "stopped", "unreachable"]},
                              "last_seen": {"type": ["string", "null"]}}}
    return {"type": "object", "required": ["leader", "term", "managers"],
            "properties": {"leader": {"type": ["string", "null"]}, "term": {"type": "integer", "minimum": 0},
                           "managers": {"type": "array", "items": manager}}}


def _task_paths(max_wait: float, default_wait: float) -> dict[str, Any]:
    wait = number_query("wait", 0.0, max_wait, None, "run to completion: wait up to this many seconds for "
                        "the task to end and answer with its output (a RunResult)")
    timeout = number_query("timeout", 0.0, max_wait, default_wait, "seconds to wait")
    task = json_response("the task", ref("Task"))
    return {
        "/tasks": {
            "post": operation("submitTask", "Start a task (state running) or stop one (state completed)", "tasks",
                              {200: json_response("a list was sent: one answer per event, in order",
                                                  {"type": "array", "items": _bulk_answer()}),
                               201: json_response("accepted, pending; with ?wait, a RunResult",
                                                  {"anyOf": [ref("Task"), ref("RunResult")]}, LOCATION),
                               202: json_response("stop requested", ref("Task"))},
                              (400, 403, 404, 409, 413, 415, 503), parameters=(wait,),
                              # A list's items are checked one by one: a bad one gets its own 400
                              # in the 200's answers, so the request schema only bounds the list.
                              body={"anyOf": [ref("TaskEvent"), {"type": "array", "minItems": 1, "maxItems": MAX_SUBMIT,
                                                                 "items": {"description": "a TaskEvent; each is "
                                                                           "validated on its own"}}]}),
            "get": _listing("listTasks", "A page of the tasks, oldest first", "tasks", "Task",
                            _page_parameters(STATES, "node", "service")),
        },
        "/tasks/{task_id}": {
            "parameters": [TASK_ID],
            "get": operation("getTask", "One task", "tasks", {200: task}, (404,)),
            "delete": operation("stopTask", "Stop a task (its container is stopped and removed); with "
                                "?purge=true, purge a finished task from the manager, the store and its worker",
                                "tasks",
                                {200: json_response("purged: the task as it was", ref("Task")),
                                 202: json_response("stop requested", ref("Task"))}, (400, 404, 409, 503),
                                parameters=(query("purge", {"type": "boolean", "default": False},
                                                  "purge the finished task now (409 if it has not finished)"),)),
        },
        "/tasks/{task_id}/wait": {
            "parameters": [TASK_ID],
            "get": operation("waitTask", "Wait until the task has finished, or the timeout", "tasks",
                             {200: json_response("the task, and whether it finished", ref("WaitResult"))},
                             (400, 404, 503), parameters=(timeout,)),
        },
        "/tasks/{task_id}/logs": {"parameters": [TASK_ID], "get": logs_operation("getTaskLogs")},
    }


NODE_NAME = {"name": "name", "in": "path", "required": True, "description": "the node's name (host:port by default)",
             "schema": {"type": "string", "minLength": 1, "maxLength": MAX_NODE_NAME, "pattern": _NODE_NAME.pattern}}


def _node_schemas() -> dict[str, dict[str, Any]]:
    label = {"type": "string", "maxLength": MAX_LABEL, "pattern": _LABEL.pattern}
    size = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_BYTES},
                      {"type": "string", "maxLength": 32, "pattern": SIZE_PATTERN}]}
    capacity = {"type": "object", "additionalProperties": False,
                "properties": {"cpu": {"type": "number", "minimum": 0, "maximum": MAX_CPU}, "memory": size,
                               "disk": size}}
    registration = {
        "type": "object", "additionalProperties": False, "required": ["address"],
        "properties": {"id": {"type": ["string", "null"], "format": "uuid"},
                       "name": {"type": ["string", "null"], "maxLength": MAX_NODE_NAME, "pattern": _NODE_NAME.pattern},
                       "address": {"type": "string", "maxLength": MAX_NODE_NAME, "pattern": _ADDRESS.pattern},
                       "capacity": {"anyOf": [{"type": "null"}, capacity]},
                       "labels": {"type": ["object", "null"], "maxProperties": MAX_LABELS,
                                  "propertyNames": label, "additionalProperties": {"anyOf": [{"const": ""}, label]}}},
        "description": "a worker joining: name defaults to address; capacity to what the worker's stats report"}
    drain = {"type": "object", "additionalProperties": False,
             "properties": {"deadline": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS,
                                         "default": DEFAULT_DRAIN_DEADLINE},
                            "force": {"type": "boolean", "default": False},
                            "cancel": {"type": "boolean", "default": False},
                            "parallel": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1}}}
    eligibility = {"type": "object", "additionalProperties": False, "required": ["eligible"],
                   "properties": {"eligible": {"type": "boolean"}}}
    return {"NodeRegistration": registration, "DrainRequest": drain, "Eligibility": eligibility}


def _node_paths() -> dict[str, Any]:
    node = json_response("the node", ref("Node"))
    return {
        "/nodes": {
            "get": _listing("listNodes", "A page of the workers with their latest stats", "nodes", "Node",
                            _page_parameters(NODE_STATES)),
            "post": operation("registerNode", "A worker joins (201) or rejoins (200)", "nodes",
                              {200: node, 201: json_response("the new node", ref("Node"), {"Location": "/nodes/<name>"})},
                              (400, 409, 413, 415, 503), body=ref("NodeRegistration")),
        },
        "/nodes/{name}": {
            "parameters": [NODE_NAME],
            "get": operation("getNode", "One node", "nodes", {200: node}, (404,)),
            "delete": operation("removeNode", "Forget a node that is down or drained", "nodes", {200: node},
                                (404, 409, 503)),
        },
        "/nodes/{name}/eligibility": {
            "parameters": [NODE_NAME],
            "post": operation("setNodeEligibility", "Let the node take new tasks, or not", "nodes", {200: node},
                              (400, 404, 409, 413, 415, 503), body=ref("Eligibility")),
        },
        "/nodes/{name}/drain": {
            "parameters": [NODE_NAME],
            "post": operation("drainNode", "Move every task off the node, or cancel a drain", "nodes",
                              {202: json_response("the drain is recorded", ref("Node"))},
                              (400, 404, 409, 413, 415, 503), body=ref("DrainRequest"), body_required=False),
        },
    }


def _events_path() -> dict[str, Any]:
    one = "(" + "|".join(TOPICS) + ")"
    since = query("since", {"type": "integer", "minimum": 0, "maximum": MAX_INDEX},
                  "send the events after this index (default: the Last-Event-ID header, else only new events)")
    topic = query("topic", {"type": "string", "pattern": f"^{one}(,{one})*$"},
                  "only these topics, comma-separated (default: every topic)")
    last_id = {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string",
               "pattern": "^([0-9]{1,18})?$"}, "description": "what an EventSource sends when it reconnects: wins over "
               "?since (empty: as if absent)"}
    stream = {"description": f"server-sent events: `id:` the index, `event:` the topic, `data:` the event as "
                             f"JSON; a comment every {HEARTBEAT:g} s when idle; a `gone` message when the "
                             f"reader fell behind the ring", "content": {"text/event-stream": {"schema": {
                  "type": "object", "description": "one message: its index, its topic and the event as JSON",
                  "properties": {"id": {"type": "string"}, "event": {"type": "string"}, "data": {"type": "string"}}}}}}
    return {"/events": {"get": operation(
        "streamEvents", "Changes of tasks, nodes, services and the leader, as they happen", "events",
        {200: stream, 410: json_response("the events after ?since are no longer kept (or the manager restarted): "
                                         "start over from the state and `oldest`", ref("EventsGone"))},
        (400, 503), parameters=(since, topic, last_id))}}


def manager_document(max_wait: float, default_wait: float) -> dict[str, Any]:
    """The manager API's OpenAPI document; `max_wait`/`default_wait` bound ?wait and ?timeout."""
    rpc_body = {"anyOf": [ref("JsonRpcRequest"),
                          {"type": "array", "items": ref("JsonRpcRequest"), "minItems": 1, "maxItems": MAX_BATCH}]}
    rpc_answer = {"anyOf": [ref("JsonRpcResponse"), {"type": "array", "items": ref("JsonRpcResponse")}]}
    paths = {
        **_task_paths(max_wait, default_wait),
        **service_paths(),
        **cluster_paths(),
        **_node_paths(),
        **_events_path(),
        "/health": {"get": operation("getManagerHealth", "Readiness: ok when every worker takes tasks", "meta",
                                     {200: json_response("the manager's and its workers' state",
                                                         ref("ManagerHealth"))}, open_route=True)},
        "/cluster": {"get": operation("getManagers", "The leader, its term and every manager (from any manager)",
                                      "meta", {200: json_response("the managers", ref("Cluster"))}, (503,))},
        "/jrpc": {"post": operation(
            "jsonRpc", "JSON-RPC 2.0: ContainerService.Create and ContainerService.Status", "jrpc",
            {200: json_response("the response, errors included (a list for a batch)", rpc_answer),
             204: {"description": "only notifications: nothing to answer"},
             413: json_response("body too large (a JSON-RPC error)", ref("JsonRpcResponse"))},
            body=rpc_body, body_required=False)},  # any body gets a JSON-RPC answer, a parse error included
    }
    return document("Orca manager", "Accepts tasks, places them on workers, and reports their state.", paths,
                    {**_schemas(), **service_schemas(), **_node_schemas()})
