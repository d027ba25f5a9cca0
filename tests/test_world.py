"""The world builder ends exactly what it started, so tests can never leak or harm other processes."""

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


def test_standin_survives_sighup_like_claude(tmp_path):
    with World(tmp_path) as world:
        agent = world.agent("completed", "orphan")
        world.start()
        (orphan,) = [p for p in world.standins() if agent in " ".join(p.cmdline())]
        assert orphan.is_running()
        assert agent not in "".join(world.live_sessions())
