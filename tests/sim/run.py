"""Run the simulation from the command line.

    python -m tests.sim.run --seed 123 --steps 200 --verbose     # replay one seed, print its trace
    python -m tests.sim.run --seeds 20000 --steps 300            # a long run over many seeds
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter

from tests.sim.driver import run
from tests.sim.invariants import InvariantViolation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--seeds", type=int, default=100, help="run seeds 0..N-1 (without --seed)")
    parser.add_argument("--first", type=int, default=0, help="first seed of --seeds")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--verbose", action="store_true", help="print the trace (and the logs with -vv)")
    parser.add_argument("--keep-going", action="store_true", help="report every failing seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL)
    if not args.verbose:
        logging.disable(logging.CRITICAL)
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    faults, work, checks, failed, started = Counter(), Counter(), 0, [], time.monotonic()
    for seed in seeds:
        try:
            result = run(seed, args.steps, verbose=args.verbose)
        except InvariantViolation as exc:
            failed.append(seed)
            print(str(exc) if args.verbose or not args.keep_going else str(exc).splitlines()[0], file=sys.stderr)
            if not args.keep_going:
                break
            continue
        faults.update(result.faults)
        work.update(result.work)
        checks += result.checks
    print(f"seeds={len(seeds)} steps={args.steps} failed={failed} checks={checks} "
          f"seconds={time.monotonic() - started:.1f}")
    print("work: " + ", ".join(f"{k}={v}" for k, v in sorted(work.items())))
    print("faults: " + ", ".join(f"{k}={v}" for k, v in sorted(faults.items())))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
