"""A write forwarded to a manager that is still taking over (its lease claimed, its state not
yet reloaded) waits until it leads: served earlier, the reload would erase it from memory."""
from __future__ import annotations

import threading

from flask import Flask

import manager.forward as forward
from manager.forward import FORWARDED_HEADER, Forwarder
from manager.leader import Leadership
from store.lease import MemoryLease


def _app(leadership: Leadership, served: list[bool]) -> Flask:
    app = Flask(__name__)
    Forwarder(leadership, leadership.name).install(app)

    @app.post("/tasks")
    def tasks():
        served.append(leadership.is_leader)
        return {"ok": True}, 201
    return app


def test_a_forwarded_write_waits_for_the_take_over_to_finish():
    reloading, reloaded = threading.Event(), threading.Event()

    def elected(term: int) -> None:
        reloading.set()
        assert reloaded.wait(10)
    leadership = Leadership(MemoryLease(), "b", "b:1", 9.0, on_elected=elected)
    served: list[bool] = []
    client = _app(leadership, served).test_client()
    claim = threading.Thread(target=leadership.tick)
    claim.start()
    assert reloading.wait(10)  # the lease is b's; its take-over is under way
    answers = []
    request = threading.Thread(target=lambda: answers.append(
        client.post("/tasks", json={}, headers={FORWARDED_HEADER: "a"})))
    request.start()
    request.join(0.3)
    assert request.is_alive() and served == []  # held, not served on half a state
    reloaded.set()
    claim.join(10)
    request.join(10)
    assert answers[0].status_code == 201 and served == [True]


def test_a_forwarded_write_to_a_manager_that_does_not_lead_answers_503(monkeypatch):
    monkeypatch.setattr(forward, "LEADER_WAIT", 0.05)
    lease = MemoryLease()
    Leadership(lease, "a", "a:1", 9.0).tick()  # a leads; b never will
    leadership = Leadership(lease, "b", "b:1", 9.0)
    leadership.tick()
    served: list[bool] = []
    answer = _app(leadership, served).test_client().post("/tasks", json={}, headers={FORWARDED_HEADER: "c"})
    assert answer.status_code == 503 and answer.headers["Retry-After"] and served == []
    assert "not the leader" in answer.get_json()["error"]
