"""`orca events` against a local HTTP server that speaks the manager's SSE (pure client side;
tests/integration/test_events_stream.py has the real manager)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from click.testing import CliRunner

from cli.events import one_line, parse_sse
from main import cli


def event(index: int, topic: str = "task", kind: str = "state", **data) -> dict:
    return {"index": index, "topic": topic, "kind": kind, "time": "2026-12-01T16:00:00.000Z", "data": data}


def sse(e: dict) -> str:
    return f"id: {e['index']}\nevent: {e['topic']}\ndata: {json.dumps(e)}\n\n"


def test_parse_sse_skips_comments_and_reads_multi_line_data():
    lines = ["retry: 2000", ": hello", "", "id: 1", "event: task", 'data: {"a":', 'data: 1}', "", ": heartbeat", ""]
    assert list(parse_sse(lines)) == [{"event": "task", "id": "1", "data": {"a": 1}}]


def test_one_line_names_the_task_state_attempt_and_node():
    line = one_line(event(7, id="6f1c1f55-aaaa", name="web", state="running", attempt=2, node="w1"))
    assert line == "#7 2026-12-01T16:00:00.000Z task state 6f1c1f55 web running attempt 2 on w1"
    assert one_line(event(8, "node", "down", name="w1", status="down")).endswith("node down w1 down")


class Manager:
    """Serves GET /events: the first connection sends two events then breaks; the next ones
    answer from ?since; ?since=0 after `gone_at` answers 410."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.events = [event(n, id=f"task-{n}", name="t", state="running", attempt=1, node=None) for n in range(1, 5)]
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                owner.requests.append(query)
                since = int(query.get("since", 0))
                if since == 99:
                    body = json.dumps({"error": "events after 99 are gone; the oldest kept is 5", "oldest": 5,
                                       "last": 9}).encode()
                    self.send_response(410)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                first = len(owner.requests) == 1
                for e in owner.events[since:since + 2] if first else owner.events[since:]:
                    self.wfile.write(sse(e).encode())
                self.wfile.flush()
                if not first:
                    self.wfile.write(b"event: gone\ndata: {\"error\": \"fell behind\"}\n\n")

        return Handler


@pytest.fixture
def fake_manager():
    manager = Manager()
    yield manager
    manager.server.shutdown()


def test_events_resume_after_a_break_from_the_last_index(fake_manager, monkeypatch):
    monkeypatch.setattr("cli.events.RETRY_WAIT", 0.0)
    result = CliRunner().invoke(cli, ["events", "--manager", fake_manager.url, "--topic", "task", "--since", "0"])
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["#1", "#2", "#3", "#4"]
    assert [r.get("since") for r in fake_manager.requests] == ["0", "2"]
    assert fake_manager.requests[0]["topic"] == "task"
    assert result.exit_code == 1 and "orca: fell behind" in result.output


def test_events_that_are_gone_fail_in_one_line(fake_manager):
    result = CliRunner().invoke(cli, ["events", "--manager", fake_manager.url, "--since", "99", "--json"])
    assert result.exit_code == 1
    assert result.output.strip() == "orca: rejected by the manager: events after 99 are gone; the oldest kept is 5"
