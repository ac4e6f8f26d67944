"""Services: N replicas of a task spec, scaled, updated and rolled back. Pure: the model,
its validation and the reconciler (no Flask, no HTTP, no Docker)."""
from service.model import KEEP_VERSIONS, Rollout, Service, UpdatePolicy
from service.reconcile import Plan, Replica, NodeView, reconcile
from service.validation import MAX_REPLICAS, parse_service, parse_replicas

__all__ = ["KEEP_VERSIONS", "Rollout", "Service", "UpdatePolicy", "Plan", "Replica", "NodeView", "reconcile",
           "MAX_REPLICAS", "parse_service", "parse_replicas"]
