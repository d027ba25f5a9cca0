"""The orchestrator's demo (--demo-source json, sqlite): the seed guide's incident in figures, plus one of every
other fault class; and the fleet the bench measures (its main rounds, and the sqlite line's round).

The seed's machine: 95 agents in the registry, `active_agents` 15, 8 live agent sessions, 87 entries
without a session (a few still marked active, most of them history). On top of that: one zombie
session, one leaked session, one orphan Claude, one untracked session, one foreign Claude, and a
user's own non-agent session with Claude inside (which must never be reported).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from ...testing.bench import BenchWorld, started
from ...testing.world import World

CURRENT_TASKS = {
    "TASK-20251029-225319-45548b6a": "Find and fix resource leaks in agent deployment",
    "TASK-20251029-232447-3bf85ff8": "Investigate registry drift",
}
HEALTHY = [
    "process_leak_analyzer",
    "deployment_code_auditor",
    "registry_corruption_investigator",
    "immediate_cleanup_builder",
    "cleanup_function_builder",
    "file_handle_tracker_builder",
    "cleanup_daemon_builder",
    "integration_tester",
]
HISTORY_STATUSES = ["completed"] * 5 + ["terminated", "failed", "killed", "phase_completed", "error"]
GHOSTS = 5  # still marked active, session gone
HISTORY = 81  # finished entries whose sessions are gone: 5 ghosts + 1 orphan's entry + 81 = 87 without a session


def json_demo(root: Path, grace: float = 0.3) -> World:
    """The JSON era's demo world (registry/*.json)."""
    return build(root, grace, "json")


def sqlite_demo(root: Path, grace: float = 0.3) -> World:
    """The current release's demo world (registry/state.sqlite3)."""
    return build(root, grace, "sqlite")


def build(root: Path, grace: float, era: str) -> World:
    """Describe and start the demo world of an era under ``root``; the caller tears it down."""
    world = World(root, seed=20251029, grace=grace, era="sqlite" if era == "sqlite" else "json")
    for task_id, description in CURRENT_TASKS.items():
        world.task(task_id, description)
    old_tasks = [world.task(description=f"earlier task {i}") for i in range(6)]
    current = list(CURRENT_TASKS)
    for i, kind in enumerate(HEALTHY):
        world.agent(
            [None, "running", "working", "reviewing"][i % 4],
            "claude",
            task_id=current[i % 2],
            agent_type=kind,
            started_ago=600 + 60 * i,
        )
    for i in range(GHOSTS):
        world.agent(
            [None, "running", "working"][i % 3],
            None,
            task_id=old_tasks[i % 6],
            agent_type="ghost_worker",
            started_ago=7200 + 300 * i,
        )
    world.agent("completed", "orphan", task_id=current[0], agent_type="orphaned_runner", started_ago=3000)
    for i in range(HISTORY):
        world.agent(
            HISTORY_STATUSES[i % len(HISTORY_STATUSES)],
            None,
            task_id=old_tasks[i % 6],
            agent_type="past_worker",
            started_ago=86400 + 97 * i,
        )
    world.agent("running", "shell", task_id=current[1], agent_type="stalled_shell", started_ago=1800)
    world.agent("completed", "claude", task_id=current[1], agent_type="finished_but_running", started_ago=2400)
    world.untracked_session()
    world.user_session()
    world.foreign_claude()
    world.write_registries(
        global_overrides={"total_agents_spawned": 95, "active_agents": 15},
        task_overrides={current[0]: {"active_count": 7}},
    )
    return world.start()


def fleet(root: Path, sessions: int, era: Literal["json", "sqlite"] = "json") -> World:
    """The fleet the bench measures: ``sessions`` live agents with Claude and 9x as many finished ones without a
    session (10x as many registry entries), in ``sessions`` tasks; started, or torn down when it cannot be."""
    world = World(root, seed=sessions, era=era)
    tasks = [world.task() for _ in range(max(1, sessions))]
    for i in range(sessions):
        world.agent("running", "claude", task_id=tasks[i % len(tasks)])
    for i in range(9 * sessions):
        world.agent("completed", None, task_id=tasks[i % len(tasks)])
    world.write_registries()
    return started(world)


def sqlite_bench(root: Path, sessions: int) -> BenchWorld:
    """The bench's round of the current release: the fleet of ``sessions`` live sessions (10x as many agents) in
    registry/state.sqlite3; its floor one SELECT * FROM agents."""
    world = fleet(root, sessions, "sqlite")

    def select_all() -> None:
        conn = sqlite3.connect(world.state_path)
        try:
            conn.execute("SELECT * FROM agents").fetchall()
        finally:
            conn.close()

    return BenchWorld(world, len(world.agents), sessions, select_all, "SELECT * FROM agents")
