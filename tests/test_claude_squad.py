"""claude-squad's records (state.json) judged and repaired on real worlds: a private tmux server standing in for
the default server it uses, stand-ins run as its `program`, bystanders. state.json is never written."""

from __future__ import annotations

import psutil
import pytest

from fixers.apply import Options
from fixers.run import fix
from healthchecks.observe import observe
from healthchecks.sources import claude_squad
from healthchecks.testing.managers import PAUSED, READY, RUNNING, SquadWorld, squad_demo


def _fix(world: SquadWorld):
    return fix(observe(world.settings), world.settings, Options(), dry_run=False,
               confirm=lambda plan: (True, "test"), show=lambda lines: None)


def _failing(obs) -> dict[str, set[str]]:
    return {cid: {f.entity for f in r.failing} for cid, r in obs.results.items() if r.failing}


@pytest.fixture
def healthy(tmp_path):
    world = SquadWorld(tmp_path)
    world.instance("fix auth", READY)
    world.instance("add.tests now", RUNNING)
    world.instance("paused one", PAUSED)  # its session kept for Resume (v1.0.10+): normal
    world.user_session("work", world.project)
    world.persons_claude(world.project)
    yield world.start()
    world.teardown()


def test_healthy_fleet_has_no_failing_finding_and_fix_changes_nothing(healthy):
    before = healthy.state_path.read_bytes()
    sessions, pids = healthy.live_sessions(), {p.pid for p in healthy.standins()}
    obs = observe(healthy.settings)
    assert obs.snapshot.registries.source == claude_squad.NAME
    assert _failing(obs) == {}
    assert "claudesquad_pausedone" in sessions and "claudesquad_add_testsnow" in sessions
    _fix(healthy)
    assert healthy.state_path.read_bytes() == before
    assert healthy.live_sessions() == sessions
    assert {p.pid for p in healthy.standins()} == pids


def test_faults_found_and_each_repair_ends_exactly_its_target(tmp_path):
    world = squad_demo(tmp_path)
    try:
        before = world.state_path.read_bytes()
        obs = observe(world.settings)
        failing = _failing(obs)
        assert failing["ghost_agents"] == {"agent docs pass", "agent perf"}
        assert failing["zombie_sessions"] == {"session claudesquad_lint"}
        (orphan,) = failing["orphan_processes"]
        lost = [f for f in obs.info if "lost record" in f.reason]
        assert [f.entity for f in lost] == ["session claudesquad_migrate"] and "hc-migrate_" in lost[0].reason
        assert "leaked_sessions" not in failing  # the paused instance's live session is normal
        sessions = world.live_sessions()
        others = {p.pid for p in world.standins()} - {int(orphan.split()[1])}  # the person's Claude among them
        _fix(world)
        assert world.state_path.read_bytes() == before  # never written
        assert world.live_sessions() == sessions - {"claudesquad_lint"}  # the lost record's session stays
        pid = int(orphan.split()[1])
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert {p.pid for p in world.standins()} >= others
        after = _failing(observe(world.settings))
        assert set(after) == {"ghost_agents"}  # records are a person's (or claude-squad's) to change
    finally:
        world.teardown()


def test_hostile_state_is_one_line_error(tmp_path):
    world = SquadWorld(tmp_path)
    try:
        world.state_path.write_text('{"instances": [{"title": "x", "status": true}]}')
        records = claude_squad.load(world.workspace)
        assert records.all_errors == (f"{world.state_path}: $.instances[0].status: expected an integer",)
    finally:
        world.teardown()
