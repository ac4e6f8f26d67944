"""Several managers on PostgreSQL: failover time and POST throughput via a follower.

Three `python main.py manager` processes share a fresh database on the test server
(.ci/host-setup; ORCA_TEST_PG_URL to point elsewhere). Their workers are unreachable on
purpose, so no container is started: this measures the managers only.

- failover: kill -9 of the leader until a POST /tasks through a survivor is accepted again
  (201), median of --runs; the same after SIGTERM (the leader hands the lease over). The
  fair bound for kill -9 is the TTL: the lease must expire before anyone may take over.
- throughput: --tasks POSTs from 16 clients through the leader, then through a follower
  (which forwards each to the leader).

    python bench/failover.py [--runs 5] [--ttl 5] [--tasks 1000]
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.accept import load  # noqa: E402
from bench.harness import Orca, free_port_run, median, report, wait_until  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:54329/postgres"
BODY = {"task": {"image": "busybox", "command": ["true"]}}


def database(admin: str, name: str, create: bool) -> str:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin)._replace(path=f"/{name}"))


def leader_of(managers: list[Orca]) -> Orca:
    """The manager /cluster names leader (asked of any live one)."""
    by_address = {m.url.removeprefix("http://"): m for m in managers}

    def find():
        for manager in managers:
            if manager.proc.poll() is None:
                try:
                    name = requests.get(manager.url + "/cluster", timeout=2).json()["leader"]
                except requests.RequestException:
                    continue
                return by_address.get(name)
        return None
    return wait_until(find, 60, 0.05)


def accepted(url: str) -> bool:
    try:
        return requests.post(url + "/tasks", json=BODY, timeout=5).status_code == 201
    except requests.RequestException:
        return False


def failover(managers: list[Orca], how: str) -> float:
    """Seconds from stopping the leader (kill -9 or SIGTERM) to the next accepted POST."""
    leader = leader_of(managers)
    survivor = next(m for m in managers if m is not leader)
    assert accepted(survivor.url)
    started = time.perf_counter()
    if how == "kill":
        leader.proc.kill()
    else:
        leader.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: accepted(survivor.url), 120, 0.02)
    seconds = time.perf_counter() - started
    leader.proc.wait(30)
    leader.__enter__()  # the same manager again, on its port: three managers for the next run
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ttl", type=float, default=5.0)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--admin-url", default=ADMIN)
    args = parser.parse_args()
    name = f"orca_bench_{uuid.uuid4().hex[:8]}"
    url = database(args.admin_url, name, create=True)
    closed = free_port_run(1)
    managers = [Orca("manager", workers=0, ORCA_WORKERS=f"127.0.0.1:{closed}", ORCA_DATABASE_URL=url,
                     ORCA_LEASE_TTL=str(args.ttl)) for _ in range(3)]
    try:
        for manager in managers:
            manager.__enter__()
        killed = [failover(managers, "kill") for _ in range(args.runs)]
        termed = [failover(managers, "term") for _ in range(args.runs)]
        leader = leader_of(managers)
        follower = next(m for m in managers if m is not leader)
        load(leader.url, 100, 16)  # warm up
        via_leader = args.tasks / load(leader.url, args.tasks, 16)[0]
        via_follower = args.tasks / load(follower.url, args.tasks, 16)[0]
    finally:
        for manager in managers:
            if manager.proc and manager.proc.poll() is None:
                manager.__exit__()
        database(args.admin_url, name, create=False)
    report(f"several managers: 3 managers on PostgreSQL, ORCA_LEASE_TTL={args.ttl:g}, {args.runs} runs", [
        ("failover after kill -9 (until a POST is accepted), median", f"{median(killed):.2f} s  "
                                                                      f"(runs: {', '.join(f'{s:.2f}' for s in killed)})"),
        ("bound: the lease must expire first (TTL)", f"{args.ttl:.2f} s"),
        ("hand-over after SIGTERM, median", f"{median(termed):.2f} s  "
                                            f"(runs: {', '.join(f'{s:.2f}' for s in termed)})"),
        (f"POST /tasks through the leader ({args.tasks}, 16 clients)", f"{via_leader:.0f} req/s"),
        ("POST /tasks through a follower (forwarded)", f"{via_follower:.0f} req/s"),
    ], f"failover {median(killed) / args.ttl:.2f}x the TTL; a follower takes writes at "
       f"{via_follower / via_leader:.2f}x the leader's rate")


if __name__ == "__main__":
    main()
