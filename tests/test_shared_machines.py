"""Safety on shared machines: how people really use tmux (session groups, linked windows), other workspaces on the
same server, other mount namespaces, names as tmux stores them, processes only named like tmux, busy orchestrators.
Each test builds a real world: a private tmux server, real processes, real files."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import Writer, alive, failing, fix_in_process, info, judge, spawn
from test_peers import _attach, tmux

from healthchecks.snapshot import collect
from healthchecks.testing.world import World, outside_tmux
from healthchecks.tmux import default_socket_path


def _pane_pid(world: World, target: str) -> int:
    return int(tmux("-L", world.socket_name, "display", "-p", "-t", target, "#{pane_pid}").stdout)


def _group(world: World, session: str, name: str = "peek") -> None:
    """A person's grouped session: `tmux new-session -t <agent session> -s peek` (detached here)."""
    result = tmux("-L", world.socket_name, "new-session", "-d", "-t", session, "-s", name)
    assert result.returncode == 0, result.stderr


def test_a_healthy_agent_watched_through_a_grouped_session_or_a_linked_window_is_healthy(world):
    """The pane is listed under agent_X and under peek / dash: it belongs to both, agent_X still runs Claude."""
    watched = world.agent(None, "claude")
    linked = world.agent(None, "claude")
    world.start()
    _group(world, f"agent_{watched}")
    tmux("-L", world.socket_name, "new-session", "-d", "-s", "dash", "cat")
    result = tmux("-L", world.socket_name, "link-window", "-s", f"agent_{linked}:0", "-t", "dash:5")
    assert result.returncode == 0, result.stderr
    claude = {p.pid for p in world.standins()}
    assert failing(judge(world.settings)) == set()
    report = fix_in_process(world.settings)
    assert report.ok and not report.outcomes
    assert all(alive(pid) for pid in claude)
    assert {f"agent_{watched}", f"agent_{linked}", "peek", "dash"} <= world.live_sessions()


def test_killing_a_grouped_zombie_session_leaves_the_window_to_the_other_session(world):
    """tmux 3.3a's kill-session on a grouped session only takes that session away; ending its panes' processes
    first would close the window the person's session still shows. So they are left running with it."""
    world.agent(None, "claude")
    zombie = world.agent("running", "shell")
    world.start()
    session = f"agent_{zombie}"
    _group(world, session)
    shell = _pane_pid(world, session)
    report = fix_in_process(world.settings)
    (kill,) = [o for o in report.outcomes if o.action.kind == "kill_session"]
    assert kill.status == "done" and "stay with peek" in kill.detail
    assert session not in world.live_sessions() and "peek" in world.live_sessions()
    assert alive(shell) and _pane_pid(world, "peek") == shell


def test_a_client_attached_to_another_session_of_the_group_holds_the_kill_back(world):
    world.agent(None, "claude")
    zombie = world.agent("running", "shell")
    world.start()
    session = f"agent_{zombie}"
    _group(world, session)
    _attach(world, "peek")
    shell = _pane_pid(world, session)
    report = fix_in_process(world.settings)
    assert not [o for o in report.outcomes if o.action.kind == "kill_session"]
    assert [h for h in report.plan.held if "peek" in h.line()], report.plan.held
    assert session in world.live_sessions() and alive(shell)


@pytest.mark.parametrize("project", ["ws", "my proj"])
def test_a_session_this_registry_names_but_another_workspace_runs_is_left_alone(tmp_path, project):
    """A's registry holds a finished entry whose session is B's live, healthy agent (a copied workspace, a reused
    id, a hostile entry): B's processes name B's workspace, so it is information naming B, never killed. So too
    when both projects' folders have the same name with a space in it."""
    tag = World(tmp_path / "probe").tag
    a, b = World(tmp_path / "a", tag=tag, project=project), World(tmp_path / "b", tag=tag, project=project)
    try:
        mine = b.agent(None, "claude")
        b.start()
        # and a session of B's whose command names nothing, only its directory (`new-session -c`) is B's
        quiet = "agent_quiet-120000-abcdef"
        task_dir = b.workspace / next(iter(b.tasks))
        result = tmux("-L", b.socket_name, "new-session", "-d", "-s", quiet, "-c", str(task_dir), "cat")
        assert result.returncode == 0, result.stderr
        a.agent(None, "claude")
        a.agent("completed", None, tmux_session=f"agent_{mine}")
        a.agent("completed", None, tmux_session=quiet)
        a.start()
        claude = {p.pid for p in b.standins()}
        results = judge(a.settings)
        assert failing(results) == set()
        for session in (f"agent_{mine}", quiet):
            (finding,) = [f for f in results["leaked_sessions"].info if f.entity == f"session {session}"]
            assert str(b.workspace) in finding.reason
        report = fix_in_process(a.settings)
        assert not [o for o in report.outcomes if o.action.kind == "kill_session"]
        assert {f"agent_{mine}", quiet} <= b.live_sessions() and all(alive(pid) for pid in claude)
    finally:
        a.teardown()
        b.teardown()


@pytest.mark.parametrize("project", ["ws", "my proj", "it's", 'a"b', "[x]", "projé"])
def test_a_project_folder_with_a_space_a_quote_a_bracket_or_an_accent_is_judged_as_a_plain_one(tmp_path, project):
    """The workspace's own path, written raw in a pane's cwd and `tee` argument and quoted in the pane's `sh -c`
    command, is this workspace's whatever it holds: a zombie, a leaked session and an orphan are found and ended as
    in a plain `ws` (before: with a space or a quote, both sessions were "another workspace's session", left)."""
    world = World(tmp_path / "world", project=project)
    try:
        healthy = world.agent(None, "claude")
        zombie = world.agent("running", "shell")
        leaked = world.agent("completed", "claude")
        world.agent("completed", "orphan")
        world.start()
        (orphan,) = world.orphan_pids.values()
        expected = {("zombie_sessions", f"session agent_{zombie}"), ("leaked_sessions", f"session agent_{leaked}"),
                    ("orphan_processes", f"pid {orphan}")}
        assert failing(judge(world.settings)) == expected
        report = fix_in_process(world.settings)
        kinds = sorted(o.action.kind for o in report.outcomes if o.status == "done")
        assert report.ok and kinds == ["kill_process", "kill_session", "kill_session", "mark_terminated",
                                       "set_counters", "set_counters"], kinds
        assert world.live_sessions() == {f"agent_{healthy}"} and not alive(orphan)
    finally:
        world.teardown()


def test_a_cursor_pid_now_held_by_another_process_does_not_keep_the_agent_alive(world, tmp_path):
    """E3 cursor entries from an hour ago: one's cursor_pid is PID 1 now, another's a cursor-agent started after
    the entry (its PID reused), a third's a process only named cursor-agent: all ghosts; a cursor-agent (by the
    programs table: its install's launcher) older than its entry still proves it alive."""
    from test_sources import cursor_agent, named_cursor_agent

    old = cursor_agent(tmp_path)
    impostor = named_cursor_agent(tmp_path)
    spawned = time.time()
    while int(time.time()) == int(spawned):  # the world writes started_at in whole seconds: after the spawn
        time.sleep(0.01)
    world.agent(None, "claude")
    live = world.agent("working", None, backend="cursor", cursor_pid=old.pid, started_ago=0)
    init = world.agent("working", None, backend="cursor", cursor_pid=1)
    late = cursor_agent(tmp_path)
    reused = world.agent("working", None, backend="cursor", cursor_pid=late.pid)
    fake = world.agent("working", None, backend="cursor", cursor_pid=impostor.pid, started_ago=0)
    try:
        world.start()
        results = judge(world.settings)
        assert failing(results) == {("ghost_agents", f"agent {a}") for a in (init, reused, fake)}
        reasons = {f.entity: f.reason for f in results["ghost_agents"].failing}
        assert "pid 1 now belongs to" in reasons[f"agent {init}"] and "started after" in reasons[f"agent {reused}"]
        assert reasons[f"agent {fake}"].endswith("not cursor-agent"), reasons
        assert live not in {e for _, e in failing(results)}
    finally:
        impostor.kill()
        impostor.wait(10)
        for p in (old, late):
            os.killpg(p.pid, 9)  # its launcher and bundled node
            p.wait(10)


IMPOSTOR = r"""
import ctypes, os, socket, subprocess, sys, time
mode, path, log = sys.argv[1], sys.argv[2], sys.argv[3]
ctypes.CDLL(None).prctl(15, b"tmux: server", 0, 0, 0)  # PR_SET_NAME: how every tmux server names itself
if len(sys.argv) > 4:
    subprocess.Popen(["sh", "-c", sys.argv[4]], stdin=subprocess.DEVNULL)  # below it, as in a pane
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(16)
while True:
    c, _ = s.accept()
    with open(log, "a") as out:
        out.write(f"{time.time()}\n")
    if mode == "hangup":
        c.close()
    else:
        time.sleep(3600)
"""


def _impostor(world: World, tmp_path, mode: str, n: int, command: str | None = None):
    """A process named `tmux: server` listening on a socket that does not speak tmux: it hangs up, or stays
    silent. Returns its Popen and the file where it logs every connection."""
    script = tmp_path / "impostor.py"
    script.write_text(IMPOSTOR)
    sock, log = tmp_path / f"impostor-{n}.sock", tmp_path / f"impostor-{n}.log"
    log.touch()
    popen = subprocess.Popen([sys.executable, str(script), mode, str(sock), str(log), *([command] if command else [])],
                             stdin=subprocess.DEVNULL, start_new_session=True)
    world.popen.append(popen)
    deadline = time.monotonic() + 10
    while not sock.is_socket():
        assert time.monotonic() < deadline and popen.poll() is None, "the impostor did not listen"
        time.sleep(0.02)
    return popen, log


def test_a_leaked_claude_below_a_process_only_named_like_a_tmux_server_is_judged(world, tmp_path):
    """A `tmux: server` that hangs up on the tmux protocol shelters nothing: the leaked agent below it is an orphan."""
    world.agent(None, "claude")
    leaked = world.agent("completed", None)
    world.start()
    spec = next(s for s in world.agents if s.id == leaked)
    before = {p.pid for p in world.standins()}
    _impostor(world, tmp_path, "hangup", 0, world.agent_command(spec))
    world.wait_ready(len(before) + 1, 10)
    (claude,) = [p.pid for p in world.standins() if p.pid not in before]
    assert failing(judge(world.settings)) == {("orphan_processes", f"pid {claude}")}


def test_a_silent_process_named_like_a_tmux_server_whose_binary_is_not_tmux_shelters_nothing(world, tmp_path):
    """A python that names itself `tmux: server` (as tmux does: PR_SET_NAME) and never answers: its binary is not
    tmux, so it is not asked and shelters nothing; the leaked agent's Claude below it is an orphan, ended by --fix."""
    world.agent(None, "claude")
    leaked = world.agent("completed", None)
    world.start()
    spec = next(s for s in world.agents if s.id == leaked)
    before = {p.pid for p in world.standins()}
    _impostor(world, tmp_path, "silent", 0, world.agent_command(spec))
    world.wait_ready(len(before) + 1, 10)
    (claude,) = [p.pid for p in world.standins() if p.pid not in before]
    settings = dataclasses.replace(world.settings, tmux_timeout=2.0)
    results = judge(settings)
    assert failing(results) == {("orphan_processes", f"pid {claude}")}
    assert not [f for f in results["orphan_processes"].info if f.entity.startswith("tmux server")]  # not a server
    report = fix_in_process(settings)
    assert report.ok and [o.action.kind for o in report.outcomes] == ["kill_process"] and not alive(claude)


def _busy_tmux(world: World, n: int, command: str) -> int:
    """A real tmux server of this user, on a socket of its own, running ``command`` in a pane, then stopped
    (SIGSTOP): busy, it answers nobody. Returns its pid; _end_busy ends it."""
    socket = f"{world.socket_name}-busy{n}"
    result = tmux("-L", socket, "-f", "/dev/null", "new-session", "-d", command, env=outside_tmux())
    assert result.returncode == 0, result.stderr
    pid = int(tmux("-L", socket, "display", "-p", "#{pid}").stdout)
    os.kill(pid, signal.SIGSTOP)
    return pid


def _end_busy(world: World, pids: list[int]) -> None:
    for n, pid in enumerate(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        Path(default_socket_path(f"{world.socket_name}-busy{n}")).unlink(missing_ok=True)


def test_busy_tmux_servers_are_read_at_once_asked_once_and_shelter_what_runs_in_them(world):
    """Ten real tmux servers, stopped: each may be a busy tmux, so what runs in its panes is left alone (a leaked
    agent's Claude too), each is reported once, all are asked together within one --tmux-timeout, and a --fix (which
    looks several times) asks none of them again."""
    world.agent(None, "claude")
    ghost = world.agent("running", None)
    leaked = world.agent("completed", None)
    world.start()
    spec = next(s for s in world.agents if s.id == leaked)
    commands = [world.agent_command(spec)] + [f"{world.standin} --print 'a person, in a pane'"] * 9
    servers: list[int] = []
    try:
        for n, command in enumerate(commands):
            servers.append(_busy_tmux(world, n, command))
        world.wait_ready(11, 10)
        settings = dataclasses.replace(world.settings, tmux_timeout=3.0)
        started = time.monotonic()
        results = judge(settings)
        took = time.monotonic() - started
        silent = [f for f in results["orphan_processes"].info if f.entity.startswith("tmux server")]
        assert len(silent) == 10 and len({f.entity for f in silent}) == 10
        assert failing(results) == {("ghost_agents", f"agent {ghost}")}
        assert took < 2 * settings.tmux_timeout  # at once: one after another would take ten
        claude = {p.pid for p in world.standins()}
        started = time.monotonic()
        report = fix_in_process(settings)
        took = time.monotonic() - started
        marked = [o for o in report.outcomes if o.action.kind == "mark_terminated"]
        assert report.ok and [o.status for o in marked] == ["done"] and ghost in marked[0].line()
        assert len(report.outcomes) == len(marked) + 2 and all(alive(pid) for pid in claude)  # + the counters
        assert took < settings.tmux_timeout  # asked once in this run: no snapshot of the fix waited for them
    finally:
        _end_busy(world, servers)


def test_a_writer_that_never_pauses_neither_stops_the_check_nor_the_fix(world, tmp_path):
    """The orchestrator rewrites the registry in place under its flock, with no pause: the snapshot holds the file
    it saw change under a shared flock and reaches a stable read; the fix ends the orphan and loses no write."""
    from test_safety import WRITER

    world.agent(None, "claude")
    orphan = world.agent("completed", "orphan")
    world.start()
    pid = world.orphan_pids[orphan]
    with Writer(WRITER.replace("time.sleep(0.005)", "pass"), world.global_path, tmp_path) as writer:
        deadline = time.monotonic() + 10
        while not writer.log.exists() or len(writer.written()) < 20:  # writing already
            assert time.monotonic() < deadline
            time.sleep(0.01)
        snapshot = collect(world.settings)
        assert snapshot.stable and snapshot.attempts <= 2
        report = fix_in_process(world.settings, lock_timeout=30)
    assert [o.status for o in report.outcomes if o.action.kind == "kill_process"] == ["done"], report.message
    assert not alive(pid)
    assert set(writer.written()) <= set(json.loads(world.global_path.read_text())["agents"])


def test_a_writer_that_takes_no_lock_is_reported_when_no_read_is_stable(world, tmp_path):
    """E2's writers take no lock: nothing can hold them, so the run says it judged a registry that kept changing."""
    world.agent(None, "claude")
    world.start()
    with Writer(WRITER_NO_LOCK, world.global_path, tmp_path) as writer:
        deadline = time.monotonic() + 10
        while not writer.log.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        results = judge(world.settings)
    assert [f.entity for f in results["registry_schema"].info] == ["registry"]
    assert "kept changing" in results["registry_schema"].info[0].reason


WRITER_NO_LOCK = r"""
import json, os, sys
from pathlib import Path
path, log, stop = sys.argv[1], sys.argv[2], sys.argv[3]
data, n = json.loads(Path(path).read_text()), 0
try:  # ahead of the rest of a loaded machine (as root): a writer starved for a whole read let one be stable
    os.nice(-10)
except OSError:
    pass
Path(log).write_text("")  # started
while not Path(stop).exists():
    data["total_agents_spawned"] = n                          # no lock (E2); renamed, so every read parses
    Path(path + ".tmp").write_text(json.dumps(data, indent=2))
    os.replace(path + ".tmp", path)
    n += 1
"""


def test_session_names_as_tmux_stores_them(world):
    """Agent types are the model's choice: a tab, DEL, a backslash or `.:` are stored escaped (matched exactly);
    a `#` is a format tmux expands (`#H`: the host name), so that agent is never marked: it is reported."""
    world.agent(None, "claude")
    odd = world.agent(None, "claude", agent_type="code\tre.view\x7f\\x")
    hashed = world.agent(None, "claude", agent_type="host#H")
    world.agent(None, "claude", agent_type="réviseur")  # found live under its own name: matched
    gone = world.agent("working", None, agent_type="réviseur")  # not live: tmux might have escaped it
    world.start()
    live = world.live_sessions()
    assert f"agent_{odd}" not in live and f"agent_{hashed}" not in live  # tmux stored other names
    results = judge(world.settings)
    assert failing(results) == set()
    assert {("ghost_agents", f"agent {hashed}"), ("ghost_agents", f"agent {gone}")} <= info(results)
    report = fix_in_process(world.settings)
    assert report.ok and not [o for o in report.outcomes if o.action.kind == "mark_terminated"]
    assert json.loads(world.global_path.read_text())["agents"][hashed].get("status") is None  # still running


def test_stored_names_match_what_this_tmux_stores(world):
    """The local rewrite of a name is checked against the tmux in use, for every ASCII character."""
    from healthchecks.tmux import stored_name

    names = [f"n{c:03d}-{chr(c)}-x.y:z" for c in range(1, 128) if chr(c) != "#"]
    world.start()
    tmux("-L", world.socket_name, "-f", "/dev/null", "start-server", ";", "set", "-g", "exit-empty", "off")
    for name in names:
        result = tmux("-L", world.socket_name, "new-session", "-d", "-s", name, "cat")
        assert result.returncode == 0, (name, result.stderr)
    listed = subprocess.run(["tmux", "-L", world.socket_name, "list-sessions", "-F", "#{session_name}"],
                            capture_output=True, stdin=subprocess.DEVNULL, timeout=30, check=True).stdout
    stored = {line.decode() for line in listed.split(b"\n") if line}
    assert {stored_name(n) for n in names} <= stored
    assert stored_name("agent_#H") is None and stored_name("agent_é") == "agent_é"


def test_stored_names_of_many_are_each_ones_stored_name():
    """The many-names form (a snapshot asks it of every record's session) decides the common case at once: it gives
    exactly stored_name of each, whichever one character of them is rewritten, non-ASCII and a lone surrogate too."""
    from healthchecks.tmux import stored_name, stored_names

    plain = ["agent_a", "agent_é", "agent_\ud800", "agent_日本"]
    assert stored_names(plain) == plain
    for c in range(128):
        names = [*plain, f"agent_{chr(c)}x"]
        assert stored_names(names) == [stored_name(n) for n in names], c


def test_a_claude_in_another_mount_namespace_is_never_this_workspaces_by_path(world):
    """A sandboxed Claude (its own mount namespace, a tmpfs over this workspace's client directory) runs the
    orchestrator's launch in a directory whose path string is the client directory's: by the kernel's identity
    it is another directory, so it is not this workspace's orphan and is left alone."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("making a mount namespace needs root and util-linux's unshare")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not permitted here: {probe.stderr.decode().strip()}")
    world.agent(None, "claude")
    world.agent("completed", None)
    world.start()
    client = shlex.quote(str(world.client_dir))
    launch = " ".join(map(shlex.quote, world.launch_args()))
    script = f"mount -t tmpfs sandbox {client} && cd {client} && exec {shlex.quote(str(world.standin))} {launch}"
    sandboxed = spawn(world, ["unshare", "-m", "--propagation", "private", "sh", "-c", script], world.home)
    assert os.readlink(f"/proc/{sandboxed.pid}/cwd") == str(world.client_dir)  # the same path string
    results = judge(world.settings)
    assert failing(results) == set()
    assert ("orphan_processes", f"pid {sandboxed.pid}") in info(results)
    report = fix_in_process(world.settings)
    assert report.ok and not report.outcomes and alive(sandboxed.pid)
