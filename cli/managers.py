"""`orca managers`: the leader, its term and every manager, from GET /cluster."""
from __future__ import annotations

import click
from rich.table import Table

from cli.commands import connect, manager_option, now, out, print_json, reports_errors
from cli.render import age


def managers_table(view: dict) -> Table:
    """One row per manager: name, address, role, and how long ago it last claimed the lease."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "ADDRESS", "ROLE", "LAST SEEN"):
        table.add_column(column, no_wrap=True)
    for manager in view.get("managers") or []:
        seen = manager.get("last_seen")
        table.add_row(str(manager.get("name")), str(manager.get("address")), str(manager.get("role")),
                      f"{age(seen, now())} ago" if seen else "-")
    return table


@click.command("managers")
@click.option("--json", "as_json", is_flag=True, help="Print the manager's JSON instead of a table.")
@manager_option
@reports_errors
def managers(as_json, manager_url) -> None:
    """Show the managers: which one leads, in which term (several managers on one database)."""
    view = connect(manager_url).cluster()
    if as_json:
        print_json(view)
        return
    click.echo(f"leader: {view.get('leader') or '(none: an election is under way)'}, term {view.get('term')}")
    out().print(managers_table(view))
