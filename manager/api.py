"""The manager's HTTP API."""
from __future__ import annotations

from flask import Blueprint, Flask, jsonify

from common.http import create_json_app, json_body
from manager.jrpc import create_jrpc_blueprint
from manager.manager import Manager
from task import State, parse_event


def create_app(manager: Manager) -> Flask:
    """Build the manager's Flask app around a Manager."""
    app = create_json_app("orca-manager")
    api = Blueprint("manager", __name__)

    @api.post("/tasks")
    def submit_task():
        event = parse_event(json_body())
        if event.state is State.COMPLETED:
            return jsonify(manager.stop(event.task.id).to_dict()), 202
        task = manager.submit(event)
        return jsonify(task.to_dict()), 201, {"Location": f"/tasks/{task.id}"}

    @api.get("/tasks")
    def list_tasks():
        return jsonify([t.to_dict() for t in manager.list()])

    @api.get("/tasks/<task_id>")
    def get_task(task_id: str):
        return jsonify(manager.get(task_id).to_dict())

    @api.delete("/tasks/<task_id>")
    def stop_task(task_id: str):
        return jsonify(manager.stop(task_id).to_dict()), 202

    @api.get("/nodes")
    def list_nodes():
        return jsonify([n.to_dict() for n in manager.nodes()])

    app.register_blueprint(api)
    app.register_blueprint(create_jrpc_blueprint(manager))
    return app
