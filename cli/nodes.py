"""`orca node ls | status NAME | drain NAME | eligibility NAME on|off | rm NAME`."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click
from rich.text import Text

from cli.client import ManagerClient
from cli.commands import connect, manager_option, now, out, print_json, reports_errors, show_nodes
from cli.render import age, human_bytes


def _path(name: str, suffix: str = "") -> str:
    return f"/nodes/{quote(name, safe=':')}{suffix}"


def _call(client: ManagerClient, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    return client._json(client._call(method, path, **kwargs), dict)  # noqa: SLF001 - the client's own plumbing


def scheduling_text(node: dict[str, Any]) -> str:
    """eligible | ineligible | draining (N left, until DEADLINE)."""
    drain = node.get("drain")
    if drain:
        return f"draining ({drain.get('remaining', 0)} left, deadline {drain.get('deadline') or '-'})"
    return "eligible" if node.get("eligible", True) else "ineligible"


def node_detail(node: dict[str, Any]) -> Text:
    """One node, a `label  value` line per field."""
    capacity, allocated = node.get("capacity") or {}, node.get("allocated") or {}
    rows = [
        ("name", node.get("name")), ("id", node.get("id")), ("address", node.get("address")),
        ("status", node.get("status", node.get("state"))), ("scheduling", scheduling_text(node)),
        ("cpu", f"{allocated.get('cpu', 0):g} of {capacity.get('cpu', 0):g} cores allocated"),
        ("memory", f"{human_bytes(allocated.get('memory'))} of {human_bytes(capacity.get('memory'))} allocated"),
        ("disk", f"{human_bytes(allocated.get('disk'))} of {human_bytes(capacity.get('disk'))} allocated"),
        ("labels", ", ".join(f"{k}={v}" for k, v in (node.get("labels") or {}).items()) or "-"),
        ("tasks", node.get("task_count", 0)),
        ("last seen", f"{node['last_seen']} ({age(node['last_seen'], now())} ago)" if node.get("last_seen") else "-"),
        ("engine", "reachable" if (node.get("engine") or {}).get("reachable") else
         (node.get("engine") or {}).get("error") or "unknown"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    return Text("\n").join(Text(label.ljust(width), style="bold") + Text(str(value)) for label, value in rows)


@click.group("node")
def node() -> None:
    """Nodes: list them, drain them, change their eligibility, remove them."""


@node.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the manager's JSON instead of a table.")
@manager_option
@reports_errors
def node_ls(as_json, manager_url) -> None:
    """Show every node: state, scheduling, use, task count."""
    show_nodes(manager_url, as_json, empty="no nodes")


@node.command("status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the manager's JSON.")
@manager_option
@reports_errors
def node_status(name, as_json, manager_url) -> None:
    """Show one node in detail."""
    found = _call(connect(manager_url), "GET", _path(name))
    if as_json:
        print_json(found)
    else:
        out().print(node_detail(found))


@node.command("drain")
@click.argument("name")
@click.option("--deadline", type=click.FloatRange(min=0), default=3600.0, show_default=True, metavar="SECONDS",
              help="After this, whatever is left is stopped and moved at once.")
@click.option("--force", is_flag=True, help="Stop and move every task at once.")
@click.option("--cancel", is_flag=True, help="Stop a drain in progress; the node becomes eligible again.")
@manager_option
@reports_errors
def node_drain(name, deadline, force, cancel, manager_url) -> None:
    """Move every task off a node (one at a time), then leave it ineligible."""
    body = {"cancel": True} if cancel else {"deadline": deadline, "force": force}
    found = _call(connect(manager_url), "POST", _path(name, "/drain"), json=body)
    click.echo(f"{found['name']}: {scheduling_text(found)}")


@node.command("eligibility")
@click.argument("name")
@click.argument("setting", type=click.Choice(["on", "off"]))
@manager_option
@reports_errors
def node_eligibility(name, setting, manager_url) -> None:
    """Let a node take new tasks (on) or not (off); its running tasks stay."""
    found = _call(connect(manager_url), "POST", _path(name, "/eligibility"), json={"eligible": setting == "on"})
    click.echo(f"{found['name']}: {scheduling_text(found)}")


@node.command("rm")
@click.argument("name")
@manager_option
@reports_errors
def node_rm(name, manager_url) -> None:
    """Remove a node that is down or drained."""
    found = _call(connect(manager_url), "DELETE", _path(name))
    click.echo(f"{found['name']} removed")
