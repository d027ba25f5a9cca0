"""Bench round of one run over several managers (--source all, issue 31): four managers' bench worlds at one size,
each on its own private tmux server, judged by one machine run against each judged by a run of its own source.

    .venv/bin/python bench/machine.py [--size 250] [--repeats 5] [--sources sqlite agent-teams claude-squad agent-deck]

Every run recognises every world's stand-ins as Claude (one --claude-match for all), as one machine's Claude is.
A single-source run checks its own server (it reads the others as this user's other servers all the same); the
machine run checks all four. Each figure is the median of --repeats; the worlds are torn down whatever happens.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from healthchecks.observe import observe, observe_machine  # noqa: E402
from healthchecks.sources import BY_NAME  # noqa: E402
from healthchecks.testing.bench import BenchWorld  # noqa: E402
from healthchecks.testing.bench import build as bench_world  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    found = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        found.append(time.perf_counter() - started)
    return statistics.median(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sources", nargs="+", default=["sqlite", "agent-teams", "claude-squad", "agent-deck"])
    args = parser.parse_args()
    worlds: list[BenchWorld] = []
    with tempfile.TemporaryDirectory(prefix="hc-bench-machine-") as tmp:
        try:
            for name in args.sources:
                worlds.append(bench_world(BY_NAME[name], Path(tmp) / name, args.size))
            names = sorted({re.escape(w.world.standin.name) for w in worlds})
            match = "^(" + "|".join(names) + ")$"
            each = tuple(dataclasses.replace(w.world.settings, claude_match=match, claude_exe="") for w in worlds)
            sockets = tuple(s for settings in each for s in settings.tmux_sockets)
            together = tuple(dataclasses.replace(s, tmux_sockets=sockets) for s in each)
            alone = {name: median_seconds(lambda s=s: observe(s).figures, args.repeats)
                     for name, s in zip(args.sources, each, strict=True)}
            machine = median_seconds(lambda: observe_machine(together).figures, args.repeats)
        finally:
            for w in worlds:
                w.world.teardown()
    slowest, total = max(alone.values()), sum(alone.values())
    for name, seconds in alone.items():
        print(f"{name:16} {args.size} agents alone   {seconds * 1000:8.1f} ms")
    print(f"{'all':16} {len(alone)} x {args.size} together  {machine * 1000:8.1f} ms   "
          f"{machine / slowest:.2f}x the slowest alone (goal <= 1.3x), {machine / total:.2f}x their sum")


if __name__ == "__main__":
    main()
