"""The world builder ends exactly what it started, so tests can never leak or harm other processes."""

import os
import shutil
import signal
import subprocess
import sys

import psutil

from healthchecks import processes
from healthchecks.idle import idle
from healthchecks.testing.real_world import NOTIFIER, RealWorld, only_shell_and_notifier
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


def _pane(root: int) -> list[processes.Proc]:
    procs = processes.scan(lambda *_: False)
    by_pid = {p.pid: p for p in procs}
    return [by_pid[pid] for pid in processes.descendants(processes.children_of(procs), root) if pid in by_pid]


def test_real_world_waits_for_the_notifier_itself_not_the_launcher_of_python3(tmp_path):
    """The zombie's pane runs `python3 <notifier>` once its Claude is killed; `python3` may be a launcher (a pyenv
    shim: bash scripts that run `readlink`, `basename`, `env` ... before they exec the interpreter) whose arguments
    already name the notifier. The pane is settled only when the notifier itself runs: until then it holds a process
    the zombie check rightly calls working, and the real fleet's first judgement would miss the zombie. Here the
    launcher waits on a FIFO (its `head` below it) until the test lets it exec the interpreter."""
    notifier, gate, bindir = tmp_path / "completion_notifier.py", tmp_path / "gate", tmp_path / "bin"
    notifier.write_text(NOTIFIER)
    os.mkfifo(gate)
    bindir.mkdir()
    python = os.path.realpath(sys.executable)
    (bindir / "python3").write_text(f'#!/bin/bash\nhead -c1 {gate} >/dev/null\nexec {python} "$@"\n')
    (bindir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    pane = subprocess.Popen(["bash", "-c", f"exit_code=137; python3 {notifier} --agent a --exit-code $exit_code"],
                            env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    fd = None
    try:
        RealWorld.wait(lambda: any(p.name == "head" for p in _pane(pane.pid)), 30, "the launcher waits on its gate")
        launching = _pane(pane.pid)
        assert any(idle(p) is None for p in launching)  # the check sees work in the pane: no zombie yet
        assert not only_shell_and_notifier([p.pid for p in launching], notifier)
        fd = os.open(gate, os.O_RDWR)  # never blocks; held open so the byte waits for `head` however late it reads
        os.write(fd, b"x")
        RealWorld.wait(lambda: only_shell_and_notifier([p.pid for p in _pane(pane.pid)], notifier), 30,
                       "the notifier runs")
        assert all(idle(p) is not None for p in _pane(pane.pid))
    finally:
        if fd is not None:
            os.close(fd)
        os.killpg(pane.pid, signal.SIGKILL)  # its own session, led by the process this test started and still holds
        pane.wait(10)


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
