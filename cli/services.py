"""`orca service ...`: create, list, inspect, scale, update, roll back and remove services,
with a live display of a rollout's progress."""
from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import click
from rich.table import Table

from cli.client import ManagerClient
from cli.commands import Failure, connect, manager_option, now, out, print_json, reports_errors
from cli.render import age, state_text

POLL = 0.5  # seconds between reads of a rollout's progress
ENDED = ("completed", "paused", "rolled_back")


def _path(name: str, suffix: str = "") -> str:
    return f"/services/{quote(name, safe='')}{suffix}"


def _load(file) -> dict[str, Any]:
    try:
        data = json.loads(file.read())
    except ValueError as exc:
        raise Failure(f"{file.name} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Failure(f"{file.name} must hold a JSON object (a service: name, replicas, task, update)")
    return data


def follow_rollout(client: ManagerClient, name: str, timeout: float | None = None) -> int:
    """Print the rollout's progress as it changes until it ends; 0 if it completed, else 1."""
    last, deadline = None, None if timeout is None else time.monotonic() + timeout
    while True:
        service = client.call_json("GET", _path(name))
        rollout = service.get("rollout") or {}
        line = progress_line(service)
        if line != last:
            click.echo(line)
            last = line
        if not rollout or rollout.get("state") in ENDED:
            return 0 if not rollout or rollout.get("state") == "completed" else 1
        if deadline is not None and time.monotonic() > deadline:
            click.echo(f"orca: still rolling out; follow it with `orca service ps {name}`", err=True)
            return 1
        time.sleep(POLL)


def progress_line(service: dict[str, Any]) -> str:
    """`web: version 1 -> 2 running [##--] 1/2 updated, 2 running, 2 healthy`."""
    rollout = service.get("rollout")
    counts = f"{service['running']} running, {service['healthy']} healthy of {service['replicas']}"
    if not rollout:
        return f"{service['name']}: version {service['version']}, {counts}"
    total = max(rollout["total"], 1)
    done = round(10 * rollout["updated"] / total)
    line = (f"{service['name']}: version {rollout['from_version']} -> {rollout['to_version']} {rollout['state']} "
            f"[{'#' * done}{'-' * (10 - done)}] {rollout['updated']}/{rollout['total']} updated, {counts}")
    return line + (f" ({rollout['reason']})" if rollout.get("reason") else "")


@click.group("service")
def service() -> None:
    """Services: N replicas of a task, scaled, updated rolling and rolled back."""


@service.command("create")
@click.option("-f", "--file", "spec_file", type=click.File("r"), required=True, metavar="FILE",
              help="The service as JSON: {name, replicas, task, update}; '-' reads stdin.")
@manager_option
@reports_errors
def create(spec_file, manager_url) -> None:
    """Create a service; prints its name."""
    created = connect(manager_url).call_json("POST", "/services", json=_load(spec_file))
    click.echo(created["name"])


@service.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the manager's JSON instead of a table.")
@manager_option
@reports_errors
def ls(as_json, manager_url) -> None:
    """List the services."""
    found = connect(manager_url).call_json("GET", "/services", list)
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("no services")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "VERSION", "REPLICAS", "IMAGE", "ROLLOUT", "AGE"):
        table.add_column(column)
    for s in found:
        rollout = s.get("rollout")
        shown = f"{rollout['from_version']}->{rollout['to_version']} {rollout['state']}" if rollout else "-"
        replicas = f"{s['healthy']}/{s['replicas']}" + (" deleting" if s.get("deleting") else "")
        table.add_row(s["name"], str(s["version"]), replicas, s["task"]["image"], shown, age(s["created_at"], now()))
    out().print(table)


@service.command("ps")
@click.argument("name")
@click.option("-a", "--all", "show_all", is_flag=True, help="Also the replicas that have ended.")
@click.option("--json", "as_json", is_flag=True, help="Print the manager's JSON instead of a table.")
@manager_option
@reports_errors
def ps(name, show_all, as_json, manager_url) -> None:
    """The service's replicas: id, version, state, health, node."""
    client = connect(manager_url)
    tasks = client.call_json("GET", _path(name, "/tasks"), list)
    if not show_all:
        tasks = [t for t in tasks if t["state"] not in ("completed", "failed")]
    if as_json:
        print_json(tasks)
        return
    click.echo(progress_line(client.call_json("GET", _path(name))))
    table = Table(box=None, pad_edge=False)
    for column in ("ID", "VERSION", "STATE", "HEALTHY", "NODE", "AGE"):
        table.add_column(column)
    for t in tasks:
        healthy = "-" if t["healthy"] is None else "yes" if t["healthy"] else "no"
        state = state_text(t["state"]) if t["desired_state"] == "running" else state_text(f"{t['state']} (stopping)")
        table.add_row(t["id"][:8], str(t["service_version"]), state, healthy, t["node"] or "-",
                      age(t["created_at"], now()))
    out().print(table)


@service.command("scale")
@click.argument("name")
@click.argument("replicas", type=click.IntRange(min=0))
@manager_option
@reports_errors
def scale(name, replicas, manager_url) -> None:
    """Set the number of replicas."""
    changed = connect(manager_url).call_json("POST", _path(name, "/scale"), json={"replicas": replicas})
    click.echo(f"{changed['name']}: {changed['replicas']} replicas")


@service.command("update")
@click.argument("name")
@click.option("-f", "--file", "spec_file", type=click.File("r"), required=True, metavar="FILE",
              help="The service as JSON (task, and optionally replicas and update); '-' reads stdin.")
@click.option("-d", "--detach", is_flag=True, help="Do not follow the rollout.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS", help="Stop following after this long.")
@manager_option
@reports_errors
def update(name, spec_file, detach, timeout, manager_url) -> None:
    """Apply a new spec; a new task spec is rolled out, shown live until it ends (exit 1 if it
    paused or rolled back)."""
    body = _load(spec_file)
    client = connect(manager_url)
    changed = client.call_json("PUT", _path(name), json=body)
    if detach or not changed.get("rollout") or changed["rollout"]["state"] != "running":
        click.echo(progress_line(changed))
        return
    click.get_current_context().exit(follow_rollout(client, name, timeout))


@service.command("rollback")
@click.argument("name")
@manager_option
@reports_errors
def rollback(name, manager_url) -> None:
    """Go back to the previous version at once."""
    changed = connect(manager_url).call_json("POST", _path(name, "/rollback"))
    click.echo(f"{changed['name']}: back to version {changed['version']}")


@service.command("rm")
@click.argument("name")
@manager_option
@reports_errors
def rm(name, manager_url) -> None:
    """Remove a service: every replica is stopped, then the service is gone."""
    connect(manager_url).call_json("DELETE", _path(name))
    click.echo(name)
