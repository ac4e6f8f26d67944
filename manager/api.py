"""The manager's HTTP API."""
from __future__ import annotations

import time
from typing import Any, Callable
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, jsonify, request

from common.http import create_json_app, json_body
from common.metrics import ManagerMetrics, serve_metrics
from common.openapi import serve_document
from common.query import log_options, query_bool, query_float, query_int
from common.streams import StreamLimit, client_gone, relay, text_response, until_broken
from manager.cluster import cluster_view, create_cluster_blueprint
from manager.events_api import HEARTBEAT, MAX_EVENT_STREAMS, create_events_blueprint
from manager.jrpc import create_jrpc_blueprint
from manager.bulk import submit_list
from manager.logs import TaskLogs
from manager.manager import Manager
from manager.nodes.api import create_nodes_blueprint
from manager.openapi import manager_document
from manager.queries import DEFAULT_LIMIT, MAX_LIMIT
from manager.cluster_nodes import ClusterNodes
from manager.clusters import create_clusters_blueprint
from manager.services import Services
from manager.services_api import create_services_blueprint
from manager.ui import create_ui_blueprint
from task import State, Task, TaskEvent, Unavailable, ValidationError, WorkerUnavailable, parse_event
from task.validation import check_image_allowed

DEFAULT_WAIT = 30.0  # seconds GET /tasks/<id>/wait waits without ?timeout
MAX_WAIT = 300.0  # the longest ?timeout / ?wait accepted
MAX_LONG_REQUESTS = 8  # follows and waits served at once; each holds a request thread
NEXT_HEADER = "X-Orca-Next"  # the cursor of a listing's next page (absent on the last page)
CLIENT_CHECK = 0.5  # seconds between looks at whether a waiting client is still there


def create_app(manager: Manager, allowed_images: tuple[str, ...] = (), max_long_requests: int = MAX_LONG_REQUESTS,
               metrics: ManagerMetrics | None = None, services: Services | None = None,
               placeholder_image: str = "busybox", cluster: Callable[[], dict[str, Any]] | None = None,
               cluster_nodes: ClusterNodes | None = None, max_event_streams: int = MAX_EVENT_STREAMS,
               heartbeat: float = HEARTBEAT) -> Flask:
    """Build the manager's Flask app around a Manager.

    Args:
        allowed_images: ORCA_ALLOWED_IMAGES entries (task/reference.py); an image none admits gets 403; empty: any.
        max_long_requests: log follows and waits served at once (503 beyond).
        max_event_streams, heartbeat: GET /events streams served at once (503 beyond), and
            the seconds between heartbeat comments on an idle one.
        metrics: what GET /metrics reports (the service wires its hooks); default: the
            manager's gauges only.
        services: the services over this manager (the service runs their reconcile pass);
            default: one over the manager's store, reconciled by no one.
        cluster: the body of GET /cluster (several managers); default: this manager alone.
        cluster_nodes: the seed API's node joins and leaves; default: one that cannot spawn.
    """
    app = create_json_app("orca-manager")
    api = Blueprint("manager", __name__)
    logs = TaskLogs(manager)
    long_requests = StreamLimit(max_long_requests, "log follows and waits")

    @api.post("/tasks")
    def submit_task():
        wait = query_float("wait", None, 0.0, MAX_WAIT)
        body = json_body()
        if isinstance(body, list):
            if wait is not None:
                raise ValidationError("query parameter wait cannot be used with a list of tasks")
            return jsonify(submit_list(manager, body, allowed_images)), 200
        event = parse_event(body)
        if event.state is State.COMPLETED:
            return jsonify(manager.stop(event.task.id).to_dict()), 202
        check_image_allowed(event.task.image, allowed_images)
        if wait is not None:
            return run_to_completion(event, wait)
        task = manager.submit(event)
        return jsonify(task.to_dict()), 201, {"Location": f"/tasks/{task.id}"}

    def run_to_completion(event: TaskEvent, wait: float):
        """Submit, wait up to `wait` seconds for the task to end, answer with its output."""
        release = long_requests.acquire()  # before submitting: a refusal creates nothing
        gone = client_gone()
        try:
            task = manager.submit(event)
            task, done = wait_while_connected(task.id, wait, gone)
            output = logs.capture(task) if not gone() else {}
        finally:
            release()
        body = {"task": task.to_dict(), "done": done, "timed_out": not done, "exit_code": task.exit_code,
                "output": output}
        return jsonify(body), 201, {"Location": f"/tasks/{task.id}"}

    def wait_while_connected(task_id: str, timeout: float, gone: Callable[[], bool]) -> tuple[Task, bool]:
        """Wait for the task to end, as manager.wait_task, but give up as soon as the client
        hangs up (looked at every CLIENT_CHECK seconds), so its slot is free again."""
        deadline = time.monotonic() + timeout
        while True:
            slice_ = max(0.0, min(CLIENT_CHECK, deadline - time.monotonic()))
            task, done = manager.wait_task(task_id, _finished, slice_)
            if done or slice_ <= 0 or gone() or not manager.accepting:
                return task, done

    @api.get("/tasks/<task_id>/wait")
    def wait_for_task(task_id: str):
        timeout = query_float("timeout", DEFAULT_WAIT, 0.0, MAX_WAIT)
        manager.get(task_id)  # 404 before taking a slot
        release = long_requests.acquire()
        try:
            task, done = wait_while_connected(task_id, timeout, client_gone())
        finally:
            release()
        if not done and not manager.accepting:
            raise Unavailable("manager is shutting down")
        return jsonify({"task": task.to_dict(), "done": done, "timed_out": not done})

    @api.get("/tasks/<task_id>/logs")
    def task_logs(task_id: str) -> Response:
        options = log_options()
        task = manager.get(task_id)
        if not options.follow:
            chunks, close = logs.read(task, options)
            return text_response(until_broken(chunks, (WorkerUnavailable,), task.id), close)
        release = long_requests.acquire()
        follower = logs.follower(task.id, options)
        gone = client_gone()
        body = relay(iter(follower), follower.close, stop=lambda: not manager.accepting or gone())
        return text_response(body, follower.close, release)

    @api.get("/health")
    def health():
        workers = [{"name": n.name, "address": n.address, "state": n.state, "accepts_tasks": n.accepts_tasks,
                    "docker": n.engine} for n in manager.nodes()]
        ready = bool(workers) and all(w["accepts_tasks"] for w in workers)
        return jsonify({"status": "ok" if ready else "degraded", "workers": workers})

    @api.get("/tasks")
    def list_tasks():
        page = manager.query_tasks(**page_query(("state", "node", "service")))
        return paged([t.to_dict() for t in page.items], page.next)

    @api.get("/tasks/<task_id>")
    def get_task(task_id: str):
        return jsonify(manager.get(task_id).to_dict())

    @api.delete("/tasks/<task_id>")
    def stop_task(task_id: str):
        if query_bool("purge", False):  # a finished task: forgotten everywhere (manager/retention.py)
            return jsonify(manager.purge(task_id).to_dict()), 200
        return jsonify(manager.stop(task_id).to_dict()), 202

    @api.get("/nodes")
    def list_nodes():
        page = manager.query_nodes(**page_query(("state",)))
        return paged([n.to_dict() for n in page.items], page.next)

    app.register_blueprint(api)
    app.register_blueprint(create_nodes_blueprint(manager))
    app.register_blueprint(create_jrpc_blueprint(manager, allowed_images))
    services = services or Services(manager, manager.store)
    app.register_blueprint(create_services_blueprint(services, allowed_images))
    app.register_blueprint(create_clusters_blueprint(services, placeholder_image, allowed_images, cluster_nodes))
    app.register_blueprint(create_cluster_blueprint(cluster or (lambda: cluster_view(None, "manager", ""))))
    app.register_blueprint(create_events_blueprint(manager.events, lambda: manager.accepting, max_event_streams,
                                                   heartbeat))
    app.register_blueprint(create_ui_blueprint(manager, services))
    serve_document(app, manager_document(MAX_WAIT, DEFAULT_WAIT))
    serve_metrics(app, (metrics or ManagerMetrics(manager)).registry)
    return app


def page_query(filters: tuple[str, ...]) -> dict[str, Any]:
    """`limit`, `after` and the named filters of a listing (the manager checks their values)."""
    args: dict[str, Any] = {"limit": query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)}
    for name in ("after", *filters):
        if name in request.args:
            args[name] = request.args[name]
    return args


def paged(items: list[dict[str, Any]], cursor: str | None) -> Response:
    """A page of a listing: the items as a JSON list; when more follow, the next page's cursor
    in X-Orca-Next and a Link header with rel="next"."""
    response = jsonify(items)
    if cursor is not None:
        response.headers[NEXT_HEADER] = cursor
        query = urlencode({**request.args.to_dict(), "after": cursor})
        response.headers["Link"] = f'<{request.path}?{query}>; rel="next"'
    return response


def _finished(task: Task) -> bool:
    return task.state.is_terminal
