"""Orca's single entry point: the services and the command line, one click group.

    python main.py            one manager and ORCA_WORKER_COUNT workers in one process
    python main.py manager    the manager alone (workers listed in ORCA_WORKERS)
    python main.py worker     one worker alone
    python main.py run|status|stop|logs|nodes ...   talk to a running manager (see cli/)

`orca ...` (the console script of `pip install -e .`) is the same group. Configuration comes
from the environment and `.env` (the environment wins); see README.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import click
from dotenv import load_dotenv

from cli.commands import COMMANDS
from cli.managers import managers as managers_command
from cli.services import service as service_commands
from cli.nodes import node as node_group
from common.config import Config, ConfigError, from_env
from store import BadDatabaseURL

log = logging.getLogger("orca")

ROLES = ("all", "manager", "worker")


def build_services(role: str, config: Config) -> list:
    """Return the services of a role, workers first so they are up before the manager polls."""
    from manager.service import ManagerService
    from worker.service import WorkerService

    if role == "worker":
        return [WorkerService(config, config.worker_port)]
    workers = [] if role == "manager" else [
        WorkerService(config, config.worker_port + i, name=config.worker_name and f"{config.worker_name}-{i}")
        for i in range(config.worker_count)
    ]
    addresses = [w.address for w in workers] + [a for a in config.workers if a not in {w.address for w in workers}]
    return workers + [ManagerService(config, addresses)]


def serve(services: list, stop: threading.Event) -> None:
    """Start the services, wait for `stop`, then shut them down in reverse order."""
    try:
        for service in services:
            service.start()
        stop.wait()
    finally:
        for service in reversed(services):
            service.shutdown()


def install_signal_handlers(stop: threading.Event) -> None:
    """First SIGINT/SIGTERM: warm shutdown. A second one: leave at once."""
    def handle(signum, _frame):
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s received: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def run_role(role: str) -> int:
    """Run the services of `role` ("all", "manager" or "worker") until a signal; return the exit status.

    Returns 2 (after one line on stderr naming the variable, never a traceback) when the
    configuration is bad, 1 when a service cannot start (a port in use), 0 after a shutdown.
    """
    try:
        config = from_env(os.environ)
    except ConfigError as exc:
        print(f"orca: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_descriptor_limit()
    stop = threading.Event()
    install_signal_handlers(stop)
    try:
        services = build_services(role, config)
    except BadDatabaseURL as exc:  # a URL that does not parse or answer; the message holds no password
        print(f"orca: {exc}", file=sys.stderr)
        return 2
    try:
        serve(services, stop)
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    leave_stuck_threads()
    return 0


def raise_descriptor_limit() -> None:
    """Lift the soft limit on open descriptors to the hard one (as Go's runtime does): a
    manager holds a connection per worker, and Debian's usual soft limit of 1,024 would stop
    it short of a thousand workers."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard  # "unlimited" is refused as a soft limit
        if soft != resource.RLIM_INFINITY and wanted > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError) as exc:  # not Unix, or not allowed: keep the limit
        log.debug("descriptor limit left as it is: %s", exc)


def leave_stuck_threads(grace: float = 2.0) -> None:
    """After a shutdown, exit at once if a thread is still stuck in a call to an engine that
    does not answer: Python would otherwise wait for it at exit, for as long as it hangs."""
    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon
             and t.is_alive()]
    if stuck:
        log.warning("leaving %d thread(s) stuck in outside calls: %s", len(stuck), ", ".join(stuck[:8]))
        logging.shutdown()
        os._exit(0)


class OrcaGroup(click.Group):
    """A click group that lists its commands in the order they were added (roles first)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=OrcaGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Orca, a small container orchestrator.

    With no command, run one manager and ORCA_WORKER_COUNT workers in one process
    (Ctrl-C or SIGTERM stops them). The other commands talk to a running manager.
    """
    load_dotenv(Path.cwd() / ".env", override=False)
    if ctx.invoked_subcommand is None:
        ctx.exit(run_role("all"))


@cli.command("manager")
@click.pass_context
def manager_role(ctx: click.Context) -> None:
    """Run the manager alone (its workers are listed in ORCA_WORKERS)."""
    ctx.exit(run_role("manager"))


@cli.command("worker")
@click.pass_context
def worker_role(ctx: click.Context) -> None:
    """Run one worker alone."""
    ctx.exit(run_role("worker"))


@cli.command("cleanup")
@click.option("--worker", metavar="NAME", help="Only the containers of this worker (their orca.worker label).")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.pass_context
def cleanup(ctx: click.Context, worker: str | None, dry_run: bool) -> None:
    """Remove every container carrying Orca's labels, and nothing else (run it while Orca is stopped)."""
    from worker.cleanup import cleanup_main

    ctx.exit(cleanup_main((["--worker", worker] if worker else []) + (["--dry-run"] if dry_run else [])))


for _command in COMMANDS:
    cli.add_command(_command)
cli.add_command(service_commands)
cli.add_command(managers_command)
cli.add_command(node_group)


def main(argv: list[str] | None = None) -> int:
    """Run the command in argv (default: sys.argv[1:]); return the process exit status."""
    try:
        cli.main(args=argv, standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
