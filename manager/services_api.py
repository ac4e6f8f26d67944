"""The manager's services routes: /services and /services/<name>/..."""
from __future__ import annotations

from flask import Blueprint, jsonify

from common.http import json_body
from manager.services import Services
from service.validation import parse_replicas, parse_service
from task import ValidationError
from task.validation import check_image_allowed


def create_services_blueprint(services: Services, allowed_images: tuple[str, ...] = ()) -> Blueprint:
    """Routes over a Services; `allowed_images` as for POST /tasks (403 for another image)."""
    api = Blueprint("services", __name__)

    @api.post("/services")
    def create_service():
        request = parse_service(json_body())
        check_image_allowed(request.task["image"], allowed_images)
        service = services.create(request)
        return jsonify(service), 201, {"Location": f"/services/{service['name']}"}

    @api.get("/services")
    def list_services():
        return jsonify(services.list())

    @api.get("/services/<name>")
    def get_service(name: str):
        return jsonify(services.get(name))

    @api.put("/services/<name>")
    def update_service(name: str):
        services.get(name)  # 404 before 400
        request = parse_service(json_body(), name_required=False, path_name=name)
        check_image_allowed(request.task["image"], allowed_images)
        return jsonify(services.update(name, request))

    @api.post("/services/<name>/scale")
    def scale_service(name: str):
        services.get(name)
        body = json_body()
        if not isinstance(body, dict):
            raise ValidationError("body must be a JSON object")
        unknown = sorted(str(k) for k in body if k != "replicas")
        if unknown:
            raise ValidationError(f"unknown field {unknown[0][:64]}")
        if "replicas" not in body:
            raise ValidationError("replicas is required")
        return jsonify(services.scale(name, parse_replicas(body["replicas"])))

    @api.post("/services/<name>/rollback")
    def rollback_service(name: str):
        return jsonify(services.rollback(name))

    @api.delete("/services/<name>")
    def delete_service(name: str):
        return jsonify(services.delete(name)), 202

    @api.get("/services/<name>/tasks")
    def service_tasks(name: str):
        return jsonify([task.to_dict() for task in services.tasks(name)])

    @api.get("/services/<name>/versions")
    def service_versions(name: str):
        return jsonify(services.versions(name))

    return api
