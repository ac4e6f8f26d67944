"""Nodes in the simulation: per seed, a schedule of the state model's actions and faults
mixed with joins, removals, drains (deadline, force, parallel, cancel), eligibility changes
and tasks that request cpu, so capacity runs out now and then. The state model's invariants
hold after every step, plus N1-N4 of tests/sim/nodes.py.

    ORCA_SIM_NODE_SEEDS=2000 python -m pytest tests/sim/test_nodes_sim.py -q
"""
from __future__ import annotations

import logging
import os
from collections import Counter

import pytest

from tests.sim.nodes import run

SEEDS = int(os.environ.get("ORCA_SIM_NODE_SEEDS", "160"))
CASES = 4


@pytest.fixture(autouse=True)
def quiet_logs():
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("case", range(CASES))
def test_node_changes_keep_every_invariant(case):
    done: Counter = Counter()
    for seed in range(case, SEEDS, CASES):
        done.update(run(seed, steps=200))
    # The schedule really exercised what it is about.
    for action in ("drain", "eligibility", "remove", "join", "drains_completed"):
        assert done[action] > 0, (action, done)
