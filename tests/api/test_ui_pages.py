"""The dashboard's pages, login and actions (Flask test client, fake workers). The browser
tests (tests/integration/test_dashboard.py) drive the same pages in chromium."""
from __future__ import annotations

import re

import pytest

from common.http import SESSION_COOKIE, _digest, require_token, session_value
from manager.api import create_app
from tests.api.conftest import WORKERS

TOKEN = "ui-test-token-" + "x7" * 10
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def app(manager):
    return create_app(manager)


@pytest.fixture
def client(app):
    return app.test_client()


def submit(client, **headers) -> str:
    response = client.post("/tasks", json={"task": {"image": "busybox", "command": ["sleep", "9"]}}, headers=headers)
    assert response.status_code == 201, response.data
    return response.get_json()["id"]


def page(client, path: str) -> str:
    response = client.get(path, headers=HTML)
    assert response.status_code == 200, (path, response.status_code, response.data[:300])
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def row_state(html: str, task_id: str) -> str:
    match = re.search(rf'data-task-id="{task_id}"[^>]*>.*?data-field="state">(\w+)<', html, re.S)
    assert match, task_id
    return match.group(1)


def test_pages_show_the_managers_tasks_nodes_and_counts(manager, client):
    manager.sync_nodes()
    first, second = submit(client), submit(client)
    manager.dispatch_pending()
    overview = page(client, "/ui")
    assert re.search(r'data-count="scheduled">2<', overview) and re.search(r'data-count="total">2<', overview)
    assert f'data-since="{manager.events.last}"' in overview
    tasks = page(client, "/ui/tasks")
    assert row_state(tasks, first) == row_state(tasks, second) == "scheduled"
    assert row_state(page(client, f"/ui/tasks/{first}"), first) == "scheduled"
    nodes = page(client, "/ui/nodes")
    assert all(f'data-node="{name}"' in nodes for name in WORKERS)
    assert first in page(client, f"/ui/nodes/{manager.get(first).node}")
    assert "no services" in page(client, "/ui/services")


def test_the_tasks_page_filters_and_pages(manager, client):
    ids = [submit(client) for _ in range(3)]
    assert f'data-task-id="{ids[0]}"' not in page(client, "/ui/tasks?state=running")
    pending = page(client, "/ui/tasks?state=pending")
    assert all(f'data-task-id="{i}"' in pending for i in ids)
    bad = client.get("/ui/tasks?state=sleeping", headers=HTML)
    assert bad.status_code == 400 and b"state must be one of" in bad.data


def test_unknown_things_are_json_404s(client):
    for path in ("/ui/tasks/nope", "/ui/nodes/nope", "/ui/services/nope", "/ui/nowhere"):
        response = client.get(path, headers=HTML)
        assert response.status_code == 404 and response.is_json, path


def test_root_redirects_a_browser_and_the_favicon_is_served(client):
    browser = client.get("/", headers=HTML)
    assert browser.status_code == 302 and browser.headers["Location"] == "/ui"
    api_client = client.get("/")
    assert api_client.status_code == 404 and api_client.get_json() == {"error": "no route /"}
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert client.get("/ui/static/orca.js").status_code == 200


def test_stop_needs_the_same_site_and_stops(manager, client):
    task_id = submit(client)
    foreign = client.post(f"/ui/tasks/{task_id}/stop", headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and manager.get(task_id).desired_state == "running"
    cross = client.post(f"/ui/tasks/{task_id}/stop", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    done = client.post(f"/ui/tasks/{task_id}/stop", headers={"Origin": "http://localhost"})
    assert done.status_code == 303 and done.headers["Location"] == f"/ui/tasks/{task_id}"
    assert manager.get(task_id).state.value == "completed"  # never placed: completed at once
    again = client.post(f"/ui/tasks/{task_id}/stop")
    assert again.status_code == 409 and "already completed" in again.get_json()["error"]


@pytest.fixture
def secured(app):
    require_token(app, TOKEN)
    return app.test_client()


def test_with_a_token_a_browser_logs_in_once_and_keeps_a_session_cookie(manager, secured):
    to_login = secured.get("/ui/tasks", headers=HTML)
    assert to_login.status_code == 303 and to_login.headers["Location"] == "/ui/login?next=/ui/tasks"
    assert secured.get("/ui/login").status_code == 200
    wrong = secured.post("/ui/login", data={"token": TOKEN + "x", "next": "/ui/tasks"})
    assert wrong.status_code == 401 and SESSION_COOKIE not in wrong.headers.get("Set-Cookie", "")
    logged = secured.post("/ui/login", data={"token": TOKEN, "next": "/ui/tasks"})
    assert logged.status_code == 303 and logged.headers["Location"] == "/ui/tasks"
    cookie = logged.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie and "Max-Age" not in cookie
    assert secured.get("/ui/tasks", headers=HTML).status_code == 200
    assert secured.get("/events", buffered=False).status_code == 200  # the browser's stream: a read
    task_id = submit(secured, Authorization=f"Bearer {TOKEN}")
    assert secured.delete(f"/tasks/{task_id}").status_code == 401  # API writes still need the bearer token
    assert secured.post(f"/ui/tasks/{task_id}/stop").status_code == 303  # the dashboard's own action
    assert secured.post("/ui/logout").status_code == 303
    assert secured.get("/ui", headers=HTML).status_code == 303


def test_a_forged_or_old_session_cookie_is_refused(secured):
    expected = _digest(TOKEN)
    for value in ("1.abc", session_value(_digest("another token"), 2_000_000_000), session_value(expected, 1000),
                  "", "x" * 3000):
        secured.set_cookie(SESSION_COOKIE, value)
        assert secured.get("/ui", headers=HTML).status_code == 303, value[:40]
        assert secured.get("/tasks").status_code == 401


def test_the_login_goes_on_only_to_dashboard_paths(secured):
    for target in ("https://evil.example/", "//evil.example", "/tasks", "/ui\\..\\x"):
        response = secured.post("/ui/login", data={"token": TOKEN, "next": target})
        assert response.headers["Location"] == "/ui", target


def test_a_node_is_drained_and_made_eligible_from_its_page(manager, client):
    manager.sync_nodes()
    name = WORKERS[0]
    assert 'id="drain"' in page(client, f"/ui/nodes/{name}")
    ineligible = client.post(f"/ui/nodes/{name}/eligibility", data={"eligible": "no"})
    assert ineligible.status_code == 303 and manager.nodes()[0].eligible is False
    assert client.post(f"/ui/nodes/{name}/eligibility", data={"eligible": "yes"}).status_code == 303
    assert manager.nodes()[0].eligible is True
    drained = client.post(f"/ui/nodes/{name}/drain")
    assert drained.status_code == 303 and manager.nodes()[0].drain is not None
    assert 'id="cancel-drain"' in page(client, f"/ui/nodes/{name}")
    assert client.post(f"/ui/nodes/{name}/drain", data={"cancel": "yes"}).status_code == 303
    assert manager.nodes()[0].drain is None and manager.nodes()[0].eligible is True
    kinds = [e["kind"] for e in manager.events.since(0, ("node",))[0]]
    assert kinds[-4:] == ["eligibility", "eligibility", "drain", "drain"]
    assert client.post("/ui/nodes/nope/drain").status_code == 404
