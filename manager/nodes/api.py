"""The node routes (GET /nodes, the paged listing, stays in manager.api with the other listings):

    POST   /nodes                     a worker joins (or rejoins): 201 new, 200 known
    GET    /nodes/<name>              one node
    POST   /nodes/<name>/eligibility  {"eligible": bool}
    POST   /nodes/<name>/drain        {"deadline": s, "force": bool, "parallel": n} | {"cancel": true}
    DELETE /nodes/<name>              forget a node that is down or drained
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from common.http import json_body
from manager.manager import Manager
from node.validation import parse_drain, parse_eligibility, parse_node_name, parse_registration
from task import NotFound, ValidationError


def create_nodes_blueprint(manager: Manager) -> Blueprint:
    """The node routes around a Manager."""
    api = Blueprint("nodes", __name__)

    @api.post("/nodes")
    def register_node():
        node, created = manager.register(parse_registration(json_body()))
        return jsonify(node.to_dict()), 201 if created else 200, {"Location": f"/nodes/{node.name}"}

    @api.get("/nodes/<name>")
    def get_node(name: str):
        return jsonify(manager.node(_name(name)).to_dict())

    @api.post("/nodes/<name>/eligibility")
    def set_eligibility(name: str):
        eligible = parse_eligibility(json_body())
        return jsonify(manager.set_eligibility(_name(name), eligible).to_dict())

    @api.post("/nodes/<name>/drain")
    def drain_node(name: str):
        drain = parse_drain(_optional_body())
        return jsonify(manager.drain(_name(name), drain).to_dict()), 202

    @api.delete("/nodes/<name>")
    def remove_node(name: str):
        return jsonify(manager.remove_node(_name(name)).to_dict())

    return api


def _name(name: str) -> str:
    """A node name from the path; an impossible one is unknown (404), not a bad request."""
    try:
        return parse_node_name(name, "name")
    except ValidationError:
        raise NotFound(f"node {name[:64]} not found") from None


def _optional_body() -> Any:
    """The JSON body, or {} when there is none."""
    if not request.get_data(cache=True):
        return {}
    return json_body()
