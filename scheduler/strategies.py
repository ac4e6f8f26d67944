"""The placement strategies ORCA_SCHEDULER names. Each is a Scheduler with one scoring
function from scheduler.fit; round robin also chooses its own candidate."""
from __future__ import annotations

from scheduler import fit
from scheduler.base import Scheduler


class Spread(Scheduler):
    """Fewest tasks of the same service, then the least loaded node (Nomad's spread fit)."""

    name = "spread"
    score_fn = staticmethod(fit.spread)


class BinPack(Scheduler):
    """The fullest node the task fits on (Nomad's best-fit formula)."""

    name = "binpack"
    score_fn = staticmethod(fit.binpack)


class Epvm(Scheduler):
    """The node where the task adds the least E-PVM cost (the book's, with its cpu term fixed)."""

    name = "epvm"
    score_fn = staticmethod(fit.epvm)
