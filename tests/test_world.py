"""The world builder ends exactly what it started, so tests can never leak or harm other processes."""

import os
import shutil

import psutil

from healthchecks.testing.world import World


def test_teardown_ends_every_process_and_server(tmp_path):
    world = World(tmp_path)
    world.agent(None, "claude")
    world.agent("completed", "orphan")
    world.agent("running", "shell")
    world.untracked_session()
    world.foreign_claude()
    world.start()
    pids = {p.pid for p in world.standins()}
    assert len(pids) == 4  # agent, orphan, untracked session's Claude, foreign Claude
    assert world.server.is_alive()
    world.teardown()
    assert world.standins() == []
    assert not world.server.is_alive()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


def test_standin_exits_on_sighup_like_claude_and_only_detached_or_node_era_ones_survive(tmp_path):
    """Today's Claude exits on SIGHUP: kill-session ends it. An orphan is made the ways they arise today: a
    setsid-detached launch, or a node-era Claude that ignored SIGHUP."""
    with World(tmp_path) as world:
        plain = world.agent("running", "claude")
        detached = world.agent("completed", "orphan")
        node = world.agent("completed", "orphan", ignores_hup=True)
        world.start()
        inside = world.claude_in_sessions([s for s in world.agents if s.id == plain])[plain]
        world.kill_sessions([f"agent_{plain}"])
        psutil.Process(inside).wait(10)
        for agent in (detached, node):
            (orphan,) = [p for p in world.standins() if agent in " ".join(p.cmdline())]
            assert orphan.is_running() and orphan.pid == world.orphan_pids[agent]
            assert agent not in "".join(world.live_sessions())
        assert os.getsid(world.orphan_pids[detached]) != os.getsid(world.orphan_pids[node])


def test_worlds_of_one_seed_built_in_the_same_second_name_their_sessions_apart(tmp_path):
    """A seeded world (the demo's) is built by other runs on the same machine at the same moment (xdist workers,
    another person's --demo); a fix reads every tmux server of this user, so a session of another world with one of
    this world's agent session names makes that agent 'live elsewhere' and its mark is left (9 active entries)."""
    for _ in range(5):  # the two descriptions must fall in one wall-clock second: an id carries it
        first, second = World(tmp_path / "a", seed=20251029), World(tmp_path / "b", seed=20251029)
        for world in (first, second):
            world.agent("running", "shell", agent_type="stalled_shell", started_ago=1800)
            world.untracked_session()
        if first.agents[0].started_at == second.agents[0].started_at:
            break
        for path in (tmp_path / "a", tmp_path / "b"):
            shutil.rmtree(path)
    assert first.agents[0].started_at == second.agents[0].started_at
    assert first.agents[0].session != second.agents[0].session
    assert first.extra_sessions[0][0] != second.extra_sessions[0][0]
