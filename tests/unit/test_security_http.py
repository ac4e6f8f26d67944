"""Bearer-token authentication (common.http.require_token) and the 401/403 mapping, on a tiny app."""
import logging

import pytest
from flask import jsonify

from common.http import STATUS_BY_ERROR, Unauthorized, _printable, create_json_app, require_token, status_for
from task.errors import Forbidden

TOKEN = "tok-" + "A1b2" * 8


def make_app(token: str):
    app = create_json_app("auth-test")

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.route("/tasks", methods=["GET", "POST"])
    def tasks():
        return jsonify([])

    @app.get("/forbidden")
    def forbidden():
        raise Forbidden("image 'x' is not allowed")

    require_token(app, token)
    return app


@pytest.fixture
def client():
    return make_app(TOKEN).test_client()


def test_the_right_token_passes(client):
    assert client.get("/tasks", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/tasks", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"Token {TOKEN}", TOKEN, f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN.upper()}", "Bearer \u00e9\u00e8", f"Bearer {TOKEN} extra",
    f"Bearer{TOKEN}",
])
@pytest.mark.parametrize(("method", "path"), [("GET", "/tasks"), ("POST", "/tasks"), ("GET", "/nowhere"),
                                              ("PUT", "/tasks"), ("POST", "/health"), ("GET", "/forbidden")])
def test_anything_else_is_401_json_without_the_token(client, header, method, path):
    headers = {} if header is None else {"Authorization": header.encode("utf-8").decode("latin-1")}
    response = client.open(path, method=method, headers=headers, json={"task": {"image": "x"}})
    assert response.status_code == 401
    assert response.get_json() == {"error": "missing or invalid bearer token"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert TOKEN not in response.get_data(as_text=True)


def test_a_token_in_the_query_string_is_not_accepted(client):
    assert client.get(f"/tasks?token={TOKEN}&access_token={TOKEN}").status_code == 401


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_health_is_open(client, method):
    assert client.open("/health", method=method).status_code == 200
    assert client.open("/health/", method=method).status_code == 200


def test_without_a_token_everything_is_open():
    client = make_app("").test_client()
    assert client.get("/tasks").status_code == 200
    assert client.get("/nowhere").status_code == 404


def test_the_token_never_reaches_the_log(client, caplog):
    with caplog.at_level(logging.DEBUG):
        client.get("/tasks", headers={"Authorization": f"Bearer {TOKEN}x"})
        client.get("/tasks", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "401" in caplog.text
    assert TOKEN not in caplog.text


def test_forbidden_is_403_and_unauthorized_401():
    assert status_for(Forbidden("x")) == 403
    assert status_for(Unauthorized("x")) == 401
    assert (Forbidden, 403) in STATUS_BY_ERROR
    response = make_app("").test_client().get("/forbidden")
    assert response.status_code == 403 and response.get_json() == {"error": "image 'x' is not allowed"}


@pytest.mark.parametrize(("text", "logged"), [
    ("/tasks/abc", "/tasks/abc"),
    ("/tasks/a\nFAKE LOG LINE", "/tasks/a\\nFAKE LOG LINE"),
    ("unknown field task.\x1b[31mred", "unknown field task.\\x1b[31mred"),
    ("x" * 500, "x" * 200),
])
def test_log_lines_escape_control_characters_and_stay_short(text, logged):
    assert _printable(text) == logged
