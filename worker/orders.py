"""The manager's orders to a worker, one at a time or in a batch: each parsed by the internal
contract (task.wire.parse_order), checked against the allowed images and handed to the Worker.
A batch answers every order on its own, so one bad order never fails the others."""
from __future__ import annotations

from typing import Any

from common.http import status_for
from task import OrcaError, State, ValidationError
from task.validation import check_image_allowed
from task.wire import MAX_BATCH, parse_order
from worker.worker import Worker


def take_order(worker: Worker, body: Any, allowed_images: tuple[str, ...] = ()) -> tuple[int, dict[str, Any]]:
    """Apply one order; return (HTTP status, the worker's copy of the task).

    Raises:
        OrcaError: the order is malformed (400), refused (403) or cannot be taken now (503).
    """
    event = parse_order(body)
    if event.state is State.RUNNING:
        check_image_allowed(event.task.image, allowed_images)
    task, created = worker.submit(event)
    status = 202 if event.state is State.COMPLETED else (201 if created else 200)
    return status, task.to_dict()


def take_batch(worker: Worker, body: Any, allowed_images: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Apply a list of orders in order; answer each with {"status", "task"} or {"status", "error"}.

    Raises:
        ValidationError: the body is not a list of 1..MAX_BATCH orders.
    """
    if not isinstance(body, list) or not 1 <= len(body) <= MAX_BATCH:
        raise ValidationError(f"body must be a list of 1 to {MAX_BATCH} task orders")
    answers = []
    for order in body:
        try:
            status, task = take_order(worker, order, allowed_images)
        except OrcaError as exc:
            answers.append({"status": status_for(exc), "error": str(exc)})
        else:
            answers.append({"status": status, "task": task})
    return answers
