"""Scale: 10,000 registry agents in 1,000 tasks with 500 live sessions, judged exactly right."""

from __future__ import annotations

import time

import pytest
from helpers import failing, judge

from healthchecks.testing.world import World


@pytest.mark.timeout(900, method="signal")  # 500 sessions started (up to 300 s) and ended on a loaded machine
def test_ten_thousand_agents_five_hundred_sessions(tmp_path):
    with World(tmp_path / "world", seed=7) as world:
        tasks = [world.task() for _ in range(1000)]
        live = [world.agent("running", "claude", task_id=tasks[i % 1000]) for i in range(498)]
        zombie = world.agent("working", "shell", task_id=tasks[1])
        leaked = world.agent("completed", "claude", task_id=tasks[2])
        orphan = world.agent("completed", "orphan", task_id=tasks[3])
        ghosts = [world.agent("working", None, task_id=tasks[i % 1000]) for i in range(100)]
        for i in range(10_000 - len(world.agents)):
            world.agent(("completed", "failed", "terminated")[i % 3], None, task_id=tasks[i % 1000])
        world.write_registries(global_overrides={"active_agents": 600})
        world.start(timeout=300)
        assert len(world.agents) == 10_000 and len(live) + 2 == len(world.live_sessions()) == 500
        orphan_pid = next(p.pid for p in world.standins() if orphan in " ".join(p.cmdline()))
        started = time.monotonic()
        found = failing(judge(world.settings))
        elapsed = time.monotonic() - started
        assert found == {
            *(("ghost_agents", f"agent {g}") for g in ghosts),
            ("zombie_sessions", f"session agent_{zombie}"),
            ("leaked_sessions", f"session agent_{leaked}"),
            ("orphan_processes", f"pid {orphan_pid}"),
            ("counters", "registry/GLOBAL_REGISTRY.json active_agents"),
        }
        print(f"collect + judge at 10,000 agents / 500 sessions: {elapsed:.2f}s")
