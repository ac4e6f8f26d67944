"""The command line's client and commands (cli.client, cli.commands) against a scripted local HTTP server.

The real manager is exercised in tests/integration/test_cli.py; here a stand-in on a loopback
port answers exactly what each test scripts, to pin down error mapping, headers and streaming.
"""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

import main
from cli.client import (
    ClientError, LogsUnsupported, ManagerClient, ManagerRejected, ManagerUnreachable, UnknownTask, default_url,
    normalize_url,
)
from cli.wait import exit_status

TASK_ID = "3f2a9c1e-0000-4000-8000-000000000001"
OTHER_ID = "3f2b0000-0000-4000-8000-000000000002"


class Stream(list):
    """A body sent chunk by chunk (chunked transfer encoding)."""


class FakeManager:
    """A loopback HTTP server answering scripted routes: {(method, path): (status, body)}; a
    route whose path has a query string wins over the same path without one.

    A Stream body is sent chunk by chunk, bytes as they are, anything else as JSON. Every
    request's method, path, headers and body are recorded.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, object]] = {}
        self.requests: list[tuple[str, str, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                path = self.path.split("?", 1)[0]
                status, payload = fake.routes.get((self.command, self.path)) or fake.routes.get(
                    (self.command, path), (404, {"error": f"no route {path}"}))
                self.send_response(status)
                if isinstance(payload, Stream):
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in payload:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_header("Content-Type", "text/plain" if isinstance(payload, bytes) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_dotenv(tmp_path, monkeypatch):
    """Commands load ./.env into the environment: run them where there is none."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake():
    server = FakeManager()
    yield server
    server.close()


@pytest.fixture
def closed_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def invoke(fake_or_url, *args: str, **env: str):
    url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.url
    return CliRunner().invoke(main.cli, list(args), env={"ORCA_MANAGER_URL": url, "ORCA_TOKEN": None, **env},
                              catch_exceptions=False)


# ----- the client

@pytest.mark.parametrize("raw, url", [("127.0.0.1:5555", "http://127.0.0.1:5555"),
                                      ("http://h:1/", "http://h:1"), (" https://h ", "https://h")])
def test_urls_get_a_scheme_and_lose_the_trailing_slash(raw, url):
    assert normalize_url(raw) == url


@pytest.mark.parametrize("env, url", [
    ({}, "http://127.0.0.1:5555"),
    ({"ORCA_MANAGER_URL": "10.0.0.5:80/"}, "http://10.0.0.5:80"),
    ({"ORCA_MANAGER_PORT": "6000"}, "http://127.0.0.1:6000"),
    ({"ORCA_MANAGER_HOST": "0.0.0.0", "ORCA_MANAGER_PORT": "6000"}, "http://127.0.0.1:6000"),
    ({"ORCA_MANAGER_HOST": "::1"}, "http://[::1]:5555"),
    ({"ORCA_MANAGER_URL": "http://a:1", "ORCA_MANAGER_PORT": "6000"}, "http://a:1"),
])
def test_default_url_prefers_orca_manager_url_then_the_managers_listen_address(env, url):
    assert default_url(env) == url


def test_the_token_is_sent_as_a_bearer_and_proxies_are_ignored(fake, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a closed port: using it would fail
    monkeypatch.setenv("NO_PROXY", "")
    fake.routes[("GET", "/nodes")] = (200, [])
    assert ManagerClient(fake.url, token="s3cret").nodes() == []
    assert ManagerClient(fake.url).nodes() == []
    assert fake.requests[0][2]["Authorization"] == "Bearer s3cret"
    assert "Authorization" not in fake.requests[1][2]


def test_an_unreachable_manager_is_named_with_a_short_reason(closed_url):
    with pytest.raises(ManagerUnreachable) as caught:
        ManagerClient(closed_url).tasks()
    assert str(caught.value) == f"cannot reach the manager at {closed_url}: connection refused"


@pytest.mark.parametrize("body", [b"<html>hello</html>", {"tasks": []}, [1, 2], [{"no": "id"}]])
def test_an_answer_that_is_not_the_apis_json_is_not_taken_for_a_manager(fake, body):
    fake.routes[("GET", "/tasks")] = (200, body)
    fake.routes[("POST", "/tasks")] = (201, body)
    with pytest.raises(ManagerUnreachable, match="not the manager API's JSON: is it an Orca manager"):
        ManagerClient(fake.url).tasks()
    with pytest.raises(ManagerUnreachable, match="is it an Orca manager"):
        ManagerClient(fake.url).submit({"task": {"image": "x"}})


@pytest.mark.parametrize("status, body, message", [
    (400, {"error": "task.cpu must be a number of cores"}, "rejected by the manager: task.cpu must be a number of cores"),
    (409, {"error": "task x is already completed"}, "rejected by the manager: task x is already completed"),
    (503, {"error": "manager is shutting down"}, "the manager is unavailable: manager is shutting down"),
    (500, b"boom", "the manager failed (HTTP 500): HTTP 500 Internal Server Error"),
])
def test_error_answers_carry_the_managers_message(fake, status, body, message):
    fake.routes[("POST", "/tasks")] = (status, body)
    with pytest.raises(ManagerRejected) as caught:
        ManagerClient(fake.url).submit({"task": {"image": "x"}})
    assert (caught.value.status, str(caught.value)) == (status, message)


def test_a_404_for_a_task_is_an_unknown_task_and_a_missing_route_is_not(fake):
    fake.routes[("GET", f"/tasks/{TASK_ID}")] = (404, {"error": f"task {TASK_ID} not found"})
    client = ManagerClient(fake.url)
    with pytest.raises(UnknownTask, match=f"task {TASK_ID} not found"):
        client.task(TASK_ID)
    with pytest.raises(ManagerRejected, match="no route"):
        client.stop(TASK_ID)


def test_stop_purge_sends_delete_with_purge_and_prints_the_id(fake):
    fake.routes[("DELETE", f"/tasks/{TASK_ID}")] = (200, {"id": TASK_ID, "state": "completed"})
    result = invoke(fake, "stop", "--purge", TASK_ID)
    assert (result.exit_code, result.output) == (0, f"{TASK_ID}\n")
    assert fake.requests[-1][:2] == ("DELETE", f"/tasks/{TASK_ID}?purge=true")


def test_stop_purge_of_a_running_task_prints_the_managers_refusal(fake):
    refusal = f"task {TASK_ID} is running: only a finished task can be purged; stop it first"
    fake.routes[("DELETE", f"/tasks/{TASK_ID}")] = (409, {"error": refusal})
    result = invoke(fake, "stop", "--purge", TASK_ID)
    assert result.exit_code == 1 and "stop it first" in result.output


def test_ids_with_slashes_stay_in_one_path_segment(fake):
    with pytest.raises(ManagerRejected):
        ManagerClient(fake.url).task("../nodes")
    assert fake.requests[0][1] == "/tasks/..%2Fnodes"


def test_a_prefix_resolves_to_the_one_task_it_starts(fake):
    fake.routes[("GET", "/tasks")] = (200, [{"id": TASK_ID}, {"id": OTHER_ID}])
    client = ManagerClient(fake.url)
    assert client.resolve("3f2a") == TASK_ID
    assert client.resolve(OTHER_ID) == OTHER_ID  # a whole id goes to the manager as it is
    with pytest.raises(ClientError, match="start of 2 task ids"):
        client.resolve("3f2")
    with pytest.raises(UnknownTask, match="task ffff not found"):
        client.resolve("ffff")


def test_logs_stream_chunks_with_tail_and_follow(fake):
    fake.routes[("GET", f"/tasks/{TASK_ID}/logs")] = (200, Stream([b"one\n", b"two\n"]))
    assert b"".join(ManagerClient(fake.url).logs(TASK_ID, tail=5, follow=True)) == b"one\ntwo\n"
    assert fake.requests[0][1] == f"/tasks/{TASK_ID}/logs?tail=5&follow=true"


def test_logs_without_the_route_say_so(fake):
    with pytest.raises(LogsUnsupported, match=f"the manager at {fake.url} does not support logs yet"):
        list(ManagerClient(fake.url).logs(TASK_ID))


# ----- the commands, in process

@pytest.mark.parametrize("code, default, status", [(None, 0, 0), (None, 1, 1), (0, 1, 0), (3, 0, 3), (137, 0, 137),
                                                   (256, 0, 1), (-1, 0, 1), (True, 0, 0)])
def test_exit_status_follows_the_task_exit_code_when_it_fits(code, default, status):
    assert exit_status(code, default) == status


def test_every_command_reports_an_unreachable_manager_in_one_line(closed_url):
    for args in (["status"], ["status", TASK_ID], ["nodes"], ["stop", TASK_ID], ["logs", TASK_ID],
                 ["run", "--image", "x"]):
        result = invoke(closed_url, *args)
        assert (result.exit_code, result.output) == (1, f"orca: cannot reach the manager at {closed_url}: "
                                                        "connection refused\n"), args


def test_manager_flag_wins_over_the_environment(fake, closed_url):
    fake.routes[("GET", "/tasks")] = (200, [])
    result = invoke(closed_url, "status", "--manager", fake.url)
    assert (result.exit_code, result.output) == (0, "no tasks\n")


def test_orca_token_is_sent(fake):
    fake.routes[("GET", "/nodes")] = (200, [])
    assert invoke(fake, "nodes", ORCA_TOKEN="t0ken").exit_code == 0
    assert fake.requests[0][2]["Authorization"] == "Bearer t0ken"


def test_run_posts_the_event_and_prints_only_the_id(fake):
    fake.routes[("POST", "/tasks")] = (201, {"id": TASK_ID, "state": "pending"})
    result = invoke(fake, "run", "--image", "busybox", "-e", "A=1", "-m", "64m", "sh", "-c", "exit 3")
    assert (result.exit_code, result.output) == (0, f"{TASK_ID}\n")
    assert json.loads(fake.requests[0][3]) == {"task": {"image": "busybox", "memory": "64m", "env": {"A": "1"},
                                                        "command": ["sh", "-c", "exit 3"]}}


def test_run_without_an_image_says_what_to_give(fake):
    result = invoke(fake, "run", "--name", "x")
    assert (result.exit_code, result.output) == (1, "orca: give an image: orca run IMAGE [COMMAND...], "
                                                    "--image IMAGE, or a task file with -f FILE\n")
    assert fake.requests == []


@pytest.mark.parametrize("args, task", [
    (["busybox", "sh", "-c", "echo hi"], {"image": "busybox", "command": ["sh", "-c", "echo hi"]}),
    (["-e", "A=1", "busybox", "sh", "-e", "x"], {"image": "busybox", "env": {"A": "1"}, "command": ["sh", "-e", "x"]}),
    (["busybox", "--", "ls", "-l"], {"image": "busybox", "command": ["ls", "-l"]}),
    (["registry.example:5000/team/app:v1"], {"image": "registry.example:5000/team/app:v1"}),
    (["--image", "busybox", "--", "sh", "-c", "echo hi"], {"image": "busybox", "command": ["sh", "-c", "echo hi"]}),
    (["--image", "busybox", "echo", "hi"], {"image": "busybox", "command": ["echo", "hi"]}),
])
def test_run_takes_the_image_as_its_first_argument_like_docker_run(fake, args, task):
    fake.routes[("POST", "/tasks")] = (201, {"id": TASK_ID, "state": "pending"})
    result = invoke(fake, "run", *args)
    assert (result.exit_code, result.output) == (0, f"{TASK_ID}\n"), result.output
    assert json.loads(fake.requests[0][3]) == {"task": task}


def logs_route(stream: str) -> tuple[str, str]:
    return ("GET", f"/tasks/{TASK_ID}/logs?follow=true&stream={stream}")


def test_run_wait_streams_stdout_and_stderr_apart_then_exits_with_the_task_exit_code(fake):
    fake.routes[("POST", "/tasks")] = (201, {"id": TASK_ID, "state": "pending"})
    fake.routes[("GET", f"/tasks/{TASK_ID}")] = (200, {"id": TASK_ID, "state": "failed", "exit_code": 7,
                                                      "error": "exited with code 7", "node": "n1"})
    fake.routes[logs_route("stdout")] = (200, Stream([b"out one\n", b"out two\n"]))
    fake.routes[logs_route("stderr")] = (200, Stream([b"err one\n"]))
    result = CliRunner().invoke(main.cli, ["run", "--wait", "--manager", fake.url, "x"])
    assert result.exit_code == 7
    assert result.stdout == f"{TASK_ID}\nout one\nout two\n"
    err_lines = result.stderr.splitlines()
    assert err_lines[0] == "err one" and len(err_lines) == 2, result.stderr
    assert err_lines[1].startswith("orca: task 3f2a9c1e failed after ") and "exited with code 7" in err_lines[1]


def test_run_wait_without_a_logs_route_still_waits_and_says_why_there_is_no_output(fake):
    fake.routes[("POST", "/tasks")] = (201, {"id": TASK_ID, "state": "pending"})
    fake.routes[("GET", f"/tasks/{TASK_ID}")] = (200, {"id": TASK_ID, "state": "completed", "exit_code": 0})
    result = CliRunner().invoke(main.cli, ["run", "--wait", "--image", "x", "--manager", fake.url])
    assert (result.exit_code, result.stdout) == (0, f"{TASK_ID}\n")
    warning, summary = result.stderr.splitlines()
    assert warning == f"orca: the task's output could not be shown: the manager at {fake.url} does not support logs yet"
    assert summary.startswith("task 3f2a9c1e completed after ") and summary.endswith("exit code 0")


def test_logs_follow_writes_the_stream_to_stdout(fake):
    fake.routes[("GET", f"/tasks/{TASK_ID}")] = (200, {"id": TASK_ID, "state": "running"})
    fake.routes[("GET", f"/tasks/{TASK_ID}/logs")] = (200, Stream([b"hello\n", b"world\n"]))
    result = invoke(fake, "logs", TASK_ID, "-f", "--tail", "2")
    assert (result.exit_code, result.output) == (0, "hello\nworld\n")


def test_logs_against_a_manager_without_the_route_fail_in_one_line(fake):
    fake.routes[("GET", f"/tasks/{TASK_ID}")] = (200, {"id": TASK_ID, "state": "running"})
    result = invoke(fake, "logs", TASK_ID)
    assert (result.exit_code, result.output) == (1, f"orca: the manager at {fake.url} does not support logs yet\n")
