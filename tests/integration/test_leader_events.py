"""Leader changes on GET /events (topic leader), two managers on one PostgreSQL: the follower
publishes who leads, and publishes itself elected when the leader hands the lease over."""
from __future__ import annotations

import signal

import pytest

from tests.integration.test_events_stream import Reader
from tests.integration.test_managers import Managers
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.docker


def leaders(reader: Reader) -> list[tuple[str, str | None, int | None]]:
    return [(m["data"]["kind"], m["data"]["data"]["name"], m["data"]["data"]["term"]) for m in list(reader.messages)
            if m["event"] == "leader"]


def test_the_followers_stream_names_the_leader_then_itself_after_a_hand_over(cluster, pg_database):
    managers = Managers(cluster, pg_database).start(workers=1, managers=2, ttl="60")
    leader = managers.leader()
    follower = next(m for m in managers.managers if m is not leader)
    name = lambda m: m.manager_url.removeprefix("http://")  # noqa: E731
    reader = Reader(follower.manager_url, topic="leader", since=0)
    try:
        wait_for(lambda: leaders(reader), what="the follower's first leader event")
        first = leaders(reader)[0]
        assert first[:2] == ("elected", name(leader))
        assert leader.signal(signal.SIGTERM) == 0
        wait_for(lambda: any(kind == "elected" and who == name(follower) for kind, who, _ in leaders(reader)),
                 timeout=30, what="the follower elected")
        terms = [term for kind, _, term in leaders(reader) if kind == "elected"]
        assert terms == sorted(terms) and terms[-1] > first[2]
    finally:
        reader.close()
