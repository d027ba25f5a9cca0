"""Benchmark: build real worlds at several sizes, time every phase against the floor measured in the same run.

    .venv/bin/python bench/run.py            # sizes 10, 100, 1000 sessions; prints the table
    .venv/bin/python bench/run.py --sizes 10 100 --repeats 3

Floor = one raw `tmux list-panes -a -F …` + one `ps -eo pid,ppid,args` + one `json.load` of the global
registry: the least any tool must read. Each figure is the median of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fixers.apply import Options  # noqa: E402
from fixers.run import fix  # noqa: E402
from healthchecks import processes, tmux  # noqa: E402
from healthchecks.observe import judged, observe  # noqa: E402
from healthchecks.outputs import findings_json, prometheus  # noqa: E402
from healthchecks.run import Run  # noqa: E402
from healthchecks.snapshot import collect, read_servers  # noqa: E402
from healthchecks.sources import json_registry as registry  # noqa: E402
from healthchecks.sources import sqlite_state  # noqa: E402
from healthchecks.testing.managers import PAUSED, READY, DeckWorld, SquadWorld  # noqa: E402
from healthchecks.testing.teams import TeamWorld  # noqa: E402
from healthchecks.testing.world import World  # noqa: E402


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def build(root: Path, sessions: int, era: str = "json") -> World:
    """`sessions` live agents with Claude, 10× as many registry entries, in sessions/10 tasks."""
    world = World(root, seed=sessions, era=era)
    tasks = [world.task() for _ in range(max(1, sessions))]
    for i in range(sessions):
        world.agent("running", "claude", task_id=tasks[i % len(tasks)])
    for i in range(9 * sessions):
        world.agent("completed", None, task_id=tasks[i % len(tasks)])
    world.write_registries()
    return world.start(timeout=600)


def sqlite_source(tmp: Path, sessions: int, repeats: int) -> dict[str, float]:
    """The current release's source at one size: the snapshot against its floor, one raw `SELECT * FROM agents`
    on the same file plus the same tmux and ps floors."""
    world = build(tmp / f"world-sqlite-{sessions}", sessions, era="sqlite")
    try:
        s = world.settings

        def select_all() -> None:
            conn = sqlite3.connect(world.state_path)
            conn.execute("SELECT * FROM agents").fetchall()
            conn.close()

        def live_floor() -> None:
            panes = ["tmux", "-L", world.socket_name, "list-panes", "-a", "-F", tmux.FORMAT]
            subprocess.run(panes, capture_output=True)
            subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True)

        row = {"sessions": sessions, "agents": len(world.agents)}
        row["select floor"] = median_time(select_all, repeats)
        row["tmux+ps floor"] = median_time(live_floor, repeats)
        row["sqlite read"] = median_time(lambda: sqlite_state.load(s.workspace, s.lock_timeout), repeats)
        row["snapshot"] = median_time(lambda: collect(s), repeats)
        row["judging"] = median_time(lambda: judged(collect(s)).figures, 1)
        return row
    finally:
        world.teardown()


def teams_source(tmp: Path, teams: int, members: int, repeats: int) -> dict[str, float]:
    """Claude Code Agent Teams at one size: the snapshot against its floor, a json.loads of every config.json plus
    one `tmux list-panes -a` of the leads' server and one `ps`."""
    world = TeamWorld(tmp / f"world-teams-{teams}", grace=0.0)
    for _ in range(teams):
        world.team(members)
    with world, world.environment():
        world.start(timeout=600)
        s = world.settings
        configs = sorted((world.config_dir / "teams").glob("*/config.json"))

        def teams_floor() -> None:
            for path in configs:
                json.loads(path.read_bytes())
            subprocess.run(["tmux", "-L", world.lead_server, "list-panes", "-a", "-F", tmux.FORMAT],
                           capture_output=True, env=world.env)
            subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True)

        row = {"teams": teams, "members": teams * members}
        row["floor"] = median_time(teams_floor, repeats)
        row["snapshot"] = median_time(lambda: collect(s), repeats)
        seen = judged(collect(s))
        row["failing"] = sum(len(r.failing) for r in seen.results.values())
        return row


def manager_source(tmp: Path, name: str, agents: int, repeats: int) -> dict:
    """Another manager's store at one size (a tenth of its records live with Claude, the rest paused or stopped
    without a session): the snapshot against its floors, one raw read of the store plus the same tmux and ps."""
    live = max(1, agents // 10)
    if name == "claude-squad":
        world: World = SquadWorld(tmp / f"world-{name}-{agents}", seed=agents)
        for i in range(agents):
            world.instance(f"task {i}", READY if i < live else PAUSED, "claude" if i < live else None)

        def store_floor() -> None:
            json.loads(world.state_path.read_bytes())
    else:
        world = DeckWorld(tmp / f"world-{name}-{agents}", seed=agents)
        for i in range(agents):
            world.row(f"task {i}", "running" if i < live else "stopped", "claude" if i < live else None)

        def store_floor() -> None:
            conn = sqlite3.connect(world.db_path)
            conn.execute("SELECT * FROM instances").fetchall()
            conn.close()
    world.start(timeout=600)
    try:
        s = world.settings

        def live_floor() -> None:
            subprocess.run(["tmux", "-L", world.socket_name, "list-panes", "-a", "-F", tmux.FORMAT],
                           capture_output=True)
            subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True)

        row: dict = {"source": name, "agents": agents, "sessions": live}
        row["floor"] = median_time(lambda: (store_floor(), live_floor()), repeats)
        row["snapshot"] = median_time(lambda: collect(s), repeats)
        row["judging"] = median_time(lambda: judged(collect(s)).figures, 1)
        row["failing"] = sum(len(r.failing) for r in observe(s).results.values())
        return row
    finally:
        world.teardown()


def floor(world: World) -> None:
    subprocess.run(["tmux", "-L", world.socket_name, "list-panes", "-a", "-F", tmux.FORMAT], capture_output=True)
    subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True)
    json.loads(world.global_path.read_bytes())


def pytest_run(world: World, tmp: Path, *extra: str) -> None:
    s = world.settings
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "pytest", "healthchecks", "-q", "-p", "no:hypothesispytest",
                    "--workspace", str(s.workspace), "--tmux-socket", s.tmux_sockets[0], "--claude-match",
                    s.claude_match, "--claude-exe", s.claude_exe, "--grace", str(s.grace),
                    "--report-dir", str(tmp / "reports"), *extra],
                   cwd=REPO, env=env, capture_output=True, timeout=600)


def measure(sessions: int, repeats: int, tmp: Path) -> dict[str, float]:
    world = build(tmp / f"world-{sessions}", sessions)
    try:
        s = world.settings
        row = {"sessions": sessions, "entries": len(world.agents), "processes": len(list(processes.scan(s.is_claude)))}
        row["floor"] = median_time(lambda: floor(world), repeats)
        row["registry read"] = median_time(lambda: registry.load(s.workspace), repeats)
        row["tmux read"] = median_time(lambda: read_servers(s), repeats)
        row["process scan"] = median_time(lambda: processes.scan(s.is_claude), repeats)
        # the same scan without reading each process's binary (/proc/<pid>/exe): what recognising Claude by it costs
        row["scan without exe"] = median_time(lambda: processes.scan(s.is_claude, exe=False), repeats)
        row["snapshot"] = median_time(lambda: collect(s), repeats)
        snap = collect(s)

        row["judging"] = median_time(lambda: judged(snap).figures, repeats)
        run = Run(judged(snap))
        def write_reports() -> None:
            findings_json.write(run, str(tmp / "f.json"), tmp)
            prometheus.write(run, str(tmp / "m.prom"), tmp)

        row["report writing"] = median_time(write_reports, repeats)
        row["pytest (serial)"] = median_time(lambda: pytest_run(world, tmp), repeats)
        row["pytest -n 2"] = median_time(lambda: pytest_run(world, tmp, "-n", "2"), repeats)
        return row
    finally:
        world.teardown()


def fix_round(tmp: Path, ghosts: int, orphans: int, zombies: int) -> dict[str, float]:
    """One confirmed fix round over a world of ghosts, orphans and zombie sessions."""
    world = World(tmp / "world-fix", seed=1)
    try:
        tasks = [world.task() for _ in range(100)]
        for i in range(ghosts):
            world.agent("working", None, task_id=tasks[i % 100])
        for i in range(orphans):
            world.agent("completed", "orphan", task_id=tasks[i % 100])
        for i in range(zombies):
            world.agent("running", "shell", task_id=tasks[i % 100])
        world.write_registries()
        world.start(timeout=600)
        observation = observe(world.settings)
        writes_before = len(list((world.workspace / "registry").glob("backups/*")))
        started = time.perf_counter()
        report = fix(observation, world.settings, Options(), dry_run=False,
                     confirm=lambda plan: (True, "bench"), show=lambda lines: None)
        elapsed = time.perf_counter() - started
        backups = list((world.workspace / "registry" / "backups").glob("*"))
        files = {b.name.rsplit(".", 2)[0] for b in backups}
        return {"ghosts": ghosts, "orphans": orphans, "zombies": zombies, "fix round": elapsed,
                "ok": report.ok, "remaining": report.remaining, "writes": len(backups) - writes_before,
                "files written": len(files)}
    finally:
        world.teardown()


def goals(rows: list[dict], fixed: dict) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for issue 6's goals; speed goals are judged at the largest size."""
    big = max(rows, key=lambda r: r["sessions"])
    scale = f"{big['sessions']} sessions, {big['entries']} entries, {big['processes']} processes"
    snap, serial = big["snapshot"] / big["floor"], big["pytest (serial)"]
    xdist = big["pytest -n 2"] / serial
    one_write = fixed["writes"] == fixed["files written"]
    return [
        (f"snapshot within 2x the floor ({scale})", f"{snap:.2f}x", snap <= 2.0),
        (f"judging within 30 ms ({scale})", f"{big['judging'] * 1000:.0f} ms", big["judging"] <= 0.030),
        (f"pytest healthchecks under 2 s ({scale})", f"{serial:.2f} s", serial < 2.0),
        (f"-n 2 no slower than 1.5x serial ({scale})", f"{xdist:.2f}x", xdist <= 1.5),
        (
            f"fix round ({fixed['ghosts']} ghosts, {fixed['orphans']} orphans, {fixed['zombies']} zombies) under 10 s",
            f"{fixed['fix round']:.2f} s",
            fixed["fix round"] < 10.0,
        ),
        ("fix round ends with every check passing", str(fixed["ok"]), fixed["ok"]),
        (
            "one registry write per file",
            f"{fixed['writes']} writes to {fixed['files written']} files",
            one_write,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--teams", type=int, nargs=2, default=[100, 5], metavar=("TEAMS", "MEMBERS"))
    parser.add_argument("--only-teams", action="store_true", help="measure the Agent Teams source alone")
    parser.add_argument("--fix", type=int, nargs=3, default=[1000, 500, 100], metavar=("GHOSTS", "ORPHANS", "ZOMBIES"))
    parser.add_argument("--manager-sizes", type=int, nargs="+", default=[100, 1000],
                        help="records of claude-squad's and agent-deck's stores")
    parser.add_argument("--managers-only", action="store_true", help="only the other managers' stores")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        teams = teams_source(Path(tmp), *args.teams, args.repeats)
        teams_line = (f"agent-teams source ({teams['teams']} teams, {teams['members']} members, {teams['failing']} "
                      f"failing findings): snapshot {teams['snapshot'] * 1000:.0f} ms against its floor (every "
                      f"config.json + tmux + ps) {teams['floor'] * 1000:.0f} ms: "
                      f"{teams['snapshot'] / teams['floor']:.2f}×")
        if args.only_teams:
            print(teams_line)
            return
        managers = [manager_source(Path(tmp), name, n, args.repeats)
                    for name in ("claude-squad", "agent-deck") for n in args.manager_sizes]
    if args.managers_only:
        print_managers(managers)
        return
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        rows = [measure(n, args.repeats, Path(tmp)) for n in args.sizes]
        fixed = fix_round(Path(tmp), *args.fix)
        state = sqlite_source(Path(tmp), max(args.sizes), args.repeats)
    phases = ["floor", "registry read", "tmux read", "process scan", "scan without exe", "snapshot", "judging",
              "report writing", "pytest (serial)", "pytest -n 2"]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {tmux.version()}; medians of {args.repeats} runs")
    print("floor: one `tmux list-panes -a -F ...` + one `ps -eo pid,ppid,args` + one json.load of GLOBAL_REGISTRY.json")
    print()
    print("| sessions | entries | processes | " + " | ".join(phases) + " | snapshot / floor | -n 2 / serial |")
    print("|" + "---|" * (len(phases) + 5))
    for r in rows:
        cells = [f"{r[p] * 1000:.0f} ms" for p in phases]
        print(f"| {r['sessions']} | {r['entries']} | {r['processes']} | " + " | ".join(cells)
              + f" | {r['snapshot'] / r['floor']:.2f}× | {r['pytest -n 2'] / r['pytest (serial)']:.2f}× |")
    print()
    print(f"fix round: {fixed['ghosts']} ghosts + {fixed['orphans']} orphans + {fixed['zombies']} zombie sessions "
          f"in {fixed['fix round']:.2f} s (one round, confirmed, with every guard)")
    for line in fixed["remaining"][:10]:
        print(f"  still wrong after the fix: {line}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory: the bench process (worlds, in-process phases, fix round) {peak:.0f} MiB; "
          f"largest child (a pytest run) {children:.0f} MiB")
    print()
    floors = state["select floor"] + state["tmux+ps floor"]
    print(f"sqlite source ({state['sessions']} sessions, {state['agents']} agents in state.sqlite3): read "
          f"{state['sqlite read'] * 1000:.0f} ms (floor: SELECT * FROM agents {state['select floor'] * 1000:.0f} ms), "
          f"snapshot {state['snapshot'] * 1000:.0f} ms against {floors * 1000:.0f} ms of floors "
          f"(+ tmux and ps {state['tmux+ps floor'] * 1000:.0f} ms): {state['snapshot'] / floors:.2f}×")
    print(teams_line)
    print()
    print("| goal | measured | met |")
    print("|---|---|---|")
    sqlite_goal = (f"sqlite snapshot within 1.5x its floors ({state['sessions']} sessions, {state['agents']} agents)",
                   f"{state['snapshot'] / floors:.2f}x", state["snapshot"] / floors <= 1.5)
    ratio = teams["snapshot"] / teams["floor"]
    teams_goal = (f"agent-teams snapshot within 2x its floor ({teams['teams']} teams x {args.teams[1]} members)",
                  f"{ratio:.2f}x", ratio <= 2.0)
    for goal, measured, met in [*goals(rows, fixed), sqlite_goal, teams_goal]:
        print(f"| {goal} | {measured} | {'yes' if met else 'NO'} |")
    print()
    print_managers(managers)
    print(f"bench took {time.monotonic() - started:.0f} s")


def print_managers(rows: list[dict]) -> None:
    """Floor: a raw read of the store (json.loads of state.json, SELECT * FROM instances) + tmux + ps."""
    print("| source | records | live sessions | floor | snapshot | judging | snapshot / floor | failing |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['agents']} | {r['sessions']} | {r['floor'] * 1000:.0f} ms | "
              f"{r['snapshot'] * 1000:.0f} ms | {r['judging'] * 1000:.0f} ms | {r['snapshot'] / r['floor']:.2f}× | "
              f"{r['failing']} |")
    print()


if __name__ == "__main__":
    main()
