"""The worker's HTTP API (the manager is its client)."""
from __future__ import annotations

import uuid
from typing import Any, Callable

from flask import Blueprint, Flask, jsonify, request

from common.http import create_json_app, json_body
from task import NotFound, parse_event
from worker.worker import Worker

VERSION_HEADER = "X-Orca-Version"
INSTANCE_HEADER = "X-Orca-Instance"


def create_app(worker: Worker, stats: Callable[[], dict[str, Any]]) -> Flask:
    """Build the worker's Flask app around a Worker and a function returning host stats."""
    app = create_json_app(f"orca-worker-{worker.name}")
    instance = uuid.uuid4().hex  # tells the manager when this worker has restarted
    api = Blueprint("worker", __name__)

    @api.post("/tasks")
    def submit_task():
        event = parse_event(json_body())
        task, created = worker.submit(event)
        status = 202 if event.state.value == "completed" else (201 if created else 200)
        return jsonify(task.to_dict()), status, {"Location": f"/tasks/{task.id}"}

    @api.get("/tasks")
    def list_tasks():
        since = request.args.get("since", type=int)
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
        return jsonify(worker.stop(task_id).to_dict()), 202

    @api.get("/stats")
    def get_stats():
        return jsonify({**stats(), "task_count": worker.active_count()})

    app.register_blueprint(api)
    return app
