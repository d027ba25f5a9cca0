"""Lineage: a process an earlier run saw in an agent's pane is that agent's, exactly (pid and start), and nothing else.

Also: a session whose pane runs something not recognised as Claude is never a zombie (information instead); a
garbled, hostile or unauthenticated line, or a state directory others can write, means "no lineage", never a crash or
another judgement; and lineage alone ends only a recognised agent program.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import alive, failing, first_line, fix_in_process, info, judge, run_health, settings_args

from healthchecks import sightings
from healthchecks.observe import observe
from healthchecks.settings import Settings
from healthchecks.testing.world import World


def _detached_agent(world: World) -> str:
    """An agent (current release) whose Claude alone was launched with setsid: `cat prompt | setsid claude … | tee`.
    Killing its session leaves that Claude with nothing exclusive but what an earlier run saw."""
    agent = world.agent("running", None, stdin_prompt=True)
    spec = world.agents[-1]
    prompt = world.workspace / spec.task_id / f"agent_prompt_{agent}.txt"
    prompt.parent.mkdir(parents=True, exist_ok=True)
    prompt.write_text(world.prompt(spec))
    log = world.workspace / spec.task_id / "logs" / f"{agent}_stream.jsonl"
    args = " ".join(map(shlex.quote, world.launch_args()))
    command = (f"cd {shlex.quote(str(world.client_dir))} && cat {shlex.quote(str(prompt))} | "
               f"setsid {shlex.quote(str(world.standin))} {args} | tee {shlex.quote(str(log))}")
    world.extra_sessions.append((spec.session, command, world.client_dir))
    return agent


def _with_sightings(world: World, tmp_path):
    return replace(world.settings, sightings=tmp_path / "state" / sightings.FILE)


def _started(world: World, tmp_path, agent: str) -> tuple[Settings, int]:
    """The world started: its settings with a lineage memory of the test's own, and the pid of ``agent``'s Claude."""
    world.start()
    settings = _with_sightings(world, tmp_path)
    return settings, world.claude_in_sessions([s for s in world.agents if s.id == agent])[agent]


def _entries(path) -> list[dict]:
    """The JSON of each line (after its MAC)."""
    return [json.loads(line.split(b" ", 1)[1]) for line in path.read_bytes().splitlines()]


def _sign(path, entries: list[dict]) -> None:
    """Write these entries as this tool would, with the key beside the file: what an earlier run might have left."""
    key = (path.parent / sightings.KEY).read_bytes()
    kinds = {False: sightings.Sighting, True: sightings.SessionSighting}
    path.write_bytes(b"".join(sightings.line(key, kinds["session" in e](**e)) for e in entries))


def test_a_detached_claude_seen_in_its_agents_pane_is_that_agents_orphan_exactly(world, tmp_path):
    agent = _detached_agent(world)
    world.agent("running", "claude")
    settings, claude = _started(world, tmp_path, agent)
    seen = observe(settings)
    assert failing(seen.results) == set()
    sightings.record(settings.sightings, sightings.seen(seen.analysis))  # what an earlier run leaves
    world.kill_sessions([f"agent_{agent}"])
    world.wait_reparented({claude}, 10)
    assert alive(claude)

    without = judge(world.settings)  # no lineage: the project dir and the four flags are not exclusive
    assert ("orphan_processes", f"pid {claude}") in info(without)
    reason = next(f.reason for f in without["orphan_processes"].findings if f.entity == f"pid {claude}")
    assert "client directory" in reason and "left alone" in reason

    results = judge(settings)
    assert ("orphan_processes", f"pid {claude}") in failing(results)
    reason = next(f.reason for f in results["orphan_processes"].failing if f.entity == f"pid {claude}")
    assert f"seen in agent {agent}'s pane at " in reason

    # The same pid with another start time is another process: nothing remembered about it (its session left out
    # here: that is lineage too, test_a_claude_started_in_an_agents_session_is_that_agents).
    genuine = settings.sightings.read_bytes()
    _sign(settings.sightings, [{**e, "ticks": e["ticks"] + 1} for e in _entries(settings.sightings) if "pid" in e])
    assert ("orphan_processes", f"pid {claude}") not in failing(judge(settings))

    settings.sightings.write_bytes(genuine)
    report = fix_in_process(settings)
    assert report.ok and not alive(claude)
    assert failing(judge(settings)) == set()  # its entry, a ghost once its session was killed, is settled too


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{" * 100_000,
        b"\xff\xfe garbage \x00\n[1,2,3]\nnull\n\"text\"\n",
        b'{"pid": "1", "ticks": 1, "agent": "a", "workspace": "w", "time": 0}\n',
        b'{"pid": true, "ticks": 1.5, "agent": [], "workspace": 3, "time": "now"}\n',
        b'{"pid": 99999999999999999999999, "ticks": -1, "agent": "", "workspace": "", "time": 1e400}\n',
        b"[" * 50_000 + b"]" * 50_000 + b"\n",
    ],
)
def test_garbled_sightings_mean_no_lineage(world, tmp_path, content):
    agent = _detached_agent(world)
    settings, claude = _started(world, tmp_path, agent)
    world.kill_sessions([f"agent_{agent}"])
    world.wait_reparented({claude}, 10)
    sightings.record(settings.sightings, [])  # the state directory and its key, as a first run leaves them
    settings.sightings.write_bytes(content)
    assert judge(settings).keys() == judge(world.settings).keys()
    assert failing(judge(settings)) == failing(judge(world.settings))
    sightings.record(settings.sightings, [])  # the next run's write survives it too, and keeps none of it
    assert settings.sightings.read_bytes() == b""


def test_sightings_of_another_workspace_or_an_unknown_agent_are_not_evidence(world, tmp_path):
    agent = _detached_agent(world)
    settings, claude = _started(world, tmp_path, agent)
    ticks = next(p.start_ticks for p in observe(world.settings).snapshot.processes if p.pid == claude)
    world.kill_sessions([f"agent_{agent}"])
    world.wait_reparented({claude}, 10)
    workspace = os.path.realpath(world.workspace)
    sightings.record(settings.sightings, [])
    _sign(settings.sightings, [{"pid": claude, "ticks": ticks, "agent": agent, "workspace": "/elsewhere", "time": 1.0},
                               {"pid": claude, "ticks": ticks, "agent": "other-000000-abcdef", "workspace": workspace,
                                "time": 1.0}])
    assert ("orphan_processes", f"pid {claude}") not in failing(judge(settings))
    # a symlink is never followed: the tool reads and writes only its own file
    target = tmp_path / "state" / "elsewhere.jsonl"
    _sign(target, [{"pid": claude, "ticks": ticks, "agent": agent, "workspace": workspace, "time": 1.0}])
    settings.sightings.unlink()
    settings.sightings.symlink_to(target)
    assert ("orphan_processes", f"pid {claude}") not in failing(judge(settings))


def test_a_process_remembered_that_is_no_agent_program_is_only_ever_information(world, tmp_path):
    """A live agent's background job leaves its pane too (`server &` from its Bash tool): while the agent's Claude
    runs, what was seen in its pane is information. Once the agent is gone it is still information: a `sleep`, a
    shell, an editor or a dev server is never ended by lineage alone (a line of the memory is all that names it)."""
    agent = world.agent("running", "claude")
    world.start()
    settings = _with_sightings(world, tmp_path)
    job = subprocess.Popen(["sleep", "600"], cwd=world.home, start_new_session=True)
    world.popen.append(job)
    ticks = sightings.processes.start_ticks(job.pid)
    sightings.record(settings.sightings, [sightings.Sighting(job.pid, ticks, agent, os.path.realpath(world.workspace),
                                                             1.0)])
    results = judge(settings)
    assert failing(results) == set()
    reason = next(f.reason for f in results["orphan_processes"].info if f.entity == f"pid {job.pid}")
    assert f"seen in agent {agent}'s pane" in reason and "still runs Claude" in reason
    world.kill_sessions([f"agent_{agent}"])  # the agent is gone (its Claude exits on SIGHUP)
    deadline = time.monotonic() + 10
    while world.standins():
        assert time.monotonic() < deadline, "the agent's Claude did not exit on SIGHUP"
        time.sleep(0.05)
    results = judge(settings)
    assert failing(results) == {("ghost_agents", f"agent {agent}")}  # its session is gone: that is all
    reason = next(f.reason for f in results["orphan_processes"].info if f.entity == f"pid {job.pid}")
    assert f"seen in agent {agent}'s pane" in reason and "not a recognised agent program" in reason
    assert fix_in_process(settings).ok and alive(job.pid)


def test_a_lock_held_for_ever_means_no_lineage_not_a_hang(tmp_path):
    path = tmp_path / "state" / sightings.FILE
    me = sightings.Sighting(os.getpid(), sightings.processes.start_ticks(os.getpid()), "a-000000-000000", "/w", 1.0)
    sightings.record(path, [me])
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('locked', flush=True); time.sleep(60)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert first_line(holder).strip() == "locked"
        started = time.monotonic()
        assert sightings.read(path, "/w") == sightings.Memory()
        with pytest.raises(OSError):
            sightings.record(path, [])
        assert time.monotonic() - started < 3 * sightings.LOCK_WAIT + 2
    finally:
        holder.kill()
        holder.wait(10)
    assert sightings.read(path, "/w").processes == {me.identity: me}


def test_record_keeps_only_live_identities(tmp_path):
    path = tmp_path / "state" / sightings.FILE
    me = os.getpid()
    ticks = sightings.processes.start_ticks(me)
    dead = sightings.Sighting(2**22 + 12345, 1, "a-000000-000000", "/w", 1.0)
    sightings.record(path, [sightings.Sighting(me, ticks, "a-000000-000000", "/w", 1.0), dead])
    sightings.record(path, [sightings.Sighting(me, ticks, "b-000000-000000", "/w", 2.0)])
    (entry,) = _entries(path)
    assert entry["agent"] == "b-000000-000000"  # the newest sighting of an identity wins


def test_a_run_of_the_checks_remembers_what_it_saw_in_the_panes(world, tmp_path):
    agent = world.agent("running", "claude")
    world.start()
    claude = world.claude_in_sessions(world.agents)[agent]
    state = tmp_path / "state"
    proc = run_health(tmp_path, *settings_args(world.settings), "--state-dir", str(state))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "reports" / sightings.FILE).exists()  # never beside the reports
    assert stat.S_IMODE(state.stat().st_mode) == 0o700 and stat.S_IMODE((state / sightings.KEY).stat().st_mode) == 0o600
    seen = _entries(state / sightings.FILE)
    assert {(s["pid"], s["agent"]) for s in seen if "pid" in s} >= {(claude, agent)}
    assert {s["agent"] for s in seen if "session" in s} == {agent}
    (state / sightings.FILE).unlink()
    (state / sightings.FILE).mkdir()  # a directory in its place: said in one line, the verdict stands
    proc = run_health(tmp_path, *settings_args(world.settings), "--state-dir", str(state))
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr
    assert "could not record what this run saw in the panes" in proc.stderr


def test_a_live_agent_whose_claude_runs_under_an_unrecognised_name_is_never_killed(world):
    """The absence of a match is no evidence: a pane running something unknown is information, never a zombie."""
    world.agent("running", "shell")  # its pane runs a shell and cat: known idle, a zombie
    spec = world.agents[-1]
    world.start()
    assert ("zombie_sessions", f"session {spec.session}") in failing(judge(world.settings))
    # now the pane runs a program no matcher knows (a Claude under another name, say)
    tmux = ["tmux", "-L", world.socket_name]
    pane = subprocess.run([*tmux, "list-panes", "-t", f"={spec.session}", "-F", "#{pane_id}"], check=True,
                          capture_output=True, text=True, timeout=30).stdout.strip()
    subprocess.run([*tmux, "respawn-pane", "-k", "-t", pane, "sleep 600"], check=True, capture_output=True, timeout=30)
    # tmux starts it through the shell (`sh -c`), which is a known idle process until it has exec'd `sleep`: waited
    # for, and said when it does not happen (under load a 10 s wait that ran out in silence judged the shell)
    deadline = time.monotonic() + 60
    while (shown := subprocess.run([*tmux, "display", "-p", "-t", pane, "#{pane_current_command}"],
                                   capture_output=True, text=True, timeout=30).stdout.strip()) != "sleep":
        assert time.monotonic() < deadline, f"the pane still runs {shown!r}, not sleep"
        time.sleep(0.05)
    results = judge(world.settings)
    assert failing(results) == set()
    reason = next(f.reason for f in results["zombie_sessions"].info if f.entity == f"session {spec.session}")
    assert "runs `sleep` (/" in reason and "not recognised as Claude; left alone" in reason
    report = fix_in_process(world.settings)
    assert report.ok and not report.outcomes
    assert spec.session in world.live_sessions()


def test_a_planted_line_never_ends_a_persons_process(world, tmp_path):
    """Issue 26, item 4: one line naming a person's `sleep 600` as seen in a finished agent's pane, planted in the
    report folder (where the file used to live) and, without this tool's MAC or with a made-up one, in the state
    directory's file beside a genuine key: the sleep survives `--fix --yes`."""
    agent = world.agent("completed", None)
    world.start()
    sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True)  # a person's, outside every pane
    world.popen.append(sleeper)
    planted = json.dumps({"pid": sleeper.pid, "ticks": sightings.processes.start_ticks(sleeper.pid), "agent": agent,
                          "workspace": os.path.realpath(world.workspace), "time": 1.0})
    reports, state = tmp_path / "reports", tmp_path / "state"
    reports.mkdir()
    (reports / sightings.FILE).write_text(planted + "\n")
    sightings.record(state / sightings.FILE, [])  # a genuine earlier run: the directory and its key
    with (state / sightings.FILE).open("a") as fh:
        fh.write(f"{planted}\n{'0' * 64} {planted}\n")
    proc = run_health(tmp_path, *settings_args(world.settings), "--fix", "--yes", env={sightings.STATE_ENV: str(state)})
    assert "Traceback" not in proc.stdout + proc.stderr
    assert alive(sleeper.pid), proc.stdout


def test_a_state_directory_others_can_change_gives_no_lineage(world, tmp_path):
    """A genuine lineage in a state directory that is a symlink, group-writable, or whose key others can read or
    write: no lineage (the orphan is information), and the write after the run refuses it in one line."""
    agent = _detached_agent(world)
    world.agent("running", "claude")
    settings, claude = _started(world, tmp_path, agent)
    sightings.record(settings.sightings, sightings.seen(observe(settings).analysis))
    world.kill_sessions([f"agent_{agent}"])
    world.wait_reparented({claude}, 10)
    state = settings.sightings.parent
    assert ("orphan_processes", f"pid {claude}") in failing(judge(settings))  # genuine: found

    real = tmp_path / "real-state"
    state.rename(real)
    state.symlink_to(real)
    assert ("orphan_processes", f"pid {claude}") in info(judge(settings))
    with pytest.raises(sightings.Refused, match="not a real directory"):
        sightings.record(settings.sightings, [])
    state.unlink()
    real.rename(state)

    for path, mode, what in ((state, 0o770, "other users can change it"),
                             (state / sightings.KEY, 0o644, "other users can change it")):
        path.chmod(mode)
        assert ("orphan_processes", f"pid {claude}") in info(judge(settings))
        with pytest.raises(sightings.Refused, match=what):
            sightings.record(settings.sightings, [])
        path.chmod(0o700 if path == state else 0o600)
    assert ("orphan_processes", f"pid {claude}") in failing(judge(settings))  # its own again: found again
    assert fix_in_process(settings).ok and not alive(claude)


def test_a_claude_started_in_an_agents_session_is_that_agents(world, tmp_path):
    """Session lineage: no run saw this Claude itself, but it was started in a session a run saw as agent X's (its
    TMUX names that server, still the same process, and that session id): it is X's once X runs no Claude there.
    Without the session remembered, or with the server named by another start, it is information."""
    agent = _detached_agent(world)
    world.agent("running", "claude")
    settings, claude = _started(world, tmp_path, agent)
    sightings.record(settings.sightings, sightings.seen(observe(settings).analysis))
    remembered = _entries(settings.sightings)
    _sign(settings.sightings, [e for e in remembered if "session" in e])  # the sessions only
    world.kill_sessions([f"agent_{agent}"])
    world.wait_reparented({claude}, 10)

    results = judge(settings)
    assert ("orphan_processes", f"pid {claude}") in failing(results)
    reason = next(f.reason for f in results["orphan_processes"].failing if f.entity == f"pid {claude}")
    assert f"started in agent {agent}'s session $" in reason

    _sign(settings.sightings, [{**e, "server_ticks": e["server_ticks"] + 1} for e in remembered if "session" in e])
    assert ("orphan_processes", f"pid {claude}") in info(judge(settings))
    _sign(settings.sightings, [e for e in remembered if "session" in e])
    assert fix_in_process(settings).ok and not alive(claude)


def test_the_state_directory_is_the_xdg_one_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert sightings.default_dir() == tmp_path / "agent-healthchecks"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")  # invalid by the XDG spec: ignored
    assert sightings.default_dir() == Path.home() / ".local" / "state" / "agent-healthchecks"


def test_a_runs_write_does_not_verify_again_the_lines_its_read_verified(tmp_path, monkeypatch):
    """The run's end rewrites the memory it read at its start: lines the read verified (MAC, JSON, shape) are not
    verified again (4,000 of them at 1,000 sessions were most of the report-writing phase); a new line is."""
    path = tmp_path / "state" / sightings.FILE
    ticks = sightings.processes.start_ticks(os.getpid())
    mine = [sightings.Sighting(os.getpid(), ticks, f"a-{i:06d}-000000", "/w", 1.0 + i) for i in range(50)]
    sightings.record(path, mine)
    sightings.read(path, "/w")
    verified = []
    real = sightings.json.loads

    def counted(body, *args, **kwargs):
        verified.append(body)
        return real(body, *args, **kwargs)

    monkeypatch.setattr(sightings.json, "loads", counted)
    new = sightings.Sighting(os.getpid(), ticks, "a-999999-000000", "/x", 99.0)
    sightings.record(path, [new])
    assert verified == []  # the line there had been verified by this process's read
    assert sightings.read(path, "/x").processes[new.identity] == new  # the new line, verified once
    assert len(sightings.read(path, "/w").processes) == 1  # one process, seen as each agent in turn: the newest
    sightings.record(path, [])
    assert len(verified) == 1
