"""The worker's HTTP API (the manager is its client)."""
from __future__ import annotations

import logging
import uuid
from typing import Any, Callable

from flask import Blueprint, Flask, Response, jsonify

from common.http import create_json_app, json_body
from common.metrics import WorkerMetrics, serve_metrics
from common.openapi import serve_document
from common.query import LogOptions, log_options, query_float
from common.streams import (MAX_KEEPALIVE, MIN_KEEPALIVE, StreamLimit, client_gone, framed, relay, text_response,
                            until_broken)
from common.query import query_bool, query_int
from task import NotFound, State, Task, TaskEvent, Unavailable, ValidationError, parse_uuid
from worker.logs import TaskLogFollower
from worker.orders import take_batch, take_order
from worker.openapi import worker_document
from worker.retention import Purger
from worker.containers import RuntimeFailure
from worker.worker import Worker

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Orca-Version"
INSTANCE_HEADER = "X-Orca-Instance"
MAX_WAIT = 30.0  # seconds a GET /tasks?since=N&wait=S may block
MAX_FOLLOWS = 8  # log follows served at once; each holds a request thread


def create_app(worker: Worker, stats: Callable[[], dict[str, Any]], allowed_images: tuple[str, ...] = (),
               max_follows: int = MAX_FOLLOWS, metrics: WorkerMetrics | None = None,
               purger: Purger | None = None) -> Flask:
    """Build the worker's Flask app around a Worker and a function returning host stats.

    Args:
        allowed_images: fnmatch patterns a task's image must match (403 otherwise); empty:
            any. The manager checks too: this is defence in depth against direct callers.
        max_follows: log follows served at once (503 beyond).
        metrics: what GET /metrics reports (the service wires its hooks); default: the
            worker's gauges only.
        purger: the worker's retention (DELETE ?purge=true; the change feed's `since` is the
            manager's acknowledgement); default: one with the default retention.
    """
    purger = purger or Purger(worker)
    app = create_json_app(f"orca-worker-{worker.name}")
    instance = uuid.uuid4().hex  # tells the manager when this worker has restarted
    api = Blueprint("worker", __name__)
    follows = StreamLimit(max_follows, "log follows")

    @api.post("/tasks")
    def submit_task():
        worker.heard_from_manager()
        status, task = take_order(worker, json_body(), allowed_images)
        return jsonify(task), status, {"Location": f"/tasks/{task['id']}"}

    @api.post("/tasks/batch")
    def submit_batch():
        """Several orders in one request (the manager's batched dispatch): 200 with one
        answer per order, {"status", "task"} or {"status", "error"}, in order."""
        worker.heard_from_manager()
        return jsonify(take_batch(worker, json_body(), allowed_images))

    @api.get("/tasks")
    def list_tasks():
        worker.heard_from_manager()
        if not worker.ready:  # a listing before adoption would miss tasks that run here
            worker.check_ready()
        since = query_int("since", None, -2**63, 2**63 - 1)  # not an integer: 400, never "all tasks"
        wait = query_float("wait", 0.0, 0.0, MAX_WAIT)
        if since is not None:
            purger.acknowledge(since)
        if since is not None and wait:
            worker.db.wait_for_change(since, wait)
        if since is None:
            version, tasks = worker.db.version, worker.db.list()
        else:
            version, tasks = worker.db.changed_since(since)
        return jsonify([t.to_dict() for t in tasks]), 200, {VERSION_HEADER: str(version), INSTANCE_HEADER: instance}

    @api.get("/tasks/<task_id>")
    def get_task(task_id: str):
        task = worker.db.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id[:64]} not found")
        return jsonify(task.to_dict())

    @api.delete("/tasks/<task_id>")
    def stop_task(task_id: str):
        worker.heard_from_manager()
        attempt = query_int("attempt", None, 1, 1 << 40)
        purge = query_bool("purge", False)
        try:
            task_id = parse_uuid(task_id, "task id")
        except ValidationError:
            raise NotFound(f"task {task_id[:64]} not found") from None
        if purge:
            return jsonify(purger.purge(task_id).to_dict())
        task, _ = worker.submit(TaskEvent(task=Task(id=task_id, attempt=attempt), state=State.COMPLETED))
        return jsonify(task.to_dict()), 202

    @api.get("/stats")
    def get_stats():
        worker.heard_from_manager()
        return jsonify({**stats(), "task_count": worker.active_count()})

    @api.get("/tasks/<task_id>/logs")
    def task_logs(task_id: str):
        options = log_options()
        task = worker.db.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id[:64]} not found")
        return follow_logs(task, options) if options.follow else read_logs(task, options)

    def read_logs(task: Task, options: LogOptions) -> Response:
        """The output of the task's current container so far; empty when it has none (not
        started, failed to start, or its container was removed)."""
        if not task.container_id:
            return text_response(())
        try:
            opened = worker.runtime.stream_logs(task.container_id, options.tail, options.stdout, options.stderr,
                                                follow=False)
        except RuntimeFailure as exc:
            raise Unavailable(f"task {task.id}: {exc}") from None
        if opened is None:
            return text_response(())
        chunks, close = opened
        return text_response(until_broken(chunks, (RuntimeFailure,), task.id), close)

    def follow_logs(task: Task, options: LogOptions) -> Response:
        """Lines as the task writes them, across restarts, until the task ends; waits for a
        task that has no container yet."""
        engine = worker.engine
        if engine.get("reachable") is False:
            raise Unavailable(f"task {task.id}: {engine.get('error') or 'docker engine unreachable'}")
        keepalive = query_float("keepalive", None, MIN_KEEPALIVE, MAX_KEEPALIVE)
        release = follows.acquire()
        follower = TaskLogFollower(worker.db, worker.runtime, task.id, options)
        gone = client_gone()
        body = relay(iter(follower), follower.close, stop=lambda: not worker.accepting or gone(),
                     heartbeat=keepalive)
        log.info("task %s: following its output", task.id)
        return text_response(framed(body) if keepalive else body, follower.close, release)

    @api.get("/health")
    def health():
        """Answered from the last periodic engine check: a request, authenticated or not,
        never costs an engine call."""
        engine = worker.engine
        reachable = engine.get("reachable") is not False
        body = {"status": "ok" if reachable else "unavailable", "worker": worker.name, "docker": engine}
        return jsonify(body), 200 if reachable else 503

    app.register_blueprint(api)
    serve_document(app, worker_document(MAX_WAIT, VERSION_HEADER, INSTANCE_HEADER))
    serve_metrics(app, (metrics or WorkerMetrics(worker)).registry)
    return app

