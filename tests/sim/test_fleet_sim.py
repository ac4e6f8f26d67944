"""The simulation with a fleet: hundreds of workers and more tasks, so that the manager's
batched dispatch sends many tasks per pass, spread over many nodes, and the invariants of
the state model are checked with them (a few seeds: each step walks every worker).

    ORCA_FLEET_SIM_SEEDS=50 python -m pytest tests/sim/test_fleet_sim.py -q     # more seeds
"""
from __future__ import annotations

import logging
import os

import pytest

from tests.sim.driver import run

SEEDS = int(os.environ.get("ORCA_FLEET_SIM_SEEDS", "4"))
WORKERS = 200
TASKS = 60


@pytest.fixture(autouse=True)
def quiet_logs():
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("seed", range(SEEDS))
def test_fleet_of_hundreds_of_workers_keeps_the_invariants(seed: int):
    result = run(10_000 + seed, steps=300, workers=WORKERS, max_tasks=TASKS)
    assert result.work["tasks"] > 20  # the schedule really submitted a crowd
    assert result.work["containers_started"] >= result.work["tasks"] // 2
