"""Hostile input to every route of the manager and worker apps (Flask test clients, fakes).

Hypothesis throws random and adversarial requests at each app — wrong types, huge numbers,
deep nesting, unicode, control characters, broken encodings, path tricks in ids, odd methods,
query strings and content types — and checks what must hold whatever comes in:

- no 5xx; every error is JSON with an "error" message;
- a rejected request leaves the tasks as they were;
- the periodic passes keep working: a valid task still goes through afterwards.

Routes are read from each app's url_map, so a route added later is attacked too. The
integration twin (tests/integration/test_security.py) does the same over HTTP against real
processes.
"""
from __future__ import annotations

import json
import re
import urllib.parse
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.http import MAX_BODY, require_token
from manager.api import create_app as create_manager_app
from task.model import SPEC_FIELDS
from task.validation import REFUSED_FIELDS
from tests.api.conftest import STATS
from worker.api import create_app as create_worker_app

ALLOWED_IMAGES = ("orca-test-*", "busybox*")
TOKEN = "hostile-test-token-" + "Zz9" * 8
EXAMPLES = 400
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "CONNECT")
CONTENT_TYPES = (None, "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16",
                 "application/vnd.orca+json", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=xyz", "application/json;;;charset=\"x", "")
FIELD_NAMES = (*SPEC_FIELDS, "id", "state", "task", "jsonrpc", "method", "params", "arguments", "resources",
               "job_id", "memory_mb", "cpus", "__proto__", "constructor", "Privileged", "cap-add",
               *sorted(REFUSED_FIELDS))
# Not the integration tests' image: there ORCA_ALLOWED_IMAGES admits only that one, so no
# hostile request starts a real container.
IMAGES = ("busybox", "busybox:1.36", "busybox@sha256:" + "0" * 64, "nginx", "evil/../busybox",
          "registry.local/x", "busybox\nnginx", "", " ", "a" * 600)
PATH_TRICKS = ("..", "../..", "%2e%2e", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2f..%2f", "%252e%252e", "%00",
               "a%00b", "%0a%0dSet-Cookie:x=1", "%ff%fe", "%c0%ae%c0%ae", "%e2%80%ae", "%20", ";", "a;b=c",
               "x" * 10_000, "%41" * 3000, "00000000-0000-0000-0000-000000000000",
               "{6f1c1f55-3a7e-4a55-9d64-0a4f2f8b8b01}", "urn:uuid:6f1c1f55-3a7e-4a55-9d64-0a4f2f8b8b01",
               "6F1C1F55-3A7E-4A55-9D64-0A4F2F8B8B01", "6f1c1f553a7e4a559d640a4f2f8b8b01", "-1", "0", "null",
               "tasks", "%2Ftasks", "*", "%", "%zz")
EXTRA_PATHS = ("/", "//tasks", "/TASKS", "/tasks/", "/tasks//", "/tasks/x/y", "/tasks/%2F..%2F", "/./tasks",
               "/tasks/../nodes", "/jrpc/", "/nodes/x", "/stats/x", "/health/x", "/%00", "/" + "a" * 5000,
               "/tasks/" + "é" * 100, "/static/../../etc/passwd", "/static/x")
ADVERSARIAL_BODIES = (
    b"", b"null", b"true", b"0", b"[]", b"{}", b'""', b"[" * 100_000, b'{"a":' * 50_000,
    b'{"task": ' * 20_000 + b"{}" + b"}" * 20_000, b"1" * 5000, b"-" + b"9" * 4400, b"1e999", b"-1e999",
    b"NaN", b"Infinity", b"-Infinity", b'{"task": {"image": "busybox", "cpu": NaN}}',
    b'{"task": {"image": "busybox", "cpu": Infinity}}', b'{"task": {"image": "busybox", "cpu": 1e999}}',
    b'{"task": {"image": "busybox", "memory": 1' + b"0" * 400 + b"}}",
    b'{"task": {"image": "busybox", "max_restarts": 1' + b"0" * 5000 + b"}}",
    b'{"task": {"image": "\\ud800"}}', b'{"task": {"image": "busybox", "name": "\\u0000"}}',
    b'{"task": {"image": "busybox", "env": {"\\u0000": "x"}}}',
    b'{"task": {"image": "busybox", "env": {"A": "\\ud800\\udfff\\u202e"}}}',
    b'{"task": {"image": "busybox", "command": ["\\u0000"]}}', b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00",
    b'{"task": {"image": "busybox"}, "task": {"image": "nginx"}}',
    b'{"task": {"image": "busybox", "env": {"A": "' + b"x" * 70_000 + b'"}}}',
    b'{"task": {"image": "busybox", "command": [' + b'"a",' * 2000 + b'"a"]}}',
    b'{"task": {"image": "busybox", "ports": {' + b",".join(b'"%d/tcp": null' % p for p in range(1, 300)) + b"}}}",
    b'{"task": {"image": "busybox", "privileged": true}}', b'{"task": {"image": "busybox", "CapAdd": ["ALL"]}}',
    b'{"task": {"image": "busybox", "volumes": {"/": {"bind": "/host"}}}}',
    b'{"task": {"image": "nginx"}}', b'{"state": "completed", "task": {"id": "../../etc"}}',
    b'{"jsonrpc": "2.0", "method": "ContainerService.Create", "params": [{"image": "nginx"}], "id": 1}',
    b'{"jsonrpc": "2.0", "method": "ContainerService.Create", "params": {"image": "busybox", "env": {"A": []}}}',
    b'[' + b'{"jsonrpc": "2.0", "method": "x", "id": 1},' * 150 + b"1]",
    b"x" * (MAX_BODY + 1), b'{"task": {"image": "busybox", "name": "' + b"n" * (MAX_BODY + 10) + b'"}}',
)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # URL-encodable text
raw_text = st.text(max_size=30)  # lone surrogates too: JSON can carry them as \ud800
huge_ints = st.sampled_from([2**31, 2**63, -(2**63) - 1, 2**64, 10**100, -(10**300), 10**4000])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), huge_ints, st.floats(), raw_text,
                    st.sampled_from(["", "\x00", "\n", "\u202e", "../..", "64m", "-1", "1e999", "NaN", "running",
                                     "completed", "host", "/", "%s%n", "${HOME}", "' OR 1=1 --"]))
keys = st.one_of(raw_text, st.sampled_from(FIELD_NAMES))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(keys, inner, max_size=4)),
                           max_leaves=20)
ids = st.one_of(st.uuids().map(str), scalars)
tasks = st.fixed_dictionaries(
    {"image": st.one_of(st.sampled_from(IMAGES), json_values)},
    optional={name: json_values for name in (*SPEC_FIELDS, "privileged", "network_mode", "cap_add", "user")
              if name != "image"},
)
events = st.fixed_dictionaries({"task": st.one_of(tasks, json_values)},
                               optional={"id": ids, "state": st.one_of(st.sampled_from(["running", "completed",
                                                                                          "failed", "RUNNING"]),
                                                                         json_values)})
create_params = st.fixed_dictionaries({}, optional={"image": st.one_of(st.sampled_from(IMAGES), json_values),
                                                    "arguments": json_values, "resources": json_values,
                                                    "env": json_values, "job_id": ids})
rpc_calls = st.fixed_dictionaries(
    {"jsonrpc": st.one_of(st.just("2.0"), json_values),
     "method": st.one_of(st.sampled_from(["ContainerService.Create", "ContainerService.Status"]), raw_text)},
    optional={"id": json_values, "params": st.one_of(create_params, st.lists(create_params, max_size=2), json_values)},
)
documents = st.one_of(json_values, events, rpc_calls, st.lists(rpc_calls, min_size=1, max_size=4))


def encode(document, style: str) -> bytes:
    """JSON text of `document`: plain (NaN/Infinity as bare words), raw unicode, or UTF-16."""
    if style == "utf-16":
        return json.dumps(document).encode("utf-16")
    if style == "unicode":  # lone surrogates become invalid UTF-8
        return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(document).encode()


styles = st.sampled_from(["plain", "plain", "unicode", "utf-16"])
bodies = st.one_of(st.builds(encode, documents, styles), st.sampled_from(ADVERSARIAL_BODIES), st.binary(max_size=100))


def bodies_for(path: str):
    """Bodies shaped for the route most of the time, so validation is attacked in depth."""
    shaped = rpc_calls | st.lists(rpc_calls, min_size=1, max_size=4) if path.startswith("/jrpc") else events
    return st.one_of(st.builds(encode, shaped, st.just("plain")), st.builds(encode, shaped, st.just("plain")),
                     st.builds(encode, shaped, styles), bodies)
query_values = st.one_of(text, st.sampled_from(["-1", "0", "1", "1e999", "nan", "inf", "-inf", "0x10",
                                               "9" * 40, "", "0.01", "31", "-0.5", "1_000"]))
queries = st.dictionaries(st.one_of(st.sampled_from(["since", "wait", "timeout", "follow", "tail", "state"]), text),
                          query_values, max_size=3)
LONG_POLLS = ("wait", "timeout")  # valid values block by design


def path_ids():
    return st.one_of(st.uuids().map(str), st.sampled_from(PATH_TRICKS),
                     text.map(lambda t: urllib.parse.quote(t, safe="")))


def fill(rule: str, draw) -> str:
    """The rule's path with each <arg> replaced by a drawn id."""
    return re.sub(r"<(?:[^<>:]+:)?[^<>]+>", lambda _: draw(path_ids()), rule)


def routes_of(app) -> list[tuple[str, frozenset[str]]]:
    """(rule, methods) of every route of a Flask app, in a stable order."""
    return sorted(((rule.rule, frozenset(rule.methods)) for rule in app.url_map.iter_rules()),
                  key=lambda route: (route[0], sorted(route[1])))


@st.composite
def hostile_requests(draw, routes):
    """(method, path, query, body, headers) aimed mostly at `routes` (see routes_of)."""
    writes = [route for route in routes if "POST" in route[1]]  # where bodies are parsed: aim there more
    rule, rule_methods = draw(st.sampled_from(routes + writes * 2))
    where = draw(st.integers(0, 9))
    if where < 8:
        path = fill(rule, draw)
    elif where == 8:
        path = draw(st.sampled_from(EXTRA_PATHS))
    else:
        path = "/" + urllib.parse.quote(draw(text), safe="/%")
    methods = sorted(rule_methods - {"HEAD", "OPTIONS"})
    method = draw(st.one_of(st.sampled_from(methods), st.sampled_from(methods), st.sampled_from(METHODS)))
    query = draw(queries)
    for name in LONG_POLLS:
        if name in query and _valid_long_wait(query[name]):
            query[name] = "0"  # keep the run fast
    headers = {}
    content_type = draw(st.one_of(st.just("application/json"), st.sampled_from(CONTENT_TYPES)))
    if content_type is not None:
        headers["Content-Type"] = content_type
    return method, path, query, draw(bodies_for(path)), headers


def _valid_long_wait(raw: str) -> bool:
    try:
        return float(raw) > 0.05
    except ValueError:
        return False


def send(client, method, path, query, body, headers):
    return client.open(path, method=method, query_string=query, data=body, headers=headers)


def is_dashboard(path: str) -> bool:
    """The dashboard's paths (manager/ui): HTML pages and redirects by design, not the JSON API."""
    return path == "/" or path.startswith(("/ui/", "/favicon.ico")) or path == "/ui"


def check_answer(response, method: str, path: str) -> None:
    """No 5xx; an error is JSON with an "error" message (a string, or JSON-RPC's {"message"}).
    An event stream (GET /events) never ends by itself: it is closed, which frees its slot.
    The dashboard's pages answer HTML (a login form, a redirect after an action): no 5xx only."""
    if is_dashboard(path):
        assert response.status_code < 500, f"{method} {path[:120]!r} -> {response.status_code}"
        return
    if response.mimetype == "text/event-stream":
        response.close()
        assert response.status_code == 200, f"{method} {path[:120]!r} -> {response.status_code}"
        return
    where = f"{method} {path[:120]!r} -> {response.status_code}: {response.data[:300]!r}"
    assert response.status_code < 500, where
    if method == "HEAD":
        return
    if response.status_code >= 400:
        assert response.is_json, where
        error = json.loads(response.data)["error"]
        assert (isinstance(error, str) and error) or isinstance(error.get("message"), str), where
    else:
        assert not 300 <= response.status_code < 400, where  # a redirect would be an HTML page
        if response.is_json:
            json.loads(response.data)


def rejected(response) -> bool:
    """True when the request was refused: a 4xx, or JSON-RPC answers that are all errors."""
    if response.status_code >= 400:
        return True
    if response.request.path != "/jrpc" or response.status_code != 200 or not response.data:
        return False
    answers = json.loads(response.data)
    return all(a.get("error") for a in (answers if isinstance(answers, list) else [answers]))


def valid_task(image: str = "orca-test-busybox:latest") -> dict:
    return {"task": {"image": image, "command": ["sleep", "30"], "env": {"A": "b"}, "memory": "64m"}}


# ----- fixtures: the apps as the services build them (image policy on)


@pytest.fixture
def manager_app(manager):
    return create_manager_app(manager, allowed_images=ALLOWED_IMAGES)


@pytest.fixture
def worker_app(worker):
    return create_worker_app(worker, stats=lambda: dict(STATS), allowed_images=ALLOWED_IMAGES)


def manager_tasks(manager) -> list[dict]:
    return [t.to_dict() for t in manager.list()]


def worker_tasks(worker) -> dict[str, dict]:
    # The worker's pool moves states on its own threads: compare what was asked for.
    return {t.id: t.spec_dict() for t in worker.db.list()}


# ----- the hypothesis runs


def test_hostile_requests_to_the_manager(manager, manager_app, fake_workers):
    client = manager_app.test_client()

    @SETTINGS
    @given(request=hostile_requests(routes_of(manager_app)))
    def attack(request):
        method, path = request[0], request[1]
        before = manager_tasks(manager)
        response = send(client, *request)
        check_answer(response, method, path)
        if rejected(response):
            assert manager_tasks(manager) == before, f"{method} {path[:120]!r} changed the tasks"
        manager.dispatch_pending()
        manager.sync_tasks()
        manager.sync_nodes()

    attack()
    listed = client.get("/tasks")
    assert listed.status_code == 200 and listed.get_json() == manager_tasks(manager)
    created = client.post("/tasks", json=valid_task())
    assert created.status_code == 201, created.data
    assert manager.dispatch_pending() >= 1
    assert manager.get(created.get_json()["id"]).state.value == "scheduled"
    assert fake_workers.sent[-1][1]["task"]["id"] == created.get_json()["id"]


def test_hostile_requests_to_the_worker(worker, worker_app, runtime, wait):
    client = worker_app.test_client()

    @SETTINGS
    @given(request=hostile_requests(routes_of(worker_app)))
    def attack(request):
        method, path = request[0], request[1]
        before = worker_tasks(worker)
        response = send(client, *request)
        check_answer(response, method, path)
        if rejected(response):
            assert worker_tasks(worker) == before, f"{method} {path[:120]!r} changed the tasks"
        worker.run_pending()
        worker.sync_states()

    attack()
    created = client.post("/tasks", json=valid_task())
    assert created.status_code == 201, created.data
    task_id = created.get_json()["id"]
    worker.run_pending()
    wait(lambda: worker.db.get(task_id).state.value == "running")
    assert task_id in runtime.start_calls


@pytest.mark.parametrize("target", ["manager", "worker"])
def test_with_a_token_hostile_credentials_get_401_and_never_see_the_token(target, manager_app, worker_app):
    app = manager_app if target == "manager" else worker_app
    require_token(app, TOKEN)
    client = app.test_client()
    has_health = any(rule.rule == "/health" for rule in app.url_map.iter_rules())
    header_text = text.map(lambda t: t.replace("\r", "").replace("\n", ""))  # no header injection here
    credentials = st.one_of(
        st.none(), header_text, header_text.map(lambda t: f"Bearer {t}"),
        st.sampled_from(["Bearer", "Bearer ", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}0", f"Basic {TOKEN}",
                         f"Bearer {TOKEN.lower()}", f"Bearer\t{TOKEN}x", f"{TOKEN}", f"Bearer {TOKEN} {TOKEN}"]),
    )

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(request=hostile_requests(routes_of(app)), credential=credentials)
    def attack(request, credential):
        method, path, query, body, headers = request
        if credential is not None:
            headers = {**headers, "Authorization": credential.encode("utf-8").decode("latin-1")}
        response = send(client, method, path, query, body, headers)
        check_answer(response, method, path)
        assert TOKEN.encode() not in response.data
        if is_dashboard(path) and target == "manager":  # its own login: a page, a redirect to it, or 401
            assert response.status_code in (200, 303, 401, 403, 404, 405), (method, path, response.status_code)
            if response.status_code == 200 and method != "OPTIONS":
                assert path.startswith(("/ui/login", "/ui/static/", "/favicon.ico")), (method, path)
        elif not (has_health and path in ("/health", "/health/") and method in ("GET", "HEAD", "OPTIONS")):
            assert response.status_code == 401, (method, path, response.status_code)

    attack()
    assert client.get("/tasks", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


# ----- policy refusals change nothing (fixed cases, named)

REFUSALS = [
    ({"task": {"image": "busybox", "privileged": True}}, 400, "task.privileged is not allowed"),
    ({"task": {"image": "busybox", "Binds": ["/:/host"]}}, 400, "task.Binds is not allowed"),
    ({"task": {"image": "busybox", "network_mode": "host"}}, 400, "task.network_mode is not allowed"),
    ({"task": {"image": "busybox", "pid_mode": "host"}}, 400, "task.pid_mode is not allowed"),
    ({"task": {"image": "busybox", "cap_add": ["SYS_ADMIN"]}}, 400, "task.cap_add is not allowed"),
    ({"task": {"image": "busybox", "devices": ["/dev/kmsg"]}}, 400, "task.devices is not allowed"),
    ({"task": {"image": "busybox", "security_opt": ["apparmor=unconfined"]}}, 400, "task.security_opt is not"),
    ({"task": {"image": "nginx"}}, 403, "image 'nginx' is not allowed"),
    ({"task": {"image": "busybox.attacker.example/miner"}}, 403, "is not allowed"),
]


@pytest.mark.parametrize(("body", "status", "message"), REFUSALS)
@pytest.mark.parametrize("target", ["manager", "worker"])
def test_dangerous_fields_and_other_images_are_refused_and_change_nothing(target, manager, worker, manager_app,
                                                                          worker_app, body, status, message):
    app, snapshot = (manager_app, lambda: manager_tasks(manager)) if target == "manager" \
        else (worker_app, lambda: worker_tasks(worker))
    before = snapshot()
    response = app.test_client().post("/tasks", json=body)
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert snapshot() == before


def test_jsonrpc_create_of_another_image_is_invalid_params(manager, manager_app):
    call = {"jsonrpc": "2.0", "method": "ContainerService.Create", "params": [{"image": "nginx"}], "id": 7}
    response = manager_app.test_client().post("/jrpc", json=call)
    assert response.status_code == 200
    error = response.get_json()["error"]
    assert error["code"] == -32602 and "image 'nginx' is not allowed" in error["message"]
    assert manager.list() == []


def test_stopping_is_not_subject_to_the_image_policy(worker_app):
    client = worker_app.test_client()
    task_id = str(uuid.uuid4())
    assert client.post("/tasks", json={"task": {"id": task_id, "image": "busybox"}}).status_code == 201
    stop = client.post("/tasks", json={"state": "completed", "task": {"id": task_id, "image": "nginx"}})
    assert stop.status_code == 202
