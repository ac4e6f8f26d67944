"""Fencing at workers: the term rule (task/wire.py) and its HTTP face (worker/fence.py)."""
from __future__ import annotations

import pytest
from flask import Flask, jsonify

from task import ValidationError
from task.wire import SEEN_TERM_HEADER, TERM_HEADER, StaleTerm, TermFence, parse_term
from worker.fence import install_term_fence


@pytest.mark.parametrize("raw, expected", [(None, None), ("", None), ("0", 0), ("17", 17)])
def test_parse_term(raw, expected):
    assert parse_term(raw) == expected


@pytest.mark.parametrize("raw", ["-1", "1.5", "x", "١٢", str(1 << 63)])
def test_parse_term_refuses_what_is_not_a_term(raw):
    with pytest.raises(ValidationError, match=TERM_HEADER):
        parse_term(raw)


def test_a_command_with_an_older_term_is_refused_naming_both_terms():
    fence = TermFence()
    fence.admit(None, command=True)  # a lone manager: no term, nothing seen yet
    fence.admit(3, command=True)
    fence.admit(3, command=True)
    fence.admit(2, command=False)  # a read is never refused
    with pytest.raises(StaleTerm, match="term 2, older than term 3"):
        fence.admit(2, command=True)
    with pytest.raises(StaleTerm, match="no term, older than term 3"):
        fence.admit(None, command=True)
    fence.admit(5, command=False)  # a newer leader's poll raises the bar
    with pytest.raises(StaleTerm):
        fence.admit(4, command=True)
    assert fence.seen == 5


def _app():
    app = Flask("fenced")
    fence = install_term_fence(app)

    @app.route("/tasks", methods=["GET", "POST"])
    def tasks():
        return jsonify(ok=True)
    return app, fence


def test_the_worker_answers_409_with_the_newest_term_and_serves_reads():
    app, fence = _app()
    client = app.test_client()
    assert client.post("/tasks", headers={TERM_HEADER: "4"}).status_code == 200
    refused = client.post("/tasks", headers={TERM_HEADER: "3"})
    assert refused.status_code == 409
    assert refused.headers[SEEN_TERM_HEADER] == "4"
    assert "term 3" in refused.get_json()["error"] and "term 4" in refused.get_json()["error"]
    assert client.get("/tasks", headers={TERM_HEADER: "3"}).status_code == 200
    assert client.post("/tasks", headers={TERM_HEADER: "junk"}).status_code == 400
    assert fence.seen == 4
