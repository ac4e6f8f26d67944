"""Task placement: pure strategies behind the Scheduler protocol, found by name."""
from scheduler.base import Scheduler, place
from scheduler.round_robin import RoundRobin

STRATEGIES = {RoundRobin.name: RoundRobin}


def get_scheduler(name: str) -> Scheduler:
    """Return a new scheduler for a strategy name; raise ValueError naming the choices."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(STRATEGIES)}") from None


__all__ = ["Scheduler", "RoundRobin", "STRATEGIES", "get_scheduler", "place"]
