"""The services part of the manager's OpenAPI document (paths and schemas), built from the
limits service/validation.py checks."""
from __future__ import annotations

from typing import Any

from common.openapi import json_response, operation
from service.model import ON_FAILURE, ORDERS, ROLLOUT_STATES, UpdatePolicy
from service.validation import MAX_PARALLEL, MAX_REPLICAS, MAX_SECONDS, NAME
from task.schema import ref

NAME_PARAMETER = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
                  "description": "the service's name"}
REPLICAS = {"type": "integer", "minimum": 0, "maximum": MAX_REPLICAS}


def service_schemas() -> dict[str, dict[str, Any]]:
    seconds = {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}
    update = {"max_parallel": {"type": "integer", "minimum": 1, "maximum": MAX_PARALLEL},
              "min_healthy_time": seconds, "healthy_deadline": seconds, "on_failure": {"enum": list(ON_FAILURE)},
              "order": {"enum": list(ORDERS)}}
    if set(update) != set(UpdatePolicy.__dataclass_fields__):
        raise RuntimeError("update policy schema out of step with service.model.UpdatePolicy")
    version = {"type": "integer", "minimum": 1}
    rollout = {"from_version": version, "to_version": version, "state": {"enum": list(ROLLOUT_STATES)},
               "updated": {"type": "integer", "minimum": 0}, "total": {"type": "integer", "minimum": 0},
               "reason": {"type": ["string", "null"]}}
    text = {"type": ["string", "null"]}
    service = {"name": {"type": "string"}, "version": version, "replicas": REPLICAS,
               "running": {"type": "integer", "minimum": 0}, "healthy": {"type": "integer", "minimum": 0},
               "task": {"type": "object"}, "update": ref("UpdatePolicy"),
               "rollout": {"anyOf": [{"type": "null"}, ref("Rollout")]}, "created_at": text, "updated_at": text,
               "deleting": {"type": "boolean"}}
    body = {"name": {"type": "string", "pattern": NAME.pattern}, "replicas": REPLICAS, "task": ref("TaskSpec"),
            "update": {"type": "object", "additionalProperties": False, "properties": update}}
    return {
        "UpdatePolicy": {"type": "object", "required": list(update), "properties": update},
        "Rollout": {"type": "object", "required": list(rollout), "properties": rollout},
        "Service": {"type": "object", "required": list(service), "properties": service},
        "ServiceBody": {"type": "object", "additionalProperties": False, "required": ["name", "task"],
                        "properties": body, "description": "a task spec without `id`, N replicas, the update policy"},
        "ServiceUpdate": {"type": "object", "additionalProperties": False, "required": ["task"], "properties": body,
                          "description": "a new task spec starts a rollout; omitting replicas keeps the count"},
        "ServiceVersion": {"type": "object", "required": ["version", "task", "created_at", "current"],
                           "properties": {"version": version, "task": {"type": "object"}, "created_at": text,
                                          "current": {"type": "boolean"}}},
    }


def service_paths() -> dict[str, Any]:
    service = json_response("the service", ref("Service"))
    changed = (400, 403, 404, 409, 413, 415, 503)
    return {
        "/services": {
            "post": operation("createService", "Create a service: N replicas of a task spec", "services",
                              {201: json_response("created", ref("Service"), {"Location": "/services/<name>"})},
                              (400, 403, 409, 413, 415, 503), body=ref("ServiceBody")),
            "get": operation("listServices", "Every service with its observed counts", "services",
                             {200: json_response("the services", {"type": "array", "items": ref("Service")})}),
        },
        "/services/{name}": {
            "parameters": [NAME_PARAMETER],
            "get": operation("getService", "One service", "services", {200: service}, (404,)),
            "put": operation("updateService", "A new task spec (a rolling update), replicas or update policy",
                             "services", {200: service}, changed, body=ref("ServiceUpdate")),
            "delete": operation("deleteService", "Stop every replica; the service is gone when they are",
                                "services", {202: json_response("delete requested", ref("Service"))},
                                (404, 503)),
        },
        "/services/{name}/scale": {
            "parameters": [NAME_PARAMETER],
            "post": operation("scaleService", "Set the desired replicas (409 while a rollout runs)", "services",
                              {200: service}, changed,
                              body={"type": "object", "required": ["replicas"], "additionalProperties": False,
                                    "properties": {"replicas": REPLICAS}}),
        },
        "/services/{name}/rollback": {
            "parameters": [NAME_PARAMETER],
            "post": operation("rollbackService", "Back to the previous version at once", "services",
                              {200: service}, (404, 409, 503)),
        },
        "/services/{name}/tasks": {
            "parameters": [NAME_PARAMETER],
            "get": operation("listServiceTasks", "The service's replicas (tasks), ended ones included", "services",
                             {200: json_response("the replicas", {"type": "array", "items": ref("Task")})},
                             (404,)),
        },
        "/services/{name}/versions": {
            "parameters": [NAME_PARAMETER],
            "get": operation("listServiceVersions", "The last 10 versions of the task spec", "services",
                             {200: json_response("the versions, oldest first",
                                                 {"type": "array", "items": ref("ServiceVersion")})}, (404,)),
        },
    }


def cluster_paths() -> dict[str, Any]:
    """The seed cluster's API (manager/clusters.py): Orca is cluster 0."""
    cluster_id = {"name": "cluster_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
                  "description": "the cluster: Orca is 0"}
    summary = {"type": "object", "required": ["id", "nodes"], "properties": {"id": {"const": 0}}}
    container = {"type": "object", "additionalProperties": False, "properties": {
        "uniq_id": {"type": ["integer", "string"]}, "label": {"type": "string"}, "description": {"type": "string"},
        "image": {"type": "string"}, "command": {"type": "array", "items": {"type": "string"}},
        "replicas": REPLICAS}}
    body = {"anyOf": [
        {"type": "object", "required": ["container"], "additionalProperties": False,
         "properties": {"container": container, "replicas": REPLICAS}},
        {"type": "object", "required": ["containers"], "additionalProperties": False,
         "properties": {"containers": {"type": "array", "items": container, "minItems": 1, "maxItems": 100}}}]}
    result = {"type": "object", "required": ["cluster", "services"],
              "properties": {"cluster": {"const": 0}, "services": {"type": "array", "items": ref("Service")}}}
    read = {200: json_response("the cluster with its nodes (capacity, load, replicas)", summary)}
    address = {"host": {"type": "string", "pattern": "^[A-Za-z0-9.:-]{1,253}$"},
               "port": {"type": "integer", "minimum": 1, "maximum": 65535}}
    join = {"type": "object", "required": ["host", "port"], "additionalProperties": False, "properties": {
        **address, "id": {"type": ["string", "integer"]}, "capacity": {"type": ["object", "number"]},
        "labels": {"type": "object"}, "spawn": {"type": "boolean"}}}
    leave = {"type": "object", "required": ["host", "port"], "additionalProperties": False,
             "properties": {**address, "id": {"type": ["string", "integer"]}}}
    return {
        "/clusters": {"get": operation("listClusters", "The clusters: Orca is cluster 0", "clusters",
                                       {200: json_response("one cluster", {"type": "array", "items": summary})})},
        "/clusters/{cluster_id}": {"parameters": [cluster_id],
                                   "get": operation("getCluster", "Nodes and services", "clusters", read, (404,))},
        "/clusters/{cluster_id}/stats": {"parameters": [cluster_id],
                                         "get": operation("getClusterStats", "Nodes: capacity, load, replicas",
                                                          "clusters", read, (404,))},
        "/clusters/{cluster_id}/state": {"parameters": [cluster_id],
                                         "get": operation("getClusterState", "Nodes: capacity, load, replicas",
                                                          "clusters", read, (404,))},
        "/clusters/{cluster_id}/nodes": {
            "parameters": [cluster_id],
            "post": operation("joinClusterNode", "Register a node; with spawn, start its worker process first",
                              "clusters", {201: json_response("joined", {"type": "object"}),
                                           200: json_response("known already: updated", {"type": "object"})},
                              (400, 404, 409, 413, 415, 503), body=join),
            "delete": operation("leaveClusterNode", "Drain the node at host:port, then remove it (and stop its "
                                "worker if it was spawned)", "clusters",
                                {202: json_response("draining; removed once drained", {"type": "object"})},
                                (400, 404, 409, 413, 415, 503), body=leave)},
        "/clusters/{cluster_id}/service": {"parameters": [cluster_id], "post": operation(
            "postClusterService", "Each container becomes a service (created, or updated if it exists)",
            "clusters", {201: json_response("a service was created", result),
                         200: json_response("every service existed and was updated", result)},
            (400, 403, 404, 409, 413, 415, 503), body=body)},
    }
