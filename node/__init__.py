"""The Node model (pure). Stats collection lives in node.stats (psutil), imported on demand."""
from node.model import DOWN, UP, Node

__all__ = ["DOWN", "UP", "Node"]
