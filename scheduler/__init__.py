"""Task placement: pure strategies over a Cluster snapshot, found by name (ORCA_SCHEDULER)."""
from scheduler.base import Placement, Scheduler, place, sample_size
from scheduler.cluster import Cluster
from scheduler.round_robin import RoundRobin
from scheduler.strategies import BinPack, Epvm, Spread

STRATEGIES = {cls.name: cls for cls in (Spread, BinPack, Epvm, RoundRobin)}
ALIASES = {"roundrobin": RoundRobin.name, "e-pvm": Epvm.name, "bin-pack": BinPack.name}
DEFAULT = Spread.name


def get_scheduler(name: str) -> Scheduler:
    """Return a new scheduler for a strategy name; raise ValueError naming the choices."""
    try:
        return STRATEGIES[ALIASES.get(name, name)]()
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(STRATEGIES)}") from None


__all__ = ["ALIASES", "BinPack", "Cluster", "DEFAULT", "Epvm", "Placement", "RoundRobin", "STRATEGIES", "Scheduler",
           "Spread", "get_scheduler", "place", "sample_size"]
