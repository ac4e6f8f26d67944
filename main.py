"""Orca's single entry point.

    python main.py            one manager and ORCA_WORKER_COUNT workers in one process
    python main.py manager    the manager alone (workers listed in ORCA_WORKERS)
    python main.py worker     one worker alone

Configuration comes from the environment and `.env` (the environment wins); see README.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from dotenv import load_dotenv

from common.config import Config, ConfigError, from_env

log = logging.getLogger("orca")

ROLES = ("all", "manager", "worker")
USAGE = "usage: python main.py [manager|worker]"


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


def main(argv: list[str] | None = None) -> int:
    """Run Orca in the role named by argv; return the process exit status."""
    args = sys.argv[1:] if argv is None else argv
    role = args[0] if args else "all"
    if role not in ROLES or len(args) > 1:
        print(USAGE, file=sys.stderr)
        return 2
    load_dotenv(Path.cwd() / ".env", override=False)
    try:
        config = from_env(os.environ)
    except ConfigError as exc:
        print(f"orca: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    install_signal_handlers(stop)
    try:
        serve(build_services(role, config), stop)
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
