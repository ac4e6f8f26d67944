"""The seed cluster's API on Orca's manager: Orca is cluster 0, its workers are the nodes,
and each container posted to /clusters/0/service becomes a service (manager.services)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from common.http import json_body
from manager.queries import MAX_LIMIT
from manager.services import Services
from manager.cluster_nodes import ClusterNodes
from service.seed import parse_seed_join, parse_seed_leave, parse_seed_service
from task import NotFound, State
from task.validation import check_image_allowed

CLUSTER_ID = "0"
ACTIVE = (State.PENDING.value, State.SCHEDULED.value, State.RUNNING.value)


def create_clusters_blueprint(services: Services, placeholder_image: str = "busybox",
                              allowed_images: tuple[str, ...] = (), nodes: ClusterNodes | None = None) -> Blueprint:
    """Routes of the seed API over the manager behind `services`; `nodes` joins and removes
    nodes (default: one that cannot spawn workers)."""
    api = Blueprint("clusters", __name__)
    manager = services.manager
    nodes = nodes or ClusterNodes(manager)

    def cluster(cluster_id: str) -> None:
        if cluster_id != CLUSTER_ID:
            raise NotFound(f"cluster {cluster_id[:32]} not found (Orca is cluster 0)")

    def summary() -> dict[str, Any]:
        nodes = manager.nodes()
        return {"id": 0, "name": "orca", "nodes": len(nodes), "nodes_up": sum(1 for n in nodes if n.is_up),
                "services": len(services.list())}

    @api.get("/clusters")
    def list_clusters():
        return jsonify([summary()])

    @api.get("/clusters/<cluster_id>")
    def get_cluster(cluster_id: str):
        cluster(cluster_id)
        return jsonify({**summary(), "nodes": node_views(services), "services": services.list()})

    @api.get("/clusters/<cluster_id>/stats")
    def cluster_stats(cluster_id: str):
        cluster(cluster_id)
        return jsonify({**summary(), "nodes": node_views(services)})

    @api.get("/clusters/<cluster_id>/state")
    def cluster_state(cluster_id: str):
        cluster(cluster_id)
        return jsonify({**summary(), "nodes": node_views(services)})

    @api.post("/clusters/<cluster_id>/service")
    def post_service(cluster_id: str):
        cluster(cluster_id)
        requests = parse_seed_service(json_body(), placeholder_image)
        for request in requests:
            check_image_allowed(request.task["image"], allowed_images)
        results = [services.apply(request) for request in requests]
        created = any(was_created for _, was_created in results)
        return jsonify({"cluster": 0, "services": [service for service, _ in results]}), 201 if created else 200

    @api.post("/clusters/<cluster_id>/nodes")
    def join_node(cluster_id: str):
        cluster(cluster_id)
        node, created = nodes.join(parse_seed_join(json_body()))
        return jsonify(node), 201 if created else 200

    @api.delete("/clusters/<cluster_id>/nodes")
    def leave_node(cluster_id: str):
        cluster(cluster_id)
        return jsonify(nodes.leave(*parse_seed_leave(json_body()))), 202

    return api


def node_views(services: Services) -> list[dict[str, Any]]:
    """Each node with its capacity, load and the replicas (active tasks) it holds."""
    views = []
    for node in services.manager.nodes():
        host, _, port = node.address.rpartition(":")
        tasks = services.manager.query_tasks(node=node.name, limit=MAX_LIMIT).items
        replicas = [{"task_id": t.id, "service": t.service, "service_version": t.service_version,
                     "state": t.state.value} for t in tasks if t.state.value in ACTIVE]
        stats = node.stats or {}
        views.append({
            "id": getattr(node, "id", node.name), "name": node.name, "host": host, "port": int(port or 0),
            "status": node.state, "eligible": getattr(node, "eligible", True),
            "capacity": getattr(node, "capacity", {}), "allocated": getattr(node, "allocated", {}),
            "load": {"cpu_percent": stats.get("cpu_percent"), "load_avg": stats.get("load_avg"),
                     "memory_percent": (stats.get("memory") or {}).get("percent"), "tasks": len(replicas)},
            "replicas": replicas,
        })
    return views
