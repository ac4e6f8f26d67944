"""The dashboard's pages and actions (blueprint "ui"). Each page reads a bounded amount: task
counts from the manager's index, one page of tasks, the nodes, the services, the latest
events; and names the event index it was rendered at, from which its script streams."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, redirect, render_template, request, send_from_directory, url_for

from manager.manager import Manager
from node.validation import DrainRequest
from manager.queries import STATES
from manager.services import Services
from manager.ui.auth import add_login_routes, check_access
from task import NotFound, ValidationError

HERE = Path(__file__).parent
PAGE = 50  # tasks per page
LATEST = 15  # events on the overview


def create_ui_blueprint(manager: Manager, services: Services) -> Blueprint:
    """The dashboard over `manager` and `services`: /ui and below, / for a browser, /favicon.ico."""
    ui = Blueprint("ui", __name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"),
                   static_url_path="/ui/static")
    ui.before_request(check_access)
    add_login_routes(ui)

    @ui.get("/")
    def root():
        if "text/html" in request.headers.get("Accept", ""):  # a browser; curl's */* gets the JSON 404
            return redirect(url_for("ui.overview"), 302)
        raise NotFound(f"no route {request.path}")  # what the JSON API answers there

    @ui.get("/favicon.ico")
    def favicon():
        return send_from_directory(HERE / "static", "favicon.svg", mimetype="image/svg+xml", max_age=86400)

    @ui.get("/ui")
    def overview():
        since = manager.events.last  # before reading: what changes after is streamed
        counts = manager.task_counts()
        nodes = manager.nodes()
        latest, _ = manager.events.since(max(0, since - LATEST), limit=LATEST)
        recent = manager.query_tasks(limit=PAGE, after=None).items if sum(counts.values()) <= PAGE else None
        return render_template("overview.html", since=since, counts=counts, total=sum(counts.values()),
                               nodes=nodes, up=sum(1 for n in nodes if n.is_up), services=services.list(),
                               events=list(reversed(latest)), recent=recent, page="overview")

    @ui.get("/ui/tasks")
    def tasks():
        since = manager.events.last
        state, node = _filter("state"), _filter("node")
        after = _filter("after")
        try:
            page = manager.query_tasks(state=state, node=node, after=after, limit=PAGE)
        except ValidationError as exc:
            return render_template("tasks.html", since=since, tasks=[], next=None, state=state, node=node,
                                   states=STATES, nodes=manager.nodes(), error=str(exc), page="tasks"), 400
        return render_template("tasks.html", since=since, tasks=page.items, next=page.next, state=state, node=node,
                               after=after, states=STATES, nodes=manager.nodes(), error=None, page="tasks")

    @ui.get("/ui/tasks/<task_id>")
    def task(task_id: str):
        since = manager.events.last
        found = manager.get(task_id)
        history = [e for e in manager.events.since(max(0, since - 2000), ("task",), limit=2000)[0]
                   if e["data"]["id"] == task_id]
        return render_template("task.html", since=since, task=found, fields=found.to_dict(), history=history,
                               page="tasks")

    @ui.post("/ui/tasks/<task_id>/stop")
    def stop_task(task_id: str):
        manager.stop(task_id)
        return redirect(url_for("ui.task", task_id=task_id), 303)

    @ui.get("/ui/nodes")
    def nodes():
        since = manager.events.last
        return render_template("nodes.html", since=since, nodes=[_node_view(n) for n in manager.nodes()],
                               page="nodes")

    @ui.get("/ui/nodes/<name>")
    def node(name: str):
        since = manager.events.last
        found = next((n for n in manager.nodes() if n.name == name), None)
        if found is None:
            raise NotFound(f"node {name[:64]} not found")
        page = manager.query_tasks(node=name, limit=PAGE)
        return render_template("node.html", since=since, node=_node_view(found), fields=found.to_dict(),
                               tasks=page.items, more=page.next is not None, page="nodes")

    @ui.post("/ui/nodes/<name>/drain")
    def drain_node(name: str):
        cancel = request.form.get("cancel") == "yes"
        manager.drain(name, DrainRequest(cancel=cancel))
        return redirect(url_for("ui.node", name=name), 303)

    @ui.post("/ui/nodes/<name>/eligibility")
    def node_eligibility(name: str):
        manager.set_eligibility(name, request.form.get("eligible") == "yes")
        return redirect(url_for("ui.node", name=name), 303)

    @ui.get("/ui/services")
    def services_page():
        return render_template("services.html", since=manager.events.last, services=services.list(),
                               page="services")

    @ui.get("/ui/services/<name>")
    def service(name: str):
        since = manager.events.last
        found = services.get(name)
        replicas = manager.query_tasks(service=name, limit=PAGE).items
        return render_template("service.html", since=since, service=found, replicas=replicas,
                               versions=services.versions(name), page="services")

    @ui.post("/ui/services/<name>/scale")
    def scale_service(name: str):
        raw = request.form.get("replicas", "")
        if not raw.isdigit() or int(raw) > 1000:
            raise ValidationError("replicas must be an integer from 0 to 1000")
        services.scale(name, int(raw))
        return redirect(url_for("ui.service", name=name), 303)

    @ui.post("/ui/services/<name>/rollback")
    def rollback_service(name: str):
        services.rollback(name)
        return redirect(url_for("ui.service", name=name), 303)

    return ui


def _filter(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    return value or None


def _node_view(node) -> dict[str, Any]:
    """A node with its allocation as percentages of capacity (for the bars)."""
    data = node.to_dict()
    bars = {}
    for resource in ("cpu", "memory", "disk"):
        total = float(node.capacity.get(resource) or 0)
        used = float(node.allocated.get(resource) or 0)
        bars[resource] = {"used": used, "total": total, "percent": min(100.0, 100.0 * used / total) if total else 0.0}
    data["bars"] = bars
    data["cpu_percent"] = (node.stats or {}).get("cpu_percent")
    data["memory_percent"] = ((node.stats or {}).get("memory") or {}).get("percent")
    return data

