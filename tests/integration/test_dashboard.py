"""The dashboard in a real browser: Debian's chromium driven by Selenium (through the system
chromedriver; nothing is downloaded) against a real manager, real workers and the engine.

Each page is loaded after logging in with the token, checked against what the API returns,
screenshotted (tests/artifacts/screens/, ignored by git; docs/overview.png in the README is
a copy of overview.png) and its console read: no errors.
Then the live parts: a task POSTed through the API appears without a reload, the Stop button
(with its confirmation) turns a task completed, and a task's output shows line by line.
"""
from __future__ import annotations

import os

import pytest
import requests

from tests.integration.conftest import ROOT, Cluster, wait_for
from tests.integration.test_security import TOKEN, start_secure

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SLOW = 90.0  # seconds a container start or stop may take on a loaded engine (a deadline, not a pause)
SCREENS = ROOT / "tests" / "artifacts" / "screens"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the browser tests need chromium under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def orca(tmp_path_factory, docker_client, test_image):
    cluster = Cluster(tmp_path_factory.mktemp("dashboard"), docker_client)
    try:
        yield start_secure(cluster, "all", workers=2, ORCA_STORE="memory", ORCA_RESTART_BACKOFF="60")
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def browser(orca):
    """Headless chromium, logged in to the dashboard once (the session cookie is kept)."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        unavailable("chromium and chromium-driver are not installed (.ci/host-setup installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, if it ever ran, must not go online
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    SCREENS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(f"{orca.manager_url}/ui")
        assert driver.current_url.startswith(f"{orca.manager_url}/ui/login")  # no session yet: the login page
        driver.find_element("id", "token").send_keys(TOKEN)
        driver.find_element("css selector", "form.login button").click()
        wait_for(lambda: driver.current_url.rstrip("/") == f"{orca.manager_url}/ui", what="the overview")
        cookie = driver.get_cookie("orca_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
        yield driver
    finally:
        driver.quit()


def api(orca, method: str, path: str, **kwargs):
    response = requests.request(method, orca.manager_url + path, headers=AUTH, timeout=10, **kwargs)
    assert response.status_code < 400, response.text
    return response.json()


def submit(orca, image: str, command: list[str], name: str | None = None) -> str:
    task = {"image": image, "command": command, "restart_policy": "no"}
    if name:
        task["name"] = name
    return api(orca, "POST", "/tasks", json={"task": task})["id"]


def wait_state(orca, task_id: str, states: tuple[str, ...]) -> dict:
    return wait_for(lambda: (task := api(orca, "GET", f"/tasks/{task_id}"))["state"] in states and task,
                    timeout=SLOW, what=f"task {task_id} to be {'/'.join(states)}")


NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"  # chromium aborts loads when the host's interfaces change


def visit(browser, orca, path: str, shot: str):
    """Load a page, wait until its stream is live (when it has one), save a screenshot, and
    check that the browser logged no error for it. Docker adds and removes a network interface
    for every container it starts or removes, and chromium then aborts the loads in flight
    (ERR_NETWORK_CHANGED): such a load is tried again (at most 5 times), not counted."""
    for _ in range(5):
        browser.get(orca.manager_url + path)
        entries = browser.get_log("browser")
        if not any(NETWORK_CHANGED in entry["message"] for entry in entries):
            break
    else:
        pytest.fail(f"{path}: every load was cut by a change of the host's network")
    assert not [e for e in entries if e["level"] in ("SEVERE", "ERROR")], f"{path}: {entries}"
    if browser.find_element("tag name", "body").get_attribute("data-since"):
        wait_for(lambda: browser.find_element("id", "live").text == "live", what=f"{path}'s event stream")
    browser.save_screenshot(str(SCREENS / f"{shot}.png"))
    no_console_errors(browser, path)


def no_console_errors(browser, where: str) -> None:
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")
              and NETWORK_CHANGED not in entry["message"]]  # the host's, not the page's (see visit)
    assert not errors, f"{where}: {errors}"


def text_of(browser, css: str) -> str:
    """The element's text; "" while the page's script is replacing it (a stale element)."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return browser.find_element("css selector", css).text
    except StaleElementReferenceException:
        return ""


def state_in_page(browser, task_id: str) -> str | None:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        found = browser.find_elements("css selector", f'[data-task-id="{task_id}"] [data-field="state"]')
        return found[0].text if found else None
    except StaleElementReferenceException:  # replaced by the live update in between
        return None


def test_every_page_shows_the_state_the_api_returns(orca, browser, test_image):
    sleeper = submit(orca, test_image, ["sleep", "300"], name="sleeper")
    done = submit(orca, test_image, ["sh", "-c", "echo hello from orca"], name="greeter")
    wait_state(orca, sleeper, ("running",))
    wait_state(orca, done, ("completed",))
    api(orca, "POST", "/services", json={"name": "web", "replicas": 2,
                                         "task": {"image": test_image, "command": ["sleep", "300"]}})
    wait_for(lambda: api(orca, "GET", "/services/web")["running"] == 2, timeout=SLOW, what="the service's replicas")
    tasks = {t["id"]: t for t in api(orca, "GET", "/tasks")}

    visit(browser, orca, "/ui", "overview")
    counts = {state: sum(1 for t in tasks.values() if t["state"] == state) for state in ("running", "completed")}
    for state, count in counts.items():
        assert text_of(browser, f'[data-count="{state}"]') == str(count)
    assert text_of(browser, '[data-count="total"]') == str(len(tasks))
    assert text_of(browser, "[data-nodes-up]") == "2"
    assert "2/2" in text_of(browser, '[data-service="web"]')

    visit(browser, orca, "/ui/tasks", "tasks")
    for task_id, task in tasks.items():
        assert state_in_page(browser, task_id) == task["state"], task_id
    visit(browser, orca, "/ui/tasks?state=completed", "tasks-completed")
    assert {row.get_attribute("data-task-id") for row in browser.find_elements("css selector", "tr[data-task-id]")} \
        == {i for i, t in tasks.items() if t["state"] == "completed"}

    visit(browser, orca, f"/ui/tasks/{done}", "task")
    assert state_in_page(browser, done) == "completed"
    wait_for(lambda: "hello from orca" in text_of(browser, "#output"), timeout=SLOW, what="the finished task's output")
    assert "completed" in text_of(browser, "#history")

    nodes = api(orca, "GET", "/nodes")
    visit(browser, orca, "/ui/nodes", "nodes")
    for node in nodes:
        row = browser.find_element("css selector", f'tr[data-node="{node["name"]}"]')
        assert node["status"] in row.text and str(node["task_count"]) in row.text
    visit(browser, orca, f"/ui/nodes/{nodes[0]['name']}", "node")
    on_node = {i for i, t in tasks.items() if t["node"] == nodes[0]["name"]}
    assert on_node <= {row.get_attribute("data-task-id") for row in browser.find_elements("css selector", "tr[data-task-id]")}

    visit(browser, orca, "/ui/services", "services")
    assert "2 / 2" in text_of(browser, 'tr[data-service="web"]')
    visit(browser, orca, "/ui/services/web", "service")
    replicas = {t["id"] for t in api(orca, "GET", "/services/web/tasks")}
    assert replicas == {row.get_attribute("data-task-id") for row in browser.find_elements("css selector", "tr[data-task-id]")}


def test_the_overview_fits_a_phone_and_is_reachable_by_keyboard(orca, browser):
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(375, 812)
    try:
        visit(browser, orca, "/ui", "overview-375px")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 375
        body = browser.find_element("tag name", "body")
        reached = []
        for _ in range(12):
            body.send_keys(Keys.TAB) if not reached else browser.switch_to.active_element.send_keys(Keys.TAB)
            reached.append(browser.switch_to.active_element.get_attribute("href") or "")
        assert any(href.endswith("/ui/tasks") for href in reached) and any(href.endswith("/ui/nodes") for href in reached)
    finally:
        browser.set_window_size(1280, 900)


def test_a_task_appears_live_without_a_reload(orca, browser, test_image):
    visit(browser, orca, "/ui/tasks", "tasks-before")
    browser.execute_script("window.notReloaded = true;")
    task_id = submit(orca, test_image, ["sleep", "300"], name="newcomer")
    wait_for(lambda: state_in_page(browser, task_id) == "running", timeout=SLOW, what="the new task's row, running")
    assert browser.execute_script("return window.notReloaded === true")
    browser.save_screenshot(str(SCREENS / "tasks-live.png"))
    no_console_errors(browser, "/ui/tasks after a live update")


def test_the_stop_button_asks_then_the_task_turns_completed(orca, browser, test_image):
    task_id = submit(orca, test_image, ["sleep", "300"], name="to-stop")
    wait_state(orca, task_id, ("running",))
    visit(browser, orca, f"/ui/tasks/{task_id}", "task-running")
    browser.execute_script("window.notReloaded = true;")
    browser.find_element("id", "stop").click()
    browser.switch_to.alert.dismiss()  # asked, and said no: nothing happens
    assert api(orca, "GET", f"/tasks/{task_id}")["desired_state"] == "running"
    assert browser.execute_script("return window.notReloaded === true")
    browser.find_element("id", "stop").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: state_in_page(browser, task_id) == "completed", timeout=SLOW, what="the task completed on the page")
    assert api(orca, "GET", f"/tasks/{task_id}")["state"] == "completed"
    browser.save_screenshot(str(SCREENS / "task-stopped.png"))
    no_console_errors(browser, "the task page after a stop")


def test_a_task_s_output_is_followed_as_lines_arrive(orca, browser, test_image):
    script = "for i in 1 2 3 4 5 6; do echo line $i; sleep 1; done"
    task_id = submit(orca, test_image, ["sh", "-c", script], name="talker")
    wait_state(orca, task_id, ("running",))
    visit(browser, orca, f"/ui/tasks/{task_id}", "task-output-start")
    seen_running = wait_for(lambda: "line 1" in text_of(browser, "#output") and
                            api(orca, "GET", f"/tasks/{task_id}")["state"] == "running" and
                            text_of(browser, "#output"), timeout=SLOW, what="the first lines while the task runs")
    assert "line 6" not in seen_running
    wait_for(lambda: "line 6" in text_of(browser, "#output"), timeout=SLOW, what="the last line")
    wait_for(lambda: state_in_page(browser, task_id) == "completed", timeout=SLOW, what="the task completed on the page")
    lines = [line for line in text_of(browser, "#output").splitlines() if line]
    assert lines == [f"line {n}" for n in range(1, 7)]
    browser.save_screenshot(str(SCREENS / "task-output.png"))
    no_console_errors(browser, "the task page while following")


def test_a_browser_gets_the_dashboard_at_root_and_nothing_404s(orca, browser):
    browser.get(orca.manager_url + "/")
    assert browser.current_url.rstrip("/").endswith("/ui")
    assert requests.get(orca.manager_url + "/favicon.ico", timeout=5).status_code == 200
    failed = browser.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.responseStatus >= 400).map(e => e.name)")
    assert failed == []
    no_console_errors(browser, "/")


def test_scaling_a_service_from_its_page_shows_the_new_replicas_live(orca, browser, test_image):
    if not any(s["name"] == "web" for s in api(orca, "GET", "/services")):
        api(orca, "POST", "/services", json={"name": "web", "replicas": 2,
                                             "task": {"image": test_image, "command": ["sleep", "300"]}})
    visit(browser, orca, "/ui/services/web", "service-before-scale")
    field = browser.find_element("css selector", 'input[name="replicas"]')
    field.clear()
    field.send_keys("3")
    browser.find_element("css selector", 'form[data-confirm] button[type="submit"]').click()
    browser.switch_to.alert.accept()
    wait_for(lambda: api(orca, "GET", "/services/web")["running"] == 3, timeout=SLOW, what="three replicas running")
    wait_for(lambda: "3 running of 3" in text_of(browser, ".task-head"), timeout=SLOW, what="the page to show three running")
    running = {t["id"] for t in api(orca, "GET", "/services/web/tasks") if t["state"] == "running"}
    assert running <= {row.get_attribute("data-task-id") for row in browser.find_elements("css selector", "tr[data-task-id]")}
    browser.save_screenshot(str(SCREENS / "service-scaled.png"))
    no_console_errors(browser, "the service page after scaling")
