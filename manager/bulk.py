"""Bulk submission: a list of task events in one POST /tasks, each answered on its own, the
new tasks recorded in one commit (Manager.submit_many). The JSON-RPC batch uses it too."""
from __future__ import annotations

from typing import Any

from common.http import status_for
from manager.intake import MAX_SUBMIT
from manager.manager import Manager
from task import OrcaError, State, Task, ValidationError, parse_event
from task.validation import check_image_allowed


def submit_list(manager: Manager, body: list[Any], allowed_images: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Take a list of task events; answer each, in order, with {"status": 201, "task"} (a new
    task), {"status": 202, "task"} (a stop) or {"status": 4xx/503, "error"}. One bad event
    refuses only itself.

    Raises:
        ValidationError: the list is empty or longer than MAX_SUBMIT.
    """
    if not 1 <= len(body) <= MAX_SUBMIT:
        raise ValidationError(f"body must be a task event or a list of 1 to {MAX_SUBMIT} of them")
    answers: list[dict[str, Any] | None] = [None] * len(body)
    runs, places = [], []
    for n, item in enumerate(body):
        try:
            event = parse_event(item)
            if event.state is State.COMPLETED:
                answers[n] = _answer(202, manager.stop(event.task.id))
                continue
            check_image_allowed(event.task.image, allowed_images)
        except OrcaError as exc:
            answers[n] = _error(exc)
            continue
        runs.append(event)
        places.append(n)
    for n, result in zip(places, manager.submit_many(runs) if runs else []):
        answers[n] = _error(result) if isinstance(result, OrcaError) else _answer(201, result)
    return [a for a in answers if a is not None]


def _answer(status: int, task: Task) -> dict[str, Any]:
    return {"status": status, "task": task.to_dict()}


def _error(exc: OrcaError) -> dict[str, Any]:
    return {"status": status_for(exc), "error": str(exc)}


class BulkCreate:
    """The creates of one JSON-RPC body (a batch or a single call), submitted together: add()
    takes each create's event and answers with its task at once; settle() records them all in
    one commit (Manager.submit_many) and turns the answer of each create that was refused into
    a server error (-32000), as a refused single submit would be."""

    def __init__(self, manager: Manager) -> None:
        self._manager = manager
        self._events: list[Any] = []

    def add(self, event: Any) -> Task:
        """Keep a create's event; its task (id known already) is the provisional answer."""
        self._events.append(event)
        return event.task

    def settle(self, answer: Any) -> Any:
        """Submit the kept events; return `answer` with refused creates' results as errors."""
        if not self._events:
            return answer
        try:
            results = self._manager.submit_many(self._events)
        except OrcaError as exc:
            results = [exc] * len(self._events)
        refused = {e.task.id: r for e, r in zip(self._events, results) if isinstance(r, OrcaError)}
        for response in (answer if isinstance(answer, list) else [answer] if answer else []):
            job = response.get("result") if isinstance(response.get("result"), dict) else {}
            if job.get("job_id") in refused:
                response["result"] = None
                response["error"] = {"code": -32000, "message": f"Server error: {refused[job['job_id']]}"}
        return answer
