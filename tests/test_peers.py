"""Failure classes that peers' test suites catch (Gas Town, agent-deck, claude-squad), on real worlds."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import secrets
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil
import pytest
from helpers import alive, failing, fix_in_process, info, judge

from healthchecks.testing.world import World


def tmux(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                          timeout=30)


def run_agent_on(world: World, agent: str, *server: str, env: dict | None = None) -> None:
    """Start an agent's session on another tmux server, the orchestrator's way."""
    spec = next(a for a in world.agents if a.id == agent)
    spec.running = "claude"
    before = len(world.standins())
    (world.workspace / spec.task_id / "logs").mkdir(parents=True, exist_ok=True)
    result = tmux(*server, "-f", "/dev/null", "new-session", "-d", "-s", spec.session, world.agent_command(spec),
                  env=env)
    assert result.returncode == 0, result.stderr
    world.wait_ready(before + 1, 10)


@pytest.fixture
def other_server(tmp_path):
    """A second, private tmux server (its own socket path), killed afterwards."""
    path = str(tmp_path / f"other-{secrets.token_hex(3)}")
    yield ("-S", path)
    tmux("-S", path, "kill-server")


@pytest.mark.parametrize("how", ["another socket name", "another TMUX_TMPDIR"])
def test_claude_in_a_pane_of_an_unchecked_server_is_neither_orphan_nor_ghost(world, tmp_path, how):
    """A cron job with another environment checks only the server it was told of."""
    world.agent(None, "claude")
    agent = world.agent("running", None)
    world.start()
    if how == "another socket name":
        server, env = ("-L", f"hc-unchecked-{secrets.token_hex(3)}"), None
    else:  # the same -L name the checks use, under another TMUX_TMPDIR: another server
        tmpdir = tmp_path / "tmuxdir"
        tmpdir.mkdir()
        server, env = ("-L", world.socket_name), {**os.environ, "TMUX_TMPDIR": str(tmpdir)}
    try:
        run_agent_on(world, agent, *server, env=env)
        results = judge(world.settings)
        assert failing(results) == set()
        ghost = next(f for f in results["ghost_agents"].findings if f.entity == f"agent {agent}")
        assert ghost.severity == "info" and "not checked here" in ghost.reason
        claude = [f for f in results["orphan_processes"].findings if "not checked here" in f.reason]
        assert len(claude) == 1 and claude[0].severity == "info"
        standins = {p.pid for p in world.standins()}
        report = fix_in_process(world.settings)
        assert report.ok and not report.outcomes
        assert {p.pid for p in world.standins()} == standins
        assert json.loads(world.global_path.read_text())["agents"][agent]["status"] == "running"
    finally:
        tmux(*server, "kill-server", env=env)
        if how == "another socket name":
            (Path(f"/tmp/tmux-{os.getuid()}") / server[1]).unlink(missing_ok=True)


def test_a_mark_that_follows_a_kill_is_left_with_why_when_its_session_name_lives_on_an_unchecked_server(
        world, other_server):
    """Another world built in the same second named its zombie session alike (the demo's flake): the fix kills the
    checked server's session, leaves the entry (its name is live elsewhere) and says so, not 'no longer a finding'."""
    agent = world.agent("running", "shell")
    world.start()
    name = f"agent_{agent}"
    assert tmux(*other_server, "-f", "/dev/null", "new-session", "-d", "-s", name, "cat").returncode == 0
    report = fix_in_process(world.settings)
    outcomes = {o.action.kind: o for o in report.outcomes}
    assert outcomes["kill_session"].status == "done" and name not in world.live_sessions()
    mark = outcomes["mark_terminated"]
    assert mark.status == "skipped" and f"session {name} lives on tmux server" in mark.detail, mark.line()
    assert "not checked here" in mark.detail
    assert json.loads(world.global_path.read_text())["agents"][agent]["status"] == "running"
    assert tmux(*other_server, "has-session", "-t", f"={name}").returncode == 0  # never touched


def _reuse_pid(pid: int, argv: list[str], cwd: Path) -> subprocess.Popen | None:
    """Start a process that gets exactly ``pid`` (as root, through ns_last_pid); None if another fork won."""
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}"):  # the dead pane's process, not yet reaped, or another's by now
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
            fh.write(str(pid - 1))
        proc = subprocess.Popen(argv, cwd=cwd, start_new_session=True, stdin=subprocess.DEVNULL)
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait(10)
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to choose the next pid (ns_last_pid)")
def test_dead_pane_pid_given_to_a_stranger(world):
    """remain-on-exit keeps a dead pane and its old pid; the kernel gives that pid to a stranger."""
    world.agent(None, "claude")
    agent = world.agent("running", None)
    world.start()
    session = f"agent_{agent}"
    assert tmux("-L", world.socket_name, "set", "-g", "remain-on-exit", "on").returncode == 0
    assert tmux("-L", world.socket_name, "new-session", "-d", "-s", session, "sleep 0.2").returncode == 0
    deadline = time.monotonic() + 10
    while True:
        dead, pid = tmux("-L", world.socket_name, "list-panes", "-t", session, "-F", "#{pane_dead} #{pane_pid}"
                         ).stdout.split()
        if dead == "1":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stranger = _reuse_pid(int(pid), [str(world.standin), *world.launch_args()], world.home)
    if stranger is None:
        pytest.skip("another process kept taking the pid")
    world.popen.append(stranger)
    world.wait_ready(2, 10)
    time.sleep(world.grace)  # the session is judged only once past the grace
    results = judge(world.settings)
    assert ("zombie_sessions", f"session {session}") in failing(results)  # a dead pane runs nothing
    assert ("orphan_processes", f"pid {stranger.pid}") in info(results)  # not attached to that session
    report = fix_in_process(world.settings)
    assert session not in world.live_sessions(), [o.line() for o in report.outcomes]
    assert alive(stranger.pid)


def test_timestamps_in_the_future_are_reported_and_do_not_protect_a_ghost(world):
    world.agent(None, "claude")
    ghost = world.agent("working", None, started_ago=-7200)  # the orchestrator's clock runs 2 hours ahead
    world.start()
    assert failing(judge(dataclasses.replace(world.settings, grace=60))) == {
        ("ghost_agents", f"agent {ghost}"),
        ("timestamps", f"agent {ghost}"),
    }


def test_registry_time_zone_reads_naive_times_in_the_orchestrators_zone(world):
    world.agent(None, "claude")
    ghost = world.agent("working", None)
    world.write_registries()
    zone = "Pacific/Kiritimati"  # UTC+14: its naive local time is hours ahead of nearly every machine's
    there = (datetime.now(ZoneInfo(zone)) - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    data = json.loads(world.global_path.read_text())
    data["agents"][ghost]["started_at"] = there
    world.global_path.write_text(json.dumps(data))
    task = world.task_path(next(iter(world.tasks)))
    tdata = json.loads(task.read_text())
    for entry in tdata["agents"]:
        entry["started_at"] = there
    task.write_text(json.dumps(tdata))
    world.start()
    settings = dataclasses.replace(world.settings, grace=60, registry_tz=zone)
    assert failing(judge(settings)) == {("ghost_agents", f"agent {ghost}")}  # an hour ago, there


def _attach(world: World, session: str) -> int:
    """A person's terminal attached to ``session`` (a real client on a pseudo-terminal); returns its pid."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        os.environ.pop("TMUX", None)
        os.execvp("tmux", ["tmux", "-L", world.socket_name, "attach", "-t", session])
    os.set_blocking(fd, False)
    deadline = time.monotonic() + 10
    while tmux("-L", world.socket_name, "display", "-p", "-t", session, "#{session_attached}").stdout.strip() != "1":
        assert time.monotonic() < deadline, "the client did not attach"
        time.sleep(0.05)
    world.popen.append(_Child(pid, fd))
    return pid


@dataclasses.dataclass
class _Child:
    """A pty child in World.popen's shape, so the world's teardown ends it."""

    pid: int
    fd: int

    def poll(self):
        return None if alive(self.pid) else 0

    def kill(self):
        psutil.Process(self.pid).kill()

    def wait(self, timeout=10):
        deadline = time.monotonic() + timeout
        while not os.waitpid(self.pid, os.WNOHANG)[0]:
            assert time.monotonic() < deadline, f"the attached client {self.pid} did not end"
            time.sleep(0.05)
        os.close(self.fd)


def test_attached_session_is_never_killed_without_the_flag(world):
    world.agent(None, "claude")
    zombie = world.agent("running", "shell")
    world.start()
    session = f"agent_{zombie}"
    _attach(world, session)
    report = fix_in_process(world.settings)
    assert session in world.live_sessions()
    (held,) = [h.line() for h in report.plan.held]
    assert session in held and "/dev/pts/" in held and "--kill-attached" in held
    assert json.loads(world.global_path.read_text())["agents"][zombie]["status"] == "running"
    report = fix_in_process(world.settings, kill_attached=True)
    assert report.ok and session not in world.live_sessions()


def test_split_brain_is_reported_and_never_acted_on(world, other_server):
    world.agent(None, "claude")
    twice = world.agent("running", "claude")
    world.start()
    run_agent_on(world, twice, *other_server)
    settings = dataclasses.replace(world.settings, tmux_sockets=(world.socket_name, other_server[1]))
    results = judge(settings)
    assert failing(results) == {("split_brain", f"agent {twice}")}
    standins = {p.pid for p in world.standins()}
    report = fix_in_process(settings)
    assert not report.outcomes and [f.check for f in report.plan.manual] == ["split_brain"]
    assert {p.pid for p in world.standins()} == standins


def test_background_job_of_a_killed_pane_is_ended_with_it(world):
    """A process of the pane's group re-parented away (`(job &)`) is no descendant, but is the pane's."""
    world.agent(None, "claude")
    zombie = world.agent("running", None)
    world.start()
    mark = f"hc-bg-{secrets.token_hex(4)}"
    job = f"{sys.executable} -c 'import time; time.sleep(600)' {mark}"
    assert tmux("-L", world.socket_name, "new-session", "-d", "-s", f"agent_{zombie}", f"({job} &); exec cat"
                ).returncode == 0
    deadline = time.monotonic() + 10
    while not (found := [p for p in psutil.process_iter(["cmdline"]) if mark in (p.info["cmdline"] or [])]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (background,) = found
    try:
        server = world.server_pid()
        assert server not in {p.pid for p in background.parents()}  # outside the pane's tree
        time.sleep(world.grace)
        assert failing(judge(world.settings)) == {("zombie_sessions", f"session agent_{zombie}")}
        report = fix_in_process(world.settings)
        assert report.ok, [o.line() for o in report.outcomes]
        background.wait(10)
    finally:
        if background.is_running():
            background.kill()
