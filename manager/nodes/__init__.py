"""The manager's nodes at runtime: the registry (join, leave, eligibility; persisted), drains,
and their HTTP routes. Liveness stays in manager.liveness."""
from manager.nodes.drain import Drainer
from manager.nodes.registry import NodeRegistry

__all__ = ["Drainer", "NodeRegistry"]
