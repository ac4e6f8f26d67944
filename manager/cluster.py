"""GET /cluster: the leader, its term and every manager that claimed the lease, from any manager."""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, jsonify

from manager.leader import Leadership

GONE_AFTER = 3.0  # a manager not seen for this many TTLs is shown as unreachable


def cluster_view(leadership: Leadership | None, own_name: str, own_address: str) -> dict[str, Any]:
    """The /cluster body. A lone manager (no ORCA_DATABASE_URL) is its own leader, term 0.

    Raises:
        Unavailable (DatabaseUnavailable): the database did not answer.
    """
    if leadership is None:
        return {"leader": own_name, "term": 0,
                "managers": [{"name": own_name, "address": own_address, "role": "leader", "last_seen": None}]}
    lease, seen = leadership.lease.managers()
    managers = []
    for manager in seen:
        if manager.name == lease.leader:
            role = "leader"
        elif manager.role == "stopped":
            role = "stopped"
        else:
            role = "unreachable" if manager.age > GONE_AFTER * leadership.ttl else "follower"
        managers.append({"name": manager.name, "address": manager.address, "role": role,
                         "last_seen": manager.last_seen})
    return {"leader": lease.leader, "term": lease.term, "managers": managers}


def create_cluster_blueprint(view: Callable[[], dict[str, Any]]) -> Blueprint:
    """The GET /cluster route over `view`."""
    blueprint = Blueprint("cluster", __name__)

    @blueprint.get("/cluster")
    def cluster():
        return jsonify(view())

    return blueprint
