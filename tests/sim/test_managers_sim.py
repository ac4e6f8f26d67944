"""Several managers sharing one database with a lease, under faults of the leader (freezes
shorter and longer than the TTL with a pass finished on waking, kill -9, cuts from the
database, resignation): at most one manager's writes succeed for any term, no acknowledged
task is lost, no task runs twice, no double placement after a failover.

    ORCA_SIM_MANAGER_SEEDS=2000 python -m pytest tests/sim/test_managers_sim.py -q -s   # a longer run
    python -c "from tests.sim.managers_driver import run; run(SEED, verbose=True)"    # one seed, traced
"""
from __future__ import annotations

import logging
import os
from collections import Counter

import pytest

from tests.sim.managers_driver import run

SEEDS = int(os.environ.get("ORCA_SIM_MANAGER_SEEDS", "120"))


@pytest.fixture(autouse=True, scope="module")
def quiet_logs():
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def test_seeds():
    totals = Counter()
    for seed in range(SEEDS):
        totals.update(run(seed))
    print(f"\nseveral managers: {SEEDS} seeds, {dict(sorted(totals.items()))}")
    # the schedule really exercised failovers, not only a quiet leader
    assert totals["acknowledged"] > 0 and totals["terms"] > SEEDS, totals
    assert totals["freeze"] and totals["kill"] and totals["cut"] and totals["flaky"] and totals["resign"], totals
    # the tasks really ran (once they all failed at the worker, and every invariant held vacuously)
    assert totals["ran"] > totals["acknowledged"] * 0.8, totals
    # some frozen leaders were replaced and finished a pass on waking: what they tried was refused
    assert totals["zombie_refused"] > 0, totals
